"""Learning-rate schedule shared by every loop: per-iteration linear warmup, then half-cycle cosine (MAE)."""
import math


def lr_at(step: float, base_lr: float, warmup: float, total: float, min_lr: float = 0.0) -> float:
    """lr at optimizer step `step`: linear from 0 over `warmup` steps, then cosine down to min_lr at `total`."""
    if step < warmup:
        return base_lr * step / warmup
    progress = (step - warmup) / max(total - warmup, 1e-8)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def set_lr(optimizer, lr: float):
    """Set every group's lr to lr × its `lr_scale` (the layer-decay factor; 1 when absent)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
