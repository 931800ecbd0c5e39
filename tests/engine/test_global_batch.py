"""optim.global_batch: the recipe's total batch holds on every launch (accum_iter derived from the number of
processes, lr scaled by the total), and a launch it cannot be split over is refused with one line. Several
processes are faked: the launch variables say N, and a one-process gloo group stands in for the others."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from asl.cli import UserError
from asl.config import apply_overrides, load_config
from asl.data.toy import classification_objects
from asl.engine import classification, pretrain
from asl.engine import launch as launcher
from asl.engine.classification import run_classification
from asl.engine.pretrain import run_pretrain
from asl.engine.runtime import accumulation
from asl.optim.schedule import lr_at

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICRO = ["model.arch='vit_micro_patch8'", "model.img_size=32", "data.num_workers=0", "runtime.tensorboard=False",
         "runtime.log_every=1"]
MICRO_PRETRAIN = MICRO + ["model.decoder={'embed_dim': 32, 'depth': 1, 'num_heads': 2}", "optim.warmup_epochs=0"]


def pretrain_cfg(data_path, *overrides, config="toy_asl.py"):
    cfg = load_config(os.path.join(REPO, "configs", "pretrain", config))
    return apply_overrides(cfg, MICRO_PRETRAIN + [f"data.path={data_path}", *overrides])


def read_log(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture
def fake_world(monkeypatch, tmp_path):
    """fake_world(n): this process is rank 0 of n (torchrun's variables), in a one-process gloo group."""

    def join(launch, device):
        torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                                             world_size=1)

    def make(world_size):
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("LOCAL_RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
        monkeypatch.setattr(launcher, "join_group", join)

    yield make
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("optim, world_size, accum, total", [
    (dict(batch_size=64, global_batch=4096), 8, 8, 4096),
    (dict(batch_size=64, global_batch=4096), 64, 1, 4096),
    (dict(batch_size=32, global_batch=4096), 64, 2, 4096),
    (dict(batch_size=64, global_batch=4096, accum_iter=8), 8, 8, 4096),  # a given accum_iter that agrees
    (dict(batch_size=64, global_batch=None, accum_iter=None), 8, 1, 512),  # per process
    (dict(batch_size=64, global_batch=None, accum_iter=3), 2, 3, 384),
])
def test_accum_iter_is_derived_from_the_launch(optim, world_size, accum, total):
    assert accumulation(optim, world_size) == (accum, total)


@pytest.mark.parametrize("optim, world_size, message", [
    (dict(batch_size=48, global_batch=4096), 8, "is 512 per process, which optim.batch_size=48 does not divide; "
                                                "use a batch_size that divides it (e.g. optim.batch_size=32)"),
    (dict(batch_size=64, global_batch=4096), 3, "optim.global_batch=4096 cannot be split over 3 processes"),
    (dict(batch_size=512, global_batch=512), 2, "is 256 per process, which optim.batch_size=512 does not divide"),
    (dict(batch_size=64, global_batch=4096, accum_iter=4), 8, "optim.accum_iter=4 contradicts"),
    (dict(batch_size=64, global_batch=0), 1, "optim.global_batch must be a positive integer"),
])
def test_a_launch_the_batch_cannot_be_split_over_is_refused_with_one_line(optim, world_size, message):
    with pytest.raises(UserError) as err:
        accumulation(optim, world_size)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_recipe_configs_carry_the_papers_total_batch():
    def load(name):
        return load_config(os.path.join(REPO, "configs", "pretrain", name))["optim"]

    for name in ("vitb_coco_asl_800ep.py", "vitb_in1k_mae_800ep.py", "vitb_in100coco_asl_4000ep.py",
                 "vitl_in100coco_mae_800ep.py"):
        assert load(name)["global_batch"] == 4096, name
    assert accumulation(load("vitb_coco_asl_800ep.py"), 8) == (8, 4096)  # 64 per GPU on one node
    assert accumulation(load("vitl_in100coco_asl_800ep.py"), 64) == (2, 4096)  # 32 per GPU
    cifar = load("vits_cifar10_asl_1600ep.py")
    assert cifar["global_batch"] == 512 and accumulation(cifar, 1) == (1, 512)
    with pytest.raises(UserError, match="optim.batch_size=64"):  # the 8-GPU launch: refused, not 4096
        accumulation(cifar, 8)
    assert accumulation({**cifar, "batch_size": 64}, 8) == (1, 512)
    assert load("toy_asl.py")["global_batch"] is None and load("toy_mae.py")["global_batch"] is None


def test_pretraining_on_a_launch_it_cannot_split_over_refuses_before_joining(toy_root, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")  # no other process exists: joining would wait, a refusal must not
    monkeypatch.setattr(launcher, "join_group", lambda *a: pytest.fail("joined before refusing"))
    cfg = pretrain_cfg(toy_root / "unlabeled", "optim.global_batch=16")
    with pytest.raises(UserError, match="cannot be split over 3 processes"):
        run_pretrain(cfg, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_pretraining_as_rank_0_of_4_accumulates_to_the_global_batch(tmp_path, fake_world):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(96):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    fake_world(4)
    cfg = pretrain_cfg(folder, "optim.batch_size=2", "optim.global_batch=32", "optim.epochs=2", "optim.blr=1e-3")
    metrics = run_pretrain(cfg, str(tmp_path / "run"))
    # rank 0 reads 96 / 4 = 24 images an epoch; 2 per micro-batch x accum 32 / (2 x 4) = 4: 3 steps an epoch
    assert metrics["iterations"] == 6
    log = read_log(tmp_path / "run")
    assert len(log) == 6 and log[0]["lr"] == pytest.approx(1e-3 * 32 / 256)  # no warmup: the peak lr at once


def test_accumulated_micro_batches_train_as_one_batch(toy_root, tmp_path):
    """MAE at global batch 16 on one process: batch 16, or batch 8 accumulated twice, gives the same weights."""
    weights = {}
    for batch in (16, 8):
        cfg = pretrain_cfg(toy_root / "unlabeled", f"optim.batch_size={batch}", "optim.global_batch=16",
                           "optim.epochs=2", "optim.lr=1e-3", "model.method='mae'", "model.loss='mse'",
                           config="toy_mae.py")
        metrics = run_pretrain(cfg, str(tmp_path / str(batch)))
        assert metrics["iterations"] == 2  # 24 images: one step of 16 an epoch
        weights[batch] = torch.load(tmp_path / str(batch) / "checkpoints" / "last.pth", weights_only=True)["model"]
    moved = max((weights[16][k] - weights[8][k]).abs().max().item() for k in weights[16])
    assert moved < 3e-5  # float summation order only: 16 samples at once or 8 + 8


def test_linear_probing_as_rank_0_of_2_accumulates_to_the_global_batch(toy_root, tmp_path, fake_world):
    fake_world(2)
    cfg = load_config(os.path.join(REPO, "configs", "linprobe", "toy.py"))
    cfg = apply_overrides(cfg, MICRO + [f"data.path={toy_root}", "optim.batch_size=2", "optim.global_batch=8",
                                        "optim.epochs=1", "optim.warmup_epochs=0", "data.cache_features=True"])
    metrics = run_classification(cfg, str(tmp_path / "run"), "linprobe")
    steps = len(classification_objects(str(toy_root), "train")) // 2 // 2 // 2  # rank 0's half, 2 x accum 2
    assert metrics["iterations"] == steps > 1
    lr = cfg["optim"]["blr"] * 8 / 256  # the lr of the last step, on the cosine from the global batch's peak
    assert read_log(tmp_path / "run")[-1]["lr"] == pytest.approx(lr_at(steps - 1, lr, 0, steps), rel=1e-6)


@pytest.fixture
def count_syncs(monkeypatch):
    """The number of gradient all-reduces DDP makes (bucket 0 of each), in the loops' DDP wrappers."""
    syncs = []

    def hook(state, bucket):
        if bucket.index() == 0:
            syncs.append(1)
        return default_hooks.allreduce_hook(state, bucket)

    class Counting(DistributedDataParallel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.register_comm_hook(None, hook)

    monkeypatch.setattr(classification, "DistributedDataParallel", Counting)
    monkeypatch.setattr(pretrain, "DistributedDataParallel", Counting)
    return syncs


@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
def test_accumulation_all_reduces_gradients_once_per_step(toy_root, tmp_path, fake_world, count_syncs, mode):
    """Rank 0 of 2 at accumulation 4: DDP syncs gradients on the last micro-step of each step only (no_sync on
    the others), in both loops."""
    fake_world(2)
    if mode == "pretrain":
        cfg = pretrain_cfg(toy_root / "unlabeled", "optim.batch_size=2", "optim.global_batch=16", "optim.epochs=2")
        metrics = run_pretrain(cfg, str(tmp_path / "run"))
    else:
        cfg = load_config(os.path.join(REPO, "configs", "finetune", "toy.py"))
        cfg = apply_overrides(cfg, MICRO + [f"data.path={toy_root}", "optim.batch_size=2", "optim.global_batch=16",
                                            "optim.epochs=2", "optim.warmup_epochs=0"])
        metrics = run_classification(cfg, str(tmp_path / "run"), "finetune")
    assert metrics["iterations"] >= 2 and len(count_syncs) == metrics["iterations"]
