"""Segmentation metrics against answers worked out by hand: the configs' evaluator (mmseg's IoUMetric plus the
per-class IoU) on one 4x4 label map, then the tool's metrics.json record.

    ground truth        prediction       classes: 0 sky, 1 road, 2 car, 3 boat (absent); 255 ignored
    0 0 1 1             0 0 1 1
    0 0 1 1             0 1 1 1          sky:  intersection 3, union 4  -> IoU 75
    2 2 1 1             2 1 1 1          road: intersection 6, union 10 -> IoU 60
    2 2 . .             1 1 0 0          car:  intersection 1, union 4  -> IoU 25
mIoU = 160 / 3 = 53.33 (boat: in neither, left out); aAcc = 10 / 14 valid pixels = 71.43; mAcc = (3/4 + 6/6 +
1/4) / 3 = 66.67. The two ignored pixels (predicted sky) count nowhere.
"""
import json
import os
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import METRICS

from transfer.segmentation.engine import load_config, write_metrics

from .conftest import REPO

GT = [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 1, 1], [2, 2, 255, 255]]
PRED = [[0, 0, 1, 1], [0, 1, 1, 1], [2, 1, 1, 1], [1, 1, 0, 0]]
CLASSES = ("sky", "road", "car", "boat")


def test_per_class_iou_and_summary_of_a_hand_built_label_map(tmp_path):
    cfg = load_config(os.path.join(REPO, "configs", "segmentation", "upernet_toy_1xb8_toyscenes.py"))
    init_default_scope("mmseg")
    metric = METRICS.build(cfg.val_evaluator)
    metric.dataset_meta = {"classes": CLASSES}
    metric.process({}, [{"pred_sem_seg": {"data": torch.tensor([PRED])}, "gt_sem_seg": {"data": torch.tensor([GT])}}])
    metrics = metric.evaluate(1)
    assert metrics["mIoU"] == pytest.approx(53.33) and metrics["aAcc"] == pytest.approx(71.43)
    assert metrics["mAcc"] == pytest.approx(66.67)

    cfg.load_from, cfg.run_info = "model.pth", {"dataset": "hand_built", "model": "none"}
    cfg.asl_init = {"method": "random", "checkpoint": None}
    runner = SimpleNamespace(work_dir=str(tmp_path), timestamp="now", loaded_meta={"iter": 7})
    write_metrics(runner, cfg, metrics, wall_time=1.0, eval_only=True)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["metrics"] == {"mIoU": pytest.approx(53.33), "mAcc": pytest.approx(66.67),
                                 "aAcc": pytest.approx(71.43)}
    assert record["per_class_IoU"] == {"sky": 75.0, "road": 60.0, "car": 25.0}
    assert record["iterations"] == 7 and record["eval_only"] is True
