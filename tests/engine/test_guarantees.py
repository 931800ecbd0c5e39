"""The guarantees README.md / docs/usage.md / docs/cluster.md make about the toolkit's own training loops, each held
by a test that fails when it breaks:

* a NaN or infinite loss stops the run with a one-line message and keeps the last checkpoint (pretraining, linear
  probing, fine-tuning; docs/usage.md);
* linear probing on cached features is exact: the head trains as it would through the frozen encoder
  (docs/usage.md, `data.cache_features`);
* linear probing resumed mid-epoch ends where an uninterrupted run does (docs/cluster.md);
* with DataLoader workers (num_workers=2), a stop signal sent to the whole job saves a checkpoint and exits 75, and
  the resumed run equals an uninterrupted one (docs/cluster.md).
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from asl.checkpoint import save_atomic
from asl.config import apply_overrides, load_config
from asl.data.transforms import eval_transform
from asl.engine import classification
from asl.engine.classification import run_classification
from asl.models import build_pretrain_model
from asl.signals import EXIT_PREEMPTED

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = {stage: os.path.join(REPO, "tools", f"{stage}.py") for stage in ("pretrain", "linprobe", "finetune")}
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
PRETRAIN_MICRO = ["model.arch='vit_micro_patch8'", "model.img_size=32", "model.decoder={'embed_dim': 32, "
                  "'depth': 1, 'num_heads': 2}", "data.num_workers=0", "optim.batch_size=8",
                  "runtime.tensorboard=False", "runtime.log_every=1", "optim.warmup_epochs=1"]
CLS_MICRO = ["model.arch='vit_micro_patch8'", "model.img_size=32", "data.num_workers=0", "runtime.tensorboard=False",
             "runtime.eval_every=1", "runtime.log_every=1"]

# Runs a tool (argv[1] onwards) with the loss of the POISON_AT_CALL-th forward (pretraining) or criterion call
# (classification) multiplied by POISON (nan or inf), so its backward makes non-finite gradients too; every
# checkpoint the run writes as last.pth is also copied to last.pth.<iteration>, so the test sees each save and what
# it held.
POISONED_TOOL = """
import os, runpy, shutil, sys
import torch
from asl.engine import classification, pretrain, runtime

bad_call, poison, calls = int(os.environ["POISON_AT_CALL"]), float(os.environ["POISON"]), [0]

def poisoned(loss):
    calls[0] += 1
    return loss * poison if calls[0] == bad_call else loss

build_model, build_criterion, save = pretrain.build_pretrain_model, classification.build_criterion, runtime.Session.save

def build_pretrain_model(*args, **kwargs):
    model = build_model(*args, **kwargs)
    model.register_forward_hook(lambda module, inputs, out: {**out, "loss": poisoned(out["loss"])})
    return model

def build_poisoned_criterion(*args):
    mixup, criterion = build_criterion(*args)
    return mixup, lambda logits, target: poisoned(criterion(logits, target))

def recorded_save(self, name, state):
    save(self, name, state)
    if name == "last.pth":
        shutil.copy(self.path("checkpoints", name), self.path("checkpoints", f"{name}.{state['iteration']}"))

