"""Pretraining losses (docs/design.md, Patch-level contrastive loss and L_SEM): MAE's masked MSE and ASL's
patch-level contrastive loss.

Patch-level contrastive loss (appendix Eq. 3): every masked patch is its own class. For a prediction p_i with
target t_i and the set B of masked-patch targets of the local batch,
    L_i = -log( exp(-d(p_i, t_i) / λ) / Σ_{t in B} exp(-d(p_i, t) / λ) ),   d = mean squared difference.
[ours] d is a per-dimension mean, so d(p_i, t_i) is exactly MAE's per-patch MSE, and the loss is returned
multiplied by λ: its positive term is then MAE's MSE itself (same scale and gradients as MAE whatever λ is),
and the rest, λ·logsumexp, pushes predictions away from the other patches' targets.
"""
import torch
from torch.utils.checkpoint import checkpoint


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p*p*C) in MAE's order (row-major patches, pixels (p, q, c))."""
    B, C, H, W = imgs.shape
    h, w = H // patch_size, W // patch_size
    x = imgs.reshape(B, C, h, patch_size, w, patch_size)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(B, h * w, patch_size ** 2 * C)


def unpatchify(x: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """(B, L, p*p*C) -> (B, C, H, W), the inverse of `patchify` (L must be a square number of patches)."""
    B, L, _ = x.shape
    h = w = int(round(L ** 0.5))
    x = x.reshape(B, h, w, patch_size, patch_size, channels)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(B, channels, h * patch_size, w * patch_size)


def normalize_patches(target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """MAE's norm_pix_loss target: every patch normalised by its own mean and variance."""
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps) ** 0.5


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MAE's loss: per-patch mean squared error, averaged over the masked patches.

    Args:
        pred, target: (B, L, D) per-patch predictions and targets.
        mask: (B, L), 1 = masked (the patches the loss is taken over).

    Returns:
        a scalar tensor.
    """
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


def _chunk_loss(pred, targets, pos_target, row_ids, neg_ids, temperature):
    """Sum over the rows of a chunk of λ·L_i; negatives are targets[neg_ids], the positive is pos_target."""
    dim = pred.shape[1]
    pos = ((pred - pos_target) ** 2).mean(dim=1)  # exactly MAE's per-patch MSE
    negs = targets[neg_ids]
    # mean squared distance to every candidate via the expansion |p|²+|t|²-2p·t (one matmul per chunk)
    dist = ((pred * pred).sum(1, keepdim=True) + (negs * negs).sum(1)[None] - 2 * pred @ negs.T) / dim
    logits = -dist.clamp_min(0) / temperature
    logits = logits.masked_fill(neg_ids[None] == row_ids[:, None], float("-inf"))  # positive counted once
    all_logits = torch.cat([(-pos / temperature)[:, None], logits], dim=1)
    return (pos + temperature * torch.logsumexp(all_logits, dim=1)).sum()


def patch_contrastive(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
                      chunk_size: int = 4096, max_negatives: int = 0, generator=None) -> torch.Tensor:
    """Mean over masked patches of λ·L_i (module docstring).

    The N×N logits (N = masked patches of the batch) are built chunk by chunk of `chunk_size` rows, each under
    activation checkpointing, so memory is O(chunk_size × N) forward and backward.

    Args:
        pred, target: (B, L, D) per-patch predictions and targets.
        mask: (B, L), 1 = masked; only masked patches are rows and candidates.
        temperature: λ.
        chunk_size: rows of logits built at once.
        max_negatives: > 0 draws that many candidates at random (shared by all rows of a step) instead of all N.
        generator: the torch.Generator of that draw (default: the global RNG).

    Returns:
        a scalar tensor.
    """
    sel = mask.reshape(-1).bool()
    p = pred.reshape(-1, pred.shape[-1])[sel]
    t = target.reshape(-1, target.shape[-1])[sel]
    n = p.shape[0]
    if n == 0:
        raise ValueError("patch_contrastive needs at least one masked patch")
    if 0 < max_negatives < n:
        neg_ids = torch.randperm(n, device=p.device, generator=generator)[:max_negatives]
    else:
        neg_ids = torch.arange(n, device=p.device)
    total = p.new_zeros(())
    for start in range(0, n, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n), device=p.device)
        args = (p[rows], t, t[rows], rows, neg_ids, temperature)
        if torch.is_grad_enabled() and (p.requires_grad or t.requires_grad) and n > chunk_size:
            total = total + checkpoint(_chunk_loss, *args, use_reentrant=False)
        else:
            total = total + _chunk_loss(*args)
    return total / n
