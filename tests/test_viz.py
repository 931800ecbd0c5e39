import os
import subprocess
import sys

import torch
from PIL import Image
from torchvision import transforms as T

from asl.checkpoint import load_pretrain_model
from asl.config import apply_overrides, load_config
from asl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from asl.engine.pretrain import run_pretrain
from asl.losses import masked_mse
from asl.viz import reconstruct

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_trained_model_beats_mean_patch_baseline_and_figures_are_written(toy_root, tmp_path):
    cfg = apply_overrides(load_config(os.path.join(REPO, "configs", "pretrain", "toy_mae.py")), [
        "model.arch='vit_micro_patch8'", "model.img_size=32", "data.num_workers=0", "optim.batch_size=8",
        "model.decoder={'embed_dim': 32, 'depth': 1, 'num_heads': 2}", "runtime.tensorboard=False",
        f"data.path={toy_root / 'unlabeled'}", "optim.epochs=20", "optim.warmup_epochs=1", "optim.lr=3e-3"])
    run_pretrain(cfg, str(tmp_path / "run"))
    ckpt = tmp_path / "run" / "checkpoints" / "last.pth"
    images = [str(toy_root / "coco" / "val" / f"{i:06d}.png") for i in range(4)]
    out = subprocess.run([sys.executable, os.path.join(REPO, "tools", "visualize.py"), str(ckpt), *images,
                          "--out", str(tmp_path / "figs")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("reconstructions.png", "loss_curves.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 10_000

    model, _ = load_pretrain_model(str(ckpt))
    tf = T.Compose([T.Resize(32), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    imgs = torch.stack([tf(Image.open(p).convert("RGB")) for p in images])
    rec = reconstruct(model, imgs)
    assert rec["plain_pasted"].shape == imgs.shape
    out = model(imgs, generator=torch.Generator().manual_seed(0))
    target = model.target(imgs)
    # the mean-patch baseline predicts every masked patch as its own mean: 0 in the normalised target space
    baseline = masked_mse(torch.zeros_like(target), target, out["mask"]).item()
    assert masked_mse(out["pred"], target, out["mask"]).item() < 0.85 * baseline
