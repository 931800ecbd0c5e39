"""A non-editable install (pip install ., here into a folder of its own) carries everything the chain runs, the
configs included: the pipeline's --help and its table stage with its default config (the toy pipeline) work from
another directory, with the repository off sys.path."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pipeline_runs_from_a_non_editable_install(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), REPO], check=True, capture_output=True)
    assert {"asl", "chain", "tools", "transfer", "configs"} <= set(os.listdir(target))
    assert (target / "configs" / "pipeline" / "toy.py").exists()
    assert (target / "asl" / "data" / "imagenet100.txt").exists()
    env = dict(os.environ, PYTHONPATH=str(target), ASL_DATASETS=str(tmp_path / "no_data"))
    run = lambda *args: subprocess.run([sys.executable, "-m", "tools.run_pipeline", *args], cwd=tmp_path,  # noqa
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
    assert f"no toy scenes under {tmp_path / 'no_data' / 'toy_scenes'}: the table has no chance row" in table.stdout
    located = subprocess.run([sys.executable, "-c", "import chain, tools; print(chain.__file__, tools.__file__)"],
                             cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    assert str(target) in located and REPO not in located  # the installed copy, not the clone
