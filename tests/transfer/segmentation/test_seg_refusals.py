"""Segmentation refusals that had no test: --eval-only together with --resume, and a whole segmentor's checkpoint
given as encoder weights (--init). Each is one `error: ...` line, and nothing of a run is written or changed."""
import importlib.util
import os
import re

import pytest

from .conftest import REPO, TINY_CONFIG

_spec = importlib.util.spec_from_file_location("train_seg_refusals_tool", os.path.join(REPO, "tools", "train_seg.py"))
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


def user_error(capsys, *argv):
    """tools/train_seg.py's main must exit with status 2 and end stderr with one `error: ...` line."""
    with pytest.raises(SystemExit) as stop:
        tool.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert stop.value.code == 2 and lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    return lines[-1][len("error: "):]


def snapshot(run_dir):
    """The run's files and their bytes, but for mmengine's <timestamp>/ logs: in this one test process an earlier
    Runner's logger stays open and writes later runs' lines there too (a tool's own process would not)."""
    return {os.path.relpath(os.path.join(d, f), run_dir): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(run_dir) if not re.fullmatch(r"\d{8}_\d{6}", os.path.basename(d))
            for f in files}


@pytest.fixture(scope="module")
def trained_run(toy_root, tmp_path_factory):
    """A finished run of the tiny UperNet (2 iterations): its directory, holding iter_2.pth (a whole segmentor:
    backbone.*, neck.*, decode_head.*, auxiliary_head.* with the optimizer and message hub)."""
    run = tmp_path_factory.mktemp("seg_refusals") / "run"
    tool.main([TINY_CONFIG, "--data-path", str(toy_root / "ade"), "--work-dir", str(run), "train_cfg.max_iters=2"])
    assert (run / "iter_2.pth").exists()
    return run


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("ASL_DEBUG", raising=False)


@pytest.mark.parametrize("resume", [[], ["auto"], ["iter_2.pth"]], ids=["alone", "auto", "file"])
def test_eval_only_with_resume_is_refused_and_changes_nothing(resume, trained_run, toy_root, capsys):
    before = snapshot(trained_run)
    resume = [str(trained_run / r) if r.endswith(".pth") else r for r in resume]
    message = user_error(capsys, TINY_CONFIG, "--data-path", toy_root / "ade", "--work-dir", trained_run,
                         "--eval-only", trained_run / "iter_2.pth", "--resume", *resume)
    assert message == "--eval-only and --resume exclude each other"
    assert snapshot(trained_run) == before  # no metrics.json rewritten, no log appended, nothing removed


def test_a_whole_segmentor_checkpoint_as_encoder_weights_is_refused_before_training(trained_run, toy_root, tmp_path,
                                                                                    capsys):
    whole = trained_run / "iter_2.pth"
    for flag in ("--init", "--pretrained"):
        run = tmp_path / flag.strip("-")
        message = user_error(capsys, TINY_CONFIG, "--data-path", toy_root / "ade", "--work-dir", run, flag, whole)
        assert message == (f"{whole} is a whole segmentor's checkpoint: --init takes encoder weights (a "
                           "tools/convert_ckpt.py file); continue a run with --resume, evaluate one with --eval-only")
        written = set(os.listdir(run))
        assert not written & {"iter_1.pth", "iter_2.pth", "last_checkpoint", "log.jsonl", "metrics.json"}, written
