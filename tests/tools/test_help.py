"""Every tool explains itself: `--help` exits 0 with its usage and at least one example command of that tool."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "tools"))
               if name.endswith(".py") and name != "__init__.py")


@pytest.mark.parametrize("tool", TOOLS)
def test_help_shows_usage_and_an_example(tool):
    done = subprocess.run([sys.executable, os.path.join(REPO, "tools", f"{tool}.py"), "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout and f"tools/{tool}.py" in done.stdout.replace(f"usage: {tool}.py", ""), tool
