"""Figures: MAE-style reconstructions of both ASL branches and loss curves from log.jsonl."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from .losses import patchify, unpatchify  # noqa: E402


@torch.no_grad()
def reconstruct(model, imgs, seed=0):
    """Per image: the masked input, and per branch the reconstruction and the reconstruction with the visible
    patches pasted back, all in pixel space. With norm_pix_loss the predictions are un-normalised with each
    patch's own mean and variance, as MAE's visualisation does (so these images show structure, not colour).

    Args:
        model: a PretrainModel (put in eval mode).
        imgs: (B, 3, H, W) normalised images.
        seed: seed of the random mask.

    Returns:
        dict of (B, 3, H, W) tensors: `original`, `masked`, and per branch (`plain`, for ASL `enhanced`)
        `<branch>_reconstruction` and `<branch>_pasted` (the visible patches pasted back).
    """
    model.eval()
    out = model(imgs, generator=torch.Generator().manual_seed(seed))
    p = model.patch_size
    patches = patchify(imgs, p)
    mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
    mask = out["mask"].unsqueeze(-1)
    result = {"original": imgs, "masked": unpatchify(patches * (1 - mask), p)}
    branches = {"plain": out["pred"]}
    if "pred_enhanced" in out:
        branches["enhanced"] = out["pred_enhanced"]
    for name, pred in branches.items():
        if model.norm_pix_loss:
            pred = pred * (var + 1e-6) ** 0.5 + mean
        result[f"{name}_reconstruction"] = unpatchify(pred, p)
        result[f"{name}_pasted"] = unpatchify(patches * (1 - mask) + pred * mask, p)
    return result


def _to_image(t):
    img = t.permute(1, 2, 0).cpu().numpy() * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
    return np.clip(img, 0, 1)


def save_reconstructions(result: dict, path: str):
    """One row per image and branch: original | masked | reconstruction | reconstruction + visible."""
    branches = [k[: -len("_reconstruction")] for k in result if k.endswith("_reconstruction")]
    n = result["original"].shape[0]
    fig, axes = plt.subplots(n * len(branches), 4, figsize=(8, 2.1 * n * len(branches)), squeeze=False)
    for i in range(n):
        for j, branch in enumerate(branches):
            row = axes[i * len(branches) + j]
            panels = [("original", result["original"]), ("masked", result["masked"]),
                      (f"{branch}: reconstruction", result[f"{branch}_reconstruction"]),
                      (f"{branch}: + visible", result[f"{branch}_pasted"])]
            for ax, (title, images) in zip(row, panels):
                ax.imshow(_to_image(images[i]))
                ax.set_title(title, fontsize=8)
                ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_loss_curves(log_paths: dict, path: str):
    """Loss terms against steps for each labelled log.jsonl (e.g. {"ASL": ..., "MAE": ...})."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, log_path in log_paths.items():
        with open(log_path) as f:
            records = [json.loads(line) for line in f]
        keys = [k for k in records[0] if k == "loss" or k.startswith("loss_")]
        for key in keys:
            ax.plot([r["step"] for r in records], [r[key] for r in records], label=f"{label} {key}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
