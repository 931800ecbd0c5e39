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


def _chunk_loss(pred, targets, pos_target, own_slot, neg_ids, temperature):
    """Sum over the rows of a chunk of λ·L_i; negatives are targets[neg_ids], the positive is pos_target and
    own_slot[i] the column of row i's own target among the negatives (-1: not drawn), left out of them.

    The rows × negatives logits are the one large tensor, so they are made in few passes: -d/λ through the expansion
    |p|²+|t|²-2p·t in one addmm, the own column set to -inf in place, and the positive joined by logaddexp instead
    of a concatenated copy."""
    scale = 1.0 / (pred.shape[1] * temperature)
    pos = ((pred - pos_target) ** 2).mean(dim=1)  # exactly MAE's per-patch MSE
    # one more candidate, a sink far below every logit: the column a row whose own target was not drawn writes its
    # -inf to, so that one in-place scatter serves every row (no boolean indexing, which would wait for the
    # device); finite, so that a row with no other candidate has a finite logsumexp and gradient (it weighs 0)
    negs = torch.cat([targets[neg_ids], targets.new_zeros(1, targets.shape[1])])
    norms = torch.cat([(negs[:-1] * negs[:-1]).sum(1), negs.new_full((1,), 1e30)])
    logits = torch.addmm(-scale * ((pred * pred).sum(1, keepdim=True) + norms[None]), pred, negs.T, alpha=2 * scale)
    own = torch.where(own_slot >= 0, own_slot, len(neg_ids))[:, None]
    logits = logits.scatter_(1, own, float("-inf")).clamp_max(0)  # the positive counted once; distances are ≥ 0
    lse = torch.logaddexp(-pos / temperature, torch.logsumexp(logits, dim=1))
    return (pos + temperature * lse).sum()


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
    # in float32 whatever the autocast: the expansion subtracts numbers of the distances' size, which bfloat16's
    # 8 bits would turn into noise in every logit
    wide = torch.promote_types(pred.dtype, torch.float32)  # float64 stays float64
    p = pred.reshape(-1, pred.shape[-1])[sel].to(wide)
    t = target.reshape(-1, target.shape[-1])[sel].to(wide)
    n = p.shape[0]
    if n == 0:
        raise ValueError("patch_contrastive needs at least one masked patch")
    if 0 < max_negatives < n:
        neg_ids = torch.randperm(n, device=p.device, generator=generator)[:max_negatives]
    else:
        neg_ids = torch.arange(n, device=p.device)
    slot = torch.full((n,), -1, dtype=torch.long, device=p.device)  # each patch's column among the negatives
    slot[neg_ids] = torch.arange(len(neg_ids), device=p.device)
    total = p.new_zeros(())
    with torch.autocast(p.device.type, enabled=False):
        for start in range(0, n, chunk_size):
            rows = torch.arange(start, min(start + chunk_size, n), device=p.device)
            args = (p[rows], t, t[rows], slot[rows], neg_ids, temperature)
            if torch.is_grad_enabled() and (p.requires_grad or t.requires_grad) and n > chunk_size:
                total = total + checkpoint(_chunk_loss, *args, use_reentrant=False)
            else:
                total = total + _chunk_loss(*args)
    return total / n
