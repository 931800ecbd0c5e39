"""A non-editable install (`pip install .` into a fresh virtual environment) carries everything the chain runs, the
configs included: the pipeline's --help and its table stage with its default config (the toy pipeline) work from
another directory, with the repository off sys.path. The environment takes the toolkit's dependencies from this
interpreter's (a .pth line: this sandbox has no network for torch); the toolkit itself comes only from the install."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pipeline_runs_from_a_non_editable_install(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]  # their own .pth files (the editable clone) stay off
    with open(os.path.join(purelib, "toolkit_deps.pth"), "w") as f:
        f.write("\n".join(deps) + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", REPO], check=True,
                   capture_output=True)
    target = subprocess.run([python, "-c", "import asl, os; print(os.path.dirname(os.path.dirname(asl.__file__)))"],
                            cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()
    assert target == purelib
    assert {"asl", "chain", "tools", "transfer", "configs"} <= set(os.listdir(target))
    assert os.path.exists(os.path.join(target, "configs", "pipeline", "toy.py"))
    assert os.path.exists(os.path.join(target, "asl", "data", "imagenet100.txt"))
    env = dict(os.environ, ASL_DATASETS=str(tmp_path / "no_data"))
    env.pop("PYTHONPATH", None)
    run = lambda *args: subprocess.run([python, "-m", "tools.run_pipeline", *args], cwd=tmp_path,  # noqa
                                       env=env, capture_output=True, text=True)
    helped = run("--help")
    assert helped.returncode == 0 and "--stages" in helped.stdout
    work = tmp_path / "work"
    for method, top1 in (("asl", 61.0), ("random", 40.0)):
        (work / "linprobe" / method).mkdir(parents=True)
        (work / "linprobe" / method / "metrics.json").write_text(json.dumps(
            {"stage": "linprobe", "init": {"method": method}, "metrics": {"top1": top1}, "iterations": 5,
             "epochs": 1, "config": None}))
    table = run("--stages", "table", "--output-dir", str(work))  # the default config: the installed toy pipeline
    assert table.returncode == 0, table.stderr
    assert "| asl | 61.0 |" in table.stdout and (work / "results" / "results.json").exists()
    assert f"no toy scenes under {tmp_path / 'no_data' / 'toy_scenes'}: the table's chance row leaves them out" \
        in table.stdout
    located = subprocess.run([python, "-c", "import chain, tools; print(chain.__file__, tools.__file__)"],
                             cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    assert target in located and REPO not in located  # the installed copy, not the clone
