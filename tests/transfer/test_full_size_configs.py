"""The real detection and segmentation configs (configs/coco_vitb.py at 1024 LSJ, configs/ade20k_vitb_upernet.py
at 512 crops, ViT-B) run a couple of iterations on the CPU on full-size scenes laid out as COCO and ADE20K
(slow: minutes; what tools/gpu_check.sh times on a GPU)."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=REPO)


def tool(*argv):
    out = subprocess.run([sys.executable, *map(str, argv)], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def full_size_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("full_size")
    tool("tools/make_toy_data.py", "--out", root / "toy_scenes", "--size", 640, "--num-unlabeled", 0,
         "--num-train", 4, "--num-val", 2, "--standard-layouts", root)
    return root


def test_coco_vitb_runs_on_full_size_scenes(full_size_root, tmp_path):
    tool("tools/train_det.py", "configs/coco_vitb.py", "--data-root", full_size_root, "--output-dir", tmp_path,
         "train.max_iter=2", "dataloader.train.total_batch_size=1", "dataloader.train.num_workers=0",
         "dataloader.test.num_workers=0", "train.log_period=1")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["iterations"] == 2 and metrics["model"] == "vit_base_patch16" and "box_AP" in metrics["metrics"]
    assert "instance_mask_format: bitmask" in (tmp_path / "config.yaml").read_text()  # the scenes' masks are RLE


def test_ade20k_vitb_runs_on_full_size_scenes(full_size_root, tmp_path):
    tool("tools/train_seg.py", "configs/ade20k_vitb_upernet.py", "--data-root", full_size_root, "--output-dir",
         tmp_path, "train_cfg.max_iters=2", "train_cfg.val_interval=2", "train_dataloader.batch_size=2",
         "train_dataloader.num_workers=0", "val_dataloader.num_workers=0")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["iterations"] == 2 and metrics["dataset"] == "ade20k" and "mIoU" in metrics["metrics"]
