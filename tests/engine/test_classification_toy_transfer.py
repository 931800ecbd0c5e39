"""End to end on the toy scenes (slow: about 15 minutes here): ASL pretraining with the budget of
configs/pipeline/toy_long.py (10 epochs over the 2,000 unlabeled scenes), then linear probing and fine-tuning
from it and from random initialisation, through the pipeline's stages. docs/pipeline.md reports this protocol's
numbers, MAE included."""
import json
import os

import pytest

from asl.config import apply_overrides, load_config
from asl.pipeline import Pipeline

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_toy_asl_pretraining_beats_random_initialisation_in_classification(tmp_path):
    cfg = apply_overrides(load_config(os.path.join(REPO, "configs", "pipeline", "toy_long.py")),
                          ["inits=['asl', 'random']"])
    pipe = Pipeline(cfg, str(tmp_path / "work"), data_root=str(tmp_path / "datasets"))
    pipe.run(["data", "pretrain", "linprobe", "finetune"])
    top1 = {(mode, m): json.loads(open(pipe.path(mode, m, "metrics.json")).read())["metrics"]["top1"]
            for mode in ("linprobe", "finetune") for m in ("asl", "random")}
    print(top1)
    assert top1["linprobe", "asl"] > top1["linprobe", "random"] + 3  # 300 val scenes: 1 point = 3 scenes
    assert top1["finetune", "asl"] > top1["finetune", "random"]
