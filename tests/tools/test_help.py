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


# the tools whose engine is imported when a run starts (asl.cli.imported_on_call, or imports inside main):
# their help and argument mistakes answer at once instead of after seconds of loading torch
QUICK = ["build_in100_coco", "finetune", "linprobe", "make_shards", "make_toy_data", "pretrain", "probe",
         "run_pipeline", "sweep", "train_seg", "visualize"]


@pytest.mark.parametrize("tool", QUICK)
def test_help_answers_without_loading_torch(tool):
    script = ("import contextlib, io, runpy, sys\n"
              f"sys.argv = [{tool!r}, '--help']\n"
              "help_text = io.StringIO()\n"
              "with contextlib.redirect_stdout(help_text):\n"
              "    try:\n"
              f"        runpy.run_path({os.path.join(REPO, 'tools', tool + '.py')!r}, run_name='__main__')\n"
              "    except SystemExit as stop:\n"
              "        assert stop.code in (0, None) and 'usage:' in help_text.getvalue(), stop.code\n"
              "print(sorted(m for m in ('torch', 'detectron2', 'mmseg') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", f"{tool} --help imported {done.stdout.strip()}"
