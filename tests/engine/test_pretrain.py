import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from asl.cli import UserError
from asl.config import apply_overrides, load_config
from asl.data.images import ImageFolder
from asl.engine.pretrain import run_pretrain

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "pretrain.py")
# a micro model on 32 px crops of the toy scenes: seconds per run
MICRO = ["model.arch='vit_micro_patch8'", "model.img_size=32", "model.decoder={'embed_dim': 32, 'depth': 1, "
         "'num_heads': 2}", "data.num_workers=0", "optim.batch_size=8", "runtime.tensorboard=False",
         "runtime.log_every=1"]


def micro_cfg(data_path, *overrides):
    cfg = load_config(os.path.join(REPO, "configs", "pretrain", "toy_asl.py"))
    return apply_overrides(cfg, MICRO + [f"data.path={data_path}", *overrides])


def read_log(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("method", ["asl", "mae"])
def test_toy_run_lowers_the_loss(toy_root, tmp_path, method):
    extra = ["model.method='mae'", "model.loss='mse'"] if method == "mae" else []
    cfg = micro_cfg(toy_root / "unlabeled", "optim.epochs=20", "optim.warmup_epochs=1", "optim.lr=3e-3", *extra)
    metrics = run_pretrain(cfg, str(tmp_path))
    losses = [r["loss"] for r in read_log(tmp_path)]
    assert metrics["iterations"] == 60 and len(losses) == 60
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < first - 0.1 * abs(first), (first, last)
    saved = torch.load(tmp_path / "checkpoints" / "last.pth", weights_only=True)
    assert saved["iteration"] == 60 and ("enhance.block.attn.qkv.weight" in saved["model"]) == (method == "asl")


def test_sigkill_then_resume_auto_matches_an_uninterrupted_run(toy_root, tmp_path):
    common = [sys.executable, TOOL, *MICRO, f"data.path={toy_root / 'unlabeled'}", "optim.epochs=12",
              "runtime.save_every_iters=2"]  # mid-epoch: 3 steps an epoch
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([*common, "--output-dir", str(tmp_path / "ref")], check=True, env=env, capture_output=True)
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([*common, "--output-dir", str(run_dir)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = run_dir / "log.jsonl"
    while proc.poll() is None and not (log.exists() and len(log.read_text().splitlines()) >= 17):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(log.read_text().splitlines())
    assert 17 <= killed_at < 36, "the run must be killed mid-way"
    ckpt = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)  # never half-written
    assert 0 < ckpt["iteration"] <= killed_at
    out = subprocess.run([*common, "--output-dir", str(run_dir), "--resume", "auto"], env=env,
                         capture_output=True, text=True, check=True)
    assert f"resumed from {run_dir / 'checkpoints' / 'last.pth'} at iteration {ckpt['iteration']}" in out.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    ref_metrics = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    assert metrics["iterations"] == 36 and metrics["wall_time_s"] > ckpt["elapsed_s"] > 0  # both pieces counted
    assert metrics["metrics"]["loss"] == pytest.approx(ref_metrics["metrics"]["loss"], rel=1e-4)
    ref = torch.load(tmp_path / "ref" / "checkpoints" / "last.pth", weights_only=True)["model"]
    resumed = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)["model"]
    for key in ref:
        assert torch.allclose(ref[key], resumed[key], rtol=0, atol=1e-6), key
    assert not [f for f in os.listdir(run_dir / "checkpoints") if f.startswith(".tmp")]


def test_resuming_a_finished_run_keeps_its_loss_and_time(toy_root, tmp_path):
    cfg = micro_cfg(toy_root / "unlabeled", "optim.epochs=2")
    first = run_pretrain(cfg, str(tmp_path))
    again = run_pretrain(cfg, str(tmp_path), resume="auto")
    assert again["iterations"] == first["iterations"] == 6
    assert again["metrics"]["loss"] == first["metrics"]["loss"] is not None
    saved = torch.load(tmp_path / "checkpoints" / "last.pth", weights_only=True)["elapsed_s"]
    assert again["wall_time_s"] >= saved > 0.5 * first["wall_time_s"]  # the first run's time, not ~0



def test_the_wall_time_of_a_resumed_run_is_the_sum_of_its_pieces(toy_root, tmp_path):
    """docs/conventions.md: metrics.json's wall_time_s sums the pieces. The first piece's time, as its checkpoint
    records it, is set to 1,000 s: the total is that plus the second piece, not the second piece alone."""
    run_pretrain(micro_cfg(toy_root / "unlabeled", "optim.epochs=2", "runtime.max_iters=3"), str(tmp_path))
    last = tmp_path / "checkpoints" / "last.pth"
    torch.save({**torch.load(last, weights_only=True), "elapsed_s": 1000.0}, last)
    start = time.time()
    record = run_pretrain(micro_cfg(toy_root / "unlabeled", "optim.epochs=2"), str(tmp_path), resume="auto")
    assert record["iterations"] == 6
    assert 1000.0 < record["wall_time_s"] <= 1000.0 + time.time() - start

def test_two_process_gloo_ddp(toy_root, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", TOOL,
           *MICRO, f"data.path={toy_root / 'unlabeled'}", "optim.epochs=2", "--output-dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 process(es) on cpu, batch 16" in out.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["iterations"] == 2 * (24 // 2 // 8)


def _broken_folder(root):
    good = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    os.makedirs(root / "nested" / "deeper")
    good.save(root / "a.png")
    good.save(root / "nested" / "b.jpg")
    good.save(root / "nested" / "deeper" / "c.webp")
    good.save(root / "d.bmp")
    good.convert("L").save(root / "gray.png")
    good.convert("RGBA").save(root / "rgba.png")
    good.convert("P").save(root / "palette.png")
    good.convert("CMYK").save(root / "cmyk.jpg")
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("not an image")
    data = (root / "a.png").read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    Image.new("1", (14000, 14000)).save(root / "bomb.png")  # 196 Mpixel header: a decompression bomb
    (root / "notes.txt").write_text("ignored: not an image extension")
    return 8, 4  # readable, broken


def test_broken_images_are_skipped_and_counted(tmp_path):
    good, bad = _broken_folder(tmp_path / "imgs")
    ds = ImageFolder(str(tmp_path / "imgs"))
    assert len(ds) == good + bad
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        samples = [ds[i] for i in range(len(ds))]
    assert sum(s is None for s in samples) == bad
    assert all(s.mode == "RGB" for s in samples if s is not None)
    cfg = micro_cfg(tmp_path / "imgs", "optim.batch_size=4", "optim.epochs=2", "optim.warmup_epochs=0")
    metrics = run_pretrain(cfg, str(tmp_path / "run"))
    assert metrics["iterations"] == 6 and metrics["metrics"]["skipped_files"] == 2 * bad


def test_missing_or_empty_folder_is_a_clear_error_before_training(tmp_path):
    (tmp_path / "empty").mkdir()
    for path, message in ((tmp_path / "nope", "does not exist"), (tmp_path / "empty", "no images")):
        out = subprocess.run([sys.executable, TOOL, *MICRO, "--data-path", str(path), "--output-dir",
                              str(tmp_path / "run")], capture_output=True, text=True)
        assert out.returncode == 2 and out.stderr.startswith("error: ") and message in out.stderr
        assert "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, TOOL, "optim.epochz=3"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown config key 'optim.epochz'" in out.stderr
    with pytest.raises(UserError):
        ImageFolder(str(tmp_path / "empty"))


def test_compiled_pretraining_matches_eager(toy_root, tmp_path):
    """runtime.compile=True (torch.compile, on the CPU here) trains the same steps as eager mode: same masks (the
    compiled graph draws eager's random numbers), losses and weights equal to float tolerance."""
    runs = {}
    for compiled in (False, True):
        cfg = micro_cfg(toy_root / "unlabeled", "optim.epochs=1", f"runtime.compile={compiled}")
        run_pretrain(cfg, str(tmp_path / str(compiled)))
        runs[compiled] = [r["loss"] for r in read_log(tmp_path / str(compiled))]
    assert len(runs[True]) == 3 and runs[True] == pytest.approx(runs[False], rel=1e-4)
    eager, compiled = (torch.load(tmp_path / str(c) / "checkpoints" / "last.pth", weights_only=True)["model"]
                       for c in (False, True))
    assert all(torch.allclose(eager[k], compiled[k], atol=1e-5) for k in eager)


@pytest.mark.slow  # three compilations on the CPU
def test_a_compiled_run_resumed_mid_epoch_equals_the_uninterrupted_compiled_run(toy_root, tmp_path):
    """runtime.compile=True, stopped after step 2 of a 3-step epoch and resumed (compiled again): the weights of
    the uninterrupted compiled run, to 1e-6 (docs/benchmarks.md: the compiled graph draws eager's random numbers,
    so masks, and resumes, stay exact)."""
    run_pretrain(micro_cfg(toy_root / "unlabeled", "optim.epochs=1", "runtime.compile=True"), str(tmp_path / "whole"))
    for piece, stop in enumerate((2, None)):
        cfg = micro_cfg(toy_root / "unlabeled", "optim.epochs=1", "runtime.compile=True", f"runtime.max_iters={stop}")
        run_pretrain(cfg, str(tmp_path / "pieces"), resume="auto" if piece else None)
    whole, pieces = (torch.load(tmp_path / d / "checkpoints" / "last.pth", weights_only=True)["model"]
                     for d in ("whole", "pieces"))
    assert max((whole[k].float() - pieces[k].float()).abs().max().item() for k in whole) <= 1e-6
