"""Detection refusals that had no test: `--resume` with a config that changed beyond RESUMABLE_KEYS is one line
naming the key, and leaves the run as it was."""
import os
from types import SimpleNamespace

import pytest
from det_helpers import CONFIGS, FAST, TINY, load_tool

from transfer.detection import engine

TOY = os.path.join(CONFIGS, "detection", "mask_rcnn_vitdet_toy_1000it.py")


def snapshot(run_dir):
    return {os.path.relpath(os.path.join(d, f), run_dir): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(run_dir) for f in files}


def test_resume_with_a_changed_config_is_refused_and_the_run_is_kept(small_root, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ASL_DEBUG", raising=False)
    monkeypatch.setenv("ASL_DATASETS", str(small_root))  # --data-root sets it: restored after the test
    run = tmp_path / "run"
    common = [TOY, "--output-dir", str(run), "--data-root", str(small_root), *TINY, *FAST, "train.max_iter=1"]
    load_tool("train_det").main(common)  # a run of one iteration: config.yaml, last_checkpoint, model_final.pth
    assert (run / "last_checkpoint").read_text() == "model_final.pth"
    before = snapshot(run)
    capsys.readouterr()

    with pytest.raises(SystemExit) as stop:
        load_tool("train_det").main([*common, "--resume", "optimizer.lr=0.5"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("error: --resume: the config differs from the checkpoint's in optimizer.lr; resume with "
                          "the run's config, or start a new run with --force (keys that may change: "
                          "train.output_dir, train.log_period, "), err
    assert snapshot(run) == before  # nothing trained, logged or removed

    # the keys that may change between pieces (logging, workers) pass the same check
    cfg = engine.load_config(TOY, [*TINY, *FAST, "train.max_iter=1", "train.log_period=5",
                                   "dataloader.train.num_workers=1"], str(run))
    engine.claim_output_dir(cfg, SimpleNamespace(eval_only=False, resume=True, force=False), main=True)
    assert snapshot(run) == before