pretrain.build_pretrain_model, classification.build_criterion = build_pretrain_model, build_poisoned_criterion
runtime.Session.save = recorded_save
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def weights(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoints", "last.pth"), weights_only=True)["model"]


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def logged(run_dir, key):
    """`key` of every log.jsonl record (None where a record lacks it)."""
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [json.loads(line).get(key) for line in f]


def assert_same_log(run_dir, ref_dir, keys, rel):
    for key in keys:
        ref = logged(ref_dir, key)
        assert None not in ref, key
        assert logged(run_dir, key) == pytest.approx(ref, rel=rel, abs=0), key


def cls_cfg(mode, toy_root, *overrides):
    cfg = load_config(os.path.join(REPO, "configs", mode, "toy.py"))
    return apply_overrides(cfg, CLS_MICRO + [f"data.path={toy_root}", *overrides])


def micro_checkpoint(path):
    torch.manual_seed(0)
    model = build_pretrain_model("vit_micro_patch8", 32, "asl", decoder=dict(embed_dim=32, depth=1, num_heads=2))
    save_atomic({"model": model.state_dict(), "config": {"model": {"arch": "vit_micro_patch8"}}}, path)


# ---------------------------------------------------------------------------------------------- non-finite loss
def run_poisoned(stage, args, run_dir, bad_call, poison):
    out = subprocess.run([sys.executable, "-c", POISONED_TOOL, TOOLS[stage], *args, "--output-dir", str(run_dir)],
                         env=dict(ENV, POISON_AT_CALL=str(bad_call), POISON=poison), capture_output=True, text=True,
                         timeout=300)
    saves = {int(p.rsplit(".", 1)[1]): p for p in glob.glob(os.path.join(run_dir, "checkpoints", "last.pth.*"))}
    return out, saves


def assert_stopped_with_the_last_good_checkpoint(out, saves, run_dir, last_good, poison):
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: loss is {poison}"), out.stderr[-3000:]
    assert "checkpoint" in lines[0] and "intact" in lines[0]
    assert max(saves) == last_good, sorted(saves)  # nothing saved at or after the bad step
    last = os.path.join(run_dir, "checkpoints", "last.pth")
    with open(last, "rb") as f, open(saves[last_good], "rb") as g:
        assert f.read() == g.read()  # the checkpoint of the last good step, untouched
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["iteration"] == last_good
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not os.path.exists(os.path.join(run_dir, "metrics.json"))


@pytest.mark.parametrize("poison", ["nan", "inf"])
def test_pretraining_stops_on_a_non_finite_loss_and_keeps_the_last_checkpoint(toy_root, tmp_path, poison):
    """3 steps an epoch; checkpoints at steps 2 (save_every_iters), 3 (epoch end) and would be at 4: the loss of
    step 4 is NaN / inf, so its weights must never reach last.pth, which stays the checkpoint of step 3."""
    args = [*PRETRAIN_MICRO, f"data.path={toy_root / 'unlabeled'}", "optim.epochs=4", "runtime.save_every_iters=2"]
    out, saves = run_poisoned("pretrain", args, tmp_path, bad_call=4, poison=poison)
    assert_stopped_with_the_last_good_checkpoint(out, saves, tmp_path, last_good=3, poison=poison)
    assert "between iterations 4 and 4" in out.stderr


@pytest.mark.parametrize("mode, poison", [("linprobe", "nan"), ("finetune", "nan"), ("linprobe", "inf")])
def test_classification_stops_on_a_non_finite_loss_and_keeps_the_last_checkpoint(toy_root, tmp_path, mode, poison):
    """26 training crops, batch 8: 3 steps an epoch; checkpoints at steps 2 (save_every_iters) and 3 (epoch end),
    and would be at 4, whose loss is NaN / inf."""
    args = [*CLS_MICRO, f"data.path={toy_root}", "optim.batch_size=8", "optim.epochs=4",
            "runtime.save_every_iters=2"]
    out, saves = run_poisoned(mode, args, tmp_path, bad_call=4, poison=poison)
    assert_stopped_with_the_last_good_checkpoint(out, saves, tmp_path, last_good=3, poison=poison)


# ----------------------------------------------------------------------------------------- cached linear probing
def test_linear_probing_on_cached_features_equals_probing_through_the_encoder(toy_root, tmp_path, monkeypatch):
    """data.cache_features=True "computes the frozen features once with the eval transform, which is exact for a
    frozen deterministic encoder" (docs/usage.md). With the training transform made the eval transform (the one
    thing the cache changes on purpose), the cached run must train the same head, log the same losses and reach
    the same accuracy as the run that passes every batch through the encoder."""
    micro_checkpoint(tmp_path / "asl.pth")
    monkeypatch.setattr(classification, "train_transform",
                        lambda mode, cfg: eval_transform(cfg["model"]["img_size"]))
    runs = {}
    for cached in (False, True):
        cfg = cls_cfg("linprobe", toy_root, "optim.batch_size=8", "optim.epochs=3", f"data.cache_features={cached}",
                      f"model.init='{tmp_path / 'asl.pth'}'")
        runs[cached] = run_classification(cfg, str(tmp_path / str(cached)), "linprobe")
    through, cached = weights(tmp_path / "False"), weights(tmp_path / "True")
    # the frozen encoder is untouched either way. The head (BatchNorm statistics and the linear layer) is not
    # bit-identical: a feature computed in another batch composition (shuffled training batches vs the cache's
    # sequential ones) may differ in its last float32 bit; measured differences are <= 4e-7 (BatchNorm running_var)
    # and <= 1e-8 (linear layer), the train losses agree to 3e-8 relative. A lossy cache (bf16 / fp16 features,
    # relative error ~1e-3) or another transform moves them by orders of magnitude more.
    assert all(torch.equal(through[k], cached[k]) for k in through if k.startswith("encoder."))
    assert max_difference(through, cached) <= 1e-6
    assert runs[True]["metrics"] == runs[False]["metrics"]
    assert_same_log(tmp_path / "True", tmp_path / "False", ("step", "train_loss", "top1"), rel=1e-6)


# ----------------------------------------------------------------------------------- linear probing resumes exactly
@pytest.mark.parametrize("cached", [False, True])
def test_linear_probing_resumed_mid_epoch_equals_an_uninterrupted_run(toy_root, tmp_path, cached):
    """Batch 4: 6 steps an epoch, 12 steps; pieces end at steps 3 and 7 (both mid-epoch), the last one finishes.
    Random crops and flips (uncached), LARS momentum and the head's BatchNorm statistics all carry over."""
    cfg = lambda *extra: cls_cfg("linprobe", toy_root, "optim.batch_size=4", "optim.epochs=2",  # noqa: E731
                                 "optim.warmup_epochs=1", f"data.cache_features={cached}", *extra)
    ref = run_classification(cfg(), str(tmp_path / "ref"), "linprobe")
    assert ref["iterations"] == 12
    run_dir = str(tmp_path / "pieces")
    for piece, stop in enumerate((3, 7, None)):
        out = run_classification(cfg(f"runtime.max_iters={stop}"), run_dir, "linprobe",
                                 resume="auto" if piece else None)
        assert out["iterations"] == (stop or 12)
        if stop:
            assert torch.load(os.path.join(run_dir, "checkpoints", "last.pth"),
                              weights_only=True)["micro_in_epoch"] == stop % 6  # stopped mid-epoch
    assert max_difference(weights(tmp_path / "ref"), weights(run_dir)) <= 1e-6
    assert out["metrics"] == ref["metrics"]
    assert_same_log(run_dir, tmp_path / "ref", ("step", "epoch", "train_loss", "lr", "top1"), rel=1e-6)


# --------------------------------------------------------------------------- DataLoader workers and a stop signal
def assert_group_gone(pgid, timeout=30):
    """No process of the tool's group (its loader workers) outlives it."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of group {pgid} outlived the tool")


def preempt_and_resume(cmd, run_dir, step):
    """Run `cmd` into `run_dir`; once it prints the progress line of `step` (mid-epoch: the epoch's loader workers
    are alive), SIGUSR1 to its whole process group, the tool and its workers, as SLURM's --signal=USR1@N does.
    Check the clean stop (exit 75, one line, no process left), then resume it to the end; returns the checkpoint
    the signal saved."""
    proc = subprocess.Popen([*cmd, "--output-dir", str(run_dir)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    for line in proc.stdout:  # the loops print every step (runtime.log_every=1), flushed
        if f" it {step}/" in line:
            break
    assert proc.poll() is None, "the run ended before the signal"
    os.killpg(proc.pid, signal.SIGUSR1)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == EXIT_PREEMPTED, err[-3000:]
    assert "Traceback" not in err and "DataLoader worker" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("preempted: SIGUSR1 received: saved iteration ")
    assert_group_gone(proc.pid)
    saved = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)
    assert step <= saved["iteration"] and saved["micro_in_epoch"] > 0  # stopped mid-epoch, as signalled
    assert not (run_dir / "metrics.json").exists()
    out = subprocess.run([*cmd, "--output-dir", str(run_dir), "--resume", "auto"], env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"at iteration {saved['iteration']}" in out.stdout
    return saved


def test_pretraining_with_two_workers_stops_on_sigusr1_and_resumes_exactly(toy_root, tmp_path):
    """The reference runs without workers: each sample's augmentation is seeded by (seed, epoch, index) whichever
    worker loads it, so the number of workers (a key a resume may change) changes nothing."""
    common = [sys.executable, TOOLS["pretrain"], *PRETRAIN_MICRO, f"data.path={toy_root / 'unlabeled'}",
              "optim.epochs=6"]  # 3 steps an epoch, 18 steps
    subprocess.run([*common, "--output-dir", str(tmp_path / "ref")], check=True, env=ENV, capture_output=True)
    run_dir = tmp_path / "preempted"
    saved = preempt_and_resume([*common, "data.num_workers=2"], run_dir, step=4)
    assert saved["iteration"] < 18
    assert max_difference(weights(tmp_path / "ref"), weights(run_dir)) <= 1e-6
    assert logged(run_dir, "step") == list(range(1, 19))  # one record per step: none repeated or lost
    assert_same_log(run_dir, tmp_path / "ref", ("loss", "lr"), rel=1e-5)


def test_finetuning_with_two_workers_stops_on_sigusr1_and_resumes_exactly(toy_root, tmp_path):
    """RandAugment, random erasing (in the workers), mixup and drop path (in the main process); evaluation after
    every epoch with workers too. The reference runs without workers."""
    common = [sys.executable, TOOLS["finetune"], *CLS_MICRO, f"data.path={toy_root}", "optim.batch_size=4",
              "optim.epochs=4", "optim.warmup_epochs=1"]  # 6 steps an epoch, 24 steps
    subprocess.run([*common, "--output-dir", str(tmp_path / "ref")], check=True, env=ENV, capture_output=True)
    run_dir = tmp_path / "preempted"
    saved = preempt_and_resume([*common, "data.num_workers=2"], run_dir, step=8)
    assert saved["iteration"] < 24
    assert max_difference(weights(tmp_path / "ref"), weights(run_dir)) <= 1e-6
    resumed, ref = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, tmp_path / "ref"))
    assert resumed["iterations"] == 24 and resumed["metrics"] == ref["metrics"]
    assert_same_log(run_dir, tmp_path / "ref", ("step", "epoch", "train_loss", "lr", "top1"), rel=1e-5)
