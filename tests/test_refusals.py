"""Refusals of the core tools that had no test: a resume on another number of processes or from a checkpoint that
does not exist, a pretraining loss with no masked patch, and tools/convert_ckpt.py's refusals. Each is one line
naming the problem, and nothing of the run (checkpoint, log, output file) is written or changed."""
import importlib.util
import os

import pytest
import torch

from asl.checkpoint import save_atomic
from asl.cli import UserError
from asl.config import apply_overrides, load_config
from asl.convert import convert
from asl.engine import launch as launcher
from asl.engine.pretrain import run_pretrain
from asl.losses import patch_contrastive
from asl.models import PretrainModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICRO = ["model.arch='vit_micro_patch8'", "model.img_size=32", "model.decoder={'embed_dim': 32, 'depth': 1, "
         "'num_heads': 2}", "data.num_workers=0", "optim.batch_size=8", "runtime.tensorboard=False",
         "runtime.log_every=1", "optim.warmup_epochs=1"]
CLASSIFICATION = ["model.arch='vit_micro_patch8'", "model.img_size=32", "data.num_workers=0",
                  "runtime.tensorboard=False", "optim.batch_size=8"]


def load_tool(name):
    """tools/<name>.py as a module, to call its main(argv) in this process."""
    spec = importlib.util.spec_from_file_location(f"refusals_tool_{name}", os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pretrain_cfg(toy_root, *overrides):
    cfg = load_config(os.path.join(REPO, "configs", "pretrain", "toy_asl.py"))
    return apply_overrides(cfg, MICRO + [f"data.path={toy_root / 'unlabeled'}", *overrides])


def one_line_error(capsys, main, argv) -> str:
    """Run a tool's guarded main; it must exit with status 2 and one `error: ...` line on stderr (no traceback)."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()[len("error: "):]


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("ASL_DEBUG", raising=False)  # user errors as one line, not tracebacks


def snapshot(run_dir):
    """Every file of a run directory and its bytes."""
    return {os.path.relpath(os.path.join(d, f), run_dir): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(run_dir) for f in files}


# ----------------------------------------------------------------------------- 1. another number of processes
def test_resuming_on_another_number_of_processes_is_refused_and_changes_nothing(toy_root, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    cfg = pretrain_cfg(toy_root, "optim.epochs=1", "runtime.max_iters=1")
    run_pretrain(cfg, str(run_dir))  # written by 1 process
    last = run_dir / "checkpoints" / "last.pth"
    assert torch.load(last, weights_only=True)["world_size"] == 1
    before = snapshot(run_dir)

    # this process as rank 0 of 2 (torchrun's variables); it must refuse before any collective
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(launcher, "join_group", lambda *a: None)
    with pytest.raises(UserError) as err:
        run_pretrain(cfg, str(run_dir), resume="auto")
    assert str(err.value) == (f"--resume: {last} was written by 1 processes, this launch has 2; resume with the "
                              "same number of processes")
    assert snapshot(run_dir) == before  # no log trimmed, no config rewritten, the checkpoint untouched

    # and a checkpoint of 2 processes resumed by one
    monkeypatch.setenv("WORLD_SIZE", "1")
    two = tmp_path / "two.pth"
    save_atomic({**torch.load(last, weights_only=True), "world_size": 2}, two)
    with pytest.raises(UserError, match=r"^--resume: .*two\.pth was written by 2 processes, this launch has 1; "):
        run_pretrain(cfg, str(run_dir), resume=str(two))
    assert snapshot(run_dir) == before



@pytest.mark.parametrize("mode", ["linprobe", "finetune"])
def test_classification_resumed_on_another_number_of_processes_is_refused(mode, toy_root, tmp_path, monkeypatch):
    from asl.engine.classification import run_classification

    cfg = apply_overrides(load_config(os.path.join(REPO, "configs", mode, "toy.py")),
                          [*CLASSIFICATION, f"data.path={toy_root}", "optim.epochs=1", "runtime.max_iters=1"])
    run_dir = tmp_path / "run"
    run_classification(cfg, str(run_dir), mode)
    before = snapshot(run_dir)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(launcher, "join_group", lambda *a: None)
    with pytest.raises(UserError, match=r"^--resume: .*last\.pth was written by 1 processes, this launch has 2; "):
        run_classification(cfg, str(run_dir), mode, resume="auto")
    assert snapshot(run_dir) == before

# ------------------------------------------------------------------------------ 2. a resume file that is missing
@pytest.mark.parametrize("mode", ["pretrain", "linprobe", "finetune"])
def test_resuming_from_a_checkpoint_that_does_not_exist_is_one_line(mode, toy_root, tmp_path, capsys):
    run_dir, missing = tmp_path / "run", tmp_path / "nowhere" / "last.pth"
    if mode == "pretrain":
        argv = [*MICRO, f"data.path={toy_root / 'unlabeled'}"]
    else:
        argv = [os.path.join(REPO, "configs", mode, "toy.py"), *CLASSIFICATION, f"data.path={toy_root}"]
    message = one_line_error(capsys, load_tool(mode).main,
                             [*argv, "--output-dir", str(run_dir), "--resume", str(missing)])
    assert message == f"checkpoint to resume from {str(missing)!r} does not exist"
    assert not run_dir.exists()  # the run directory was not even created


# ----------------------------------------------------------------------------------- 6. no masked patch
def test_the_contrastive_loss_refuses_a_batch_without_a_masked_patch():
    pred, target = torch.randn(2, 4, 12), torch.randn(2, 4, 12)
    with pytest.raises(ValueError) as err:
        patch_contrastive(pred, target, torch.zeros(2, 4))
    assert str(err.value) == "patch_contrastive needs at least one masked patch"
    assert patch_contrastive(pred, target, torch.eye(2, 4)).isfinite()  # one masked patch is enough


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.0, 1.5])
def test_a_mask_ratio_that_masks_no_patch_or_every_patch_is_a_model_config_error(ratio, toy_root, tmp_path):
    """mask_ratio 0 masked no patch: ASL's loss died mid-run with a ValueError traceback, MAE's turned NaN (reported
    as 'lower the lr or use bf16'); ratios >= 1 left the encoder no patch (or a negative count of them)."""
    with pytest.raises(ValueError, match=rf"^mask_ratio must be between 0 and 1 \(exclusive\), got {ratio}$"):
        PretrainModel(dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2),
                      dict(embed_dim=32, depth=1, num_heads=2), "mae", mask_ratio=ratio)
    run_dir = tmp_path / "run"
    with pytest.raises(UserError) as err:
        run_pretrain(pretrain_cfg(toy_root, "optim.epochs=1", f"model.mask_ratio={ratio}"), str(run_dir))
    assert str(err.value) == f"model config: mask_ratio must be between 0 and 1 (exclusive), got {ratio}"
    assert not (run_dir / "checkpoints" / "last.pth").exists() and not (run_dir / "log.jsonl").read_text()


# ---------------------------------------------------------------------------- 7. tools/convert_ckpt.py refusals
@pytest.fixture(scope="module")
def encoder_files(tmp_path_factory):
    """(pretraining checkpoint of a 16-px-patch ViT, its mmseg conversion: a file without a final norm)."""
    folder = tmp_path_factory.mktemp("convert_refusals")
    torch.manual_seed(0)
    model = PretrainModel(dict(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2),
                          dict(embed_dim=32, depth=1, num_heads=2), "asl")
    src = folder / "last.pth"
    save_atomic({"model": model.state_dict(), "config": {"model": {"method": "asl"}}}, src)
    load_tool("convert_ckpt").main([str(src), "--to", "mmseg", "-o", str(folder / "mmseg.pth")])
    return src, folder / "mmseg.pth"


@pytest.mark.parametrize("source, args, message", [
    (0, ["--to", "mmseg", "--img-size", "8"], "--img-size 8 is smaller than the patch size 16"),
    (1, ["--to", "mmseg", "--final-norm"],
     "--final-norm was asked for but the checkpoint has no final norm (norm.weight)"),
])
def test_convert_refuses_with_one_line_and_writes_nothing(source, args, message, encoder_files, tmp_path, capsys):
    out = tmp_path / "out.pth"
    capsys.readouterr()
    assert one_line_error(capsys, load_tool("convert_ckpt").main, [str(encoder_files[source]), *args, "-o",
                                                                   str(out)]) == message
    assert not out.exists()


def test_an_unknown_conversion_target_is_refused(encoder_files, tmp_path, capsys):
    from asl.checkpoint import load_encoder

    state_dict, info = load_encoder(encoder_files[0])
    with pytest.raises(UserError) as err:
        convert(state_dict, info, "onnx")
    assert str(err.value) == "unknown target 'onnx'; choose one of detectron2, mmseg, timm"
    out = tmp_path / "out.pth"
    with pytest.raises(SystemExit) as stop:  # the tool: argparse's choices, usage + one error line, exit 2
        load_tool("convert_ckpt").main([str(encoder_files[0]), "--to", "onnx", "-o", str(out)])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and "argument --to: invalid choice: 'onnx'" in err_lines[-1]
    assert not out.exists()


@pytest.mark.parametrize("how", ["--debug", "ASL_DEBUG=1"])
def test_debug_shows_the_traceback_of_a_user_error(monkeypatch, capsys, how):
    """docs/conventions.md: `--debug` or ASL_DEBUG=1 shows the traceback instead of the one line."""
    argv = ["model.no_such_key=1", "--output-dir", "unused"]
    if how == "--debug":
        argv.append("--debug")
        monkeypatch.setattr("sys.argv", ["pretrain.py", *argv])
    else:
        monkeypatch.setenv("ASL_DEBUG", "1")
    with pytest.raises(UserError, match="no_such_key"):
        load_tool("pretrain").main(argv)
    assert "error: " not in capsys.readouterr().err
    monkeypatch.delenv("ASL_DEBUG", raising=False)
    monkeypatch.setattr("sys.argv", ["pretrain.py"])
    assert "no_such_key" in one_line_error(capsys, load_tool("pretrain").main, argv[:3])


# ---------------------------------------------------------------------- the error contract itself (asl/cli.py)
def test_a_user_error_is_one_line_and_exit_2_a_bug_raises_and_debug_shows_the_traceback(monkeypatch, capsys):
    """docs/conventions.md: a user's mistake is `error: ...` and exit 2 without a traceback, `--debug` or
    ASL_DEBUG=1 shows the traceback instead, and bugs raise normally (never an exit 2 that hides them)."""
    from asl.cli import main_guard

    @main_guard
    def tool(error):
        raise error

    with pytest.raises(SystemExit) as stop:
        tool(UserError("the folder /x does not exist"))
    assert stop.value.code == 2 and capsys.readouterr().err == "error: the folder /x does not exist\n"
    with pytest.raises(ZeroDivisionError):
        tool(ZeroDivisionError("a bug"))
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("ASL_DEBUG", "1")
    with pytest.raises(UserError, match="the folder /x"):
        tool(UserError("the folder /x does not exist"))


def test_a_stop_check_every_that_is_not_a_positive_integer_is_refused(toy_root, tmp_path):
    with pytest.raises(UserError, match=r"runtime.stop_check_every must be a positive integer or None, got 0"):
        run_pretrain(pretrain_cfg(toy_root, "runtime.stop_check_every=0"), str(tmp_path / "run"))


@pytest.mark.parametrize("args", [["--workers", "0"], ["--num-train", "-1"], ["--size", "8"]])
def test_make_toy_data_refuses_bad_counts_with_one_line_and_writes_nothing(args, tmp_path, capsys):
    out = tmp_path / "scenes"
    assert one_line_error(capsys, load_tool("make_toy_data").main, ["--out", str(out), *args]) == (
        "counts must be >= 0, --size >= 16 and --workers >= 1")
    assert not out.exists()
