import json
import os

import pytest

from asl.cli import UserError
from asl.pipeline import Pipeline

CFG = dict(inits=["asl", "random"], toy=None, title="t",
           linprobe=dict(config="unused.py", overrides=[]), finetune=dict(config="unused.py", overrides=[]))


def _write(path, stage, method, **metrics):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"stage": stage, "init": {"method": method, "checkpoint": None}, "metrics": metrics}, f)


def test_finished_stages_are_reused_and_the_table_reads_their_files(tmp_path, capsys):
    pipe = Pipeline(CFG, str(tmp_path))
    for method, top1 in (("asl", 61.0), ("random", 40.0)):
        _write(pipe.path("linprobe", method, "metrics.json"), "linprobe", method, top1=top1)
    with open(pipe.path("stage_times.json"), "w") as f:
        json.dump({"linprobe": 123.0}, f)  # the time of the run that made those results
    pipe.run(["linprobe", "table"])  # linprobe results exist: no tool is started
    out = capsys.readouterr().out
    times = json.loads(open(pipe.path("stage_times.json")).read())
    assert times["linprobe"] == 123.0 and "table" in times  # a reused stage keeps its measured time
    assert out.count("reusing") == 2 and "| asl | 61.0 |" in out and "| random | 40.0 |" in out
    assert os.path.exists(pipe.path("results", "results.png")) and os.path.exists(pipe.path("stage_times.json"))


def test_failing_stage_and_unknown_stage_are_clear_errors(tmp_path):
    pipe = Pipeline(dict(CFG, linprobe=dict(config=str(tmp_path / "missing.py"), overrides=[])), str(tmp_path))
    with pytest.raises(UserError, match="stage 'linprobe asl' failed"):
        pipe.run(["linprobe"])
    with pytest.raises(UserError, match="unknown stage"):
        pipe.run(["pretrian"])
    with pytest.raises(UserError, match="no transfer results"):
        Pipeline(CFG, str(tmp_path / "empty")).run(["table"])


def test_a_transfer_stage_left_out_of_the_config_is_skipped(tmp_path, capsys):
    cfg = dict(CFG, detection=None, segmentation=dict(config="unused.py"))
    pipe = Pipeline(cfg, str(tmp_path))
    assert pipe.convert_targets() == ["mmseg"]  # no detectron2 file for a config without detection
    pipe.run(["detection"])
    assert "detection: not part of this config, skipped" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["stage_times.json"]
    assert json.loads((tmp_path / "stage_times.json").read_text()) == {}
