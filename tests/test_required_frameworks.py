"""A broken install fails `make test` with one line naming the framework, instead of skipping its tests."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_framework_that_does_not_import_stops_the_run_with_one_line(tmp_path):
    fake = tmp_path / "shadow" / "mmseg"  # first on the path: `import mmseg` finds this broken copy
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('simulated broken install')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "shadow"))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_probe.py"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 3, run.stdout + run.stderr
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Exit: required framework")]
    assert len(lines) == 1, run.stdout + run.stderr  # pytest's own exit line: the reason, whole, on one line
    assert "mmseg" in lines[0] and "simulated broken install" in lines[0] and "make install" in lines[0]
    assert "passed" not in run.stdout
