"""Gradient accumulation with two real gloo processes: DDP all-reduces the gradients on the last micro-step of each
step only (no_sync on the others), and the loops add no collective per micro-step (the loss is read at log,
save and stop checks only), in both training loops."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # two torchrun launches (make test-slow, which .ci/run runs)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = """
import json, os, sys
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel
from asl.config import apply_overrides, load_config
from asl.engine import classification, pretrain

mode, data, out, config = sys.argv[1:5]
counts = {"gradient_syncs": 0, "bucket_all_reduces": 0, "all_reduces": 0}

def hook(state, bucket):  # DDP's default hook, counted: its all_reduce calls are the gradients'
    counts["gradient_syncs"] += bucket.index() == 0
    counts["bucket_all_reduces"] += 1
    return default_hooks.allreduce_hook(state, bucket)

class Counting(DistributedDataParallel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_comm_hook(None, hook)

real_all_reduce = dist.all_reduce
def all_reduce(*args, **kwargs):
    counts["all_reduces"] += 1
    return real_all_reduce(*args, **kwargs)

classification.DistributedDataParallel = pretrain.DistributedDataParallel = Counting
dist.all_reduce = all_reduce
cfg = apply_overrides(load_config(config), sys.argv[5:] + [f"data.path={data}"])
run = pretrain.run_pretrain if mode == "pretrain" else classification.run_classification
metrics = run(cfg, os.path.join(out, "run"), *([] if mode == "pretrain" else [mode]))
other = counts["all_reduces"] - counts["bucket_all_reduces"]
with open(os.path.join(out, f"rank{os.environ['RANK']}.json"), "w") as f:
    json.dump(dict(counts, other_all_reduces=other, iterations=metrics["iterations"]), f)
"""
COMMON = ["model.arch='vit_micro_patch8'", "model.img_size=32", "data.num_workers=0", "runtime.tensorboard=False",
          "optim.warmup_epochs=0", "runtime.log_every=1000"]


@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
def test_two_processes_at_accumulation_4_sync_gradients_once_per_step(toy_root, tmp_path, mode):
    if mode == "pretrain":
        config, data = "configs/pretrain/toy_asl.py", toy_root / "unlabeled"
        # 12 images a process, batch 1 x accum 4: 3 steps an epoch
        extra = ["model.decoder={'embed_dim': 32, 'depth': 1, 'num_heads': 2}", "optim.batch_size=1",
                 "optim.global_batch=8", "optim.epochs=4", "runtime.save_every_epochs=100"]
    else:
        config, data = "configs/finetune/toy.py", toy_root
        # no mixup, which needs an even batch: batch 1 x accum 4, several steps an epoch
        extra = ["optim.batch_size=1", "optim.global_batch=8", "optim.epochs=4", "aug.mixup=0", "aug.cutmix=0",
                 "runtime.eval_every=100"]
    script = tmp_path / "count.py"
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          "29547" if mode == "pretrain" else "29548", str(script), mode, str(data), str(tmp_path),
                          os.path.join(REPO, config), *COMMON, *extra],
                         capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "x 2 x accum 4" in out.stdout
    for rank in (0, 1):
        counts = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert counts["iterations"] >= 10
        assert counts["gradient_syncs"] == counts["iterations"]  # 4 micro-steps a step, one all-reduce
        # the loops' own collectives (loss reads at epoch end and stop checks, evaluation, the run's start and
        # end): a handful, not one a micro-step
        assert counts["other_all_reduces"] < counts["iterations"], counts
