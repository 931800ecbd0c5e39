import json

from chain.table import collect, write_table
from chain.task import load_tasks

COLUMNS = [(name, *column) for name, task in load_tasks().items() for column in task.columns]


def _metrics(path, stage, method, extra=None, **metrics):
    path.write_text(json.dumps({"stage": stage, "init": {"method": method, "checkpoint": None},
                                "metrics": metrics, **(extra or {})}))
    return str(path)


def test_table_reads_every_number_from_the_stage_files(tmp_path):
    files = [_metrics(tmp_path / "a.json", "detection", "asl", box_AP=31.25, mask_AP=20.5, box_AP50=50.0),
             _metrics(tmp_path / "b.json", "detection", "random", box_AP=12.0, mask_AP=8.0),
             _metrics(tmp_path / "c.json", "segmentation", "asl", mIoU=44.44, mAcc=50.0,  # fields of a newer tool
                      extra={"per_class_IoU": {"wall": 70.0}, "gpu": "H100", "notes": ["x"]}),
             _metrics(tmp_path / "d.json", "pretrain", "asl", loss=0.5)]
    table = collect(files, COLUMNS)
    assert table == {"asl": {"box AP": (31.25, files[0]), "mask AP": (20.5, files[0]), "mIoU": (44.44, files[2])},
                     "random": {"box AP": (12.0, files[1]), "mask AP": (8.0, files[1])}}
    paths = write_table(table, str(tmp_path / "out" / "results"), COLUMNS, "toy",
                        chance={"box_AP": 0.0, "mIoU": 17.49},
                        budgets=["detection: 60 iterations for every initialisation"])
    md = open(paths["markdown"]).read()
    assert "| asl | 31.2 | 20.5 | 44.4 |" in md and "| random | 12.0 | 8.0 | — |" in md
    assert "| *chance* | *0.0* | — | *17.5* |" in md and "* detection: 60 iterations" in md
    saved = json.load(open(paths["json"]))
    assert saved["rows"]["asl"]["mIoU"] == {"value": 44.44, "source": files[2]}
    assert saved["chance"] == {"box AP": 0.0, "mIoU": 17.49}
    assert open(paths["chart"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_failed_json_write_leaves_the_previous_file_whole_and_no_temp_file(tmp_path):
    """metrics.json is written through a temp file: a write that fails half way (here an object JSON cannot hold,
    met after part of the file is out) leaves the previous metrics.json as it was."""
    import os

    import pytest

    from asl.records import write_json

    path = tmp_path / "metrics.json"
    write_json(str(path), {"metrics": {"top1": 50.0}})
    with pytest.raises(TypeError):
        write_json(str(path), {"metrics": {"top1": 60.0}, "bad": {1, 2}})
    assert json.loads(path.read_text()) == {"metrics": {"top1": 50.0}}
    assert os.listdir(tmp_path) == ["metrics.json"]
