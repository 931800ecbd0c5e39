"""Fixed 2-D sin-cos position embeddings, exactly as in MAE (util/pos_embed.py), and their resizing."""
import numpy as np
import torch
import torch.nn.functional as F


def _sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", positions.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, grid_size: int, cls_token: bool = False) -> torch.Tensor:
    """(grid_size**2 [+1], dim) embedding; half the channels encode the column, half the row (MAE's order)."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a width divisible by 4, got {dim}")
    grid_w, grid_h = np.meshgrid(np.arange(grid_size, dtype=np.float32), np.arange(grid_size, dtype=np.float32))
    emb = np.concatenate([_sincos_1d(dim // 2, grid_w), _sincos_1d(dim // 2, grid_h)], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
    return torch.from_numpy(emb).float()


def resize_pos_embed(pos_embed: torch.Tensor, new_grid: int, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Bicubically resize a position embedding to another patch grid (MAE's interpolate_pos_embed).

    Args:
        pos_embed: (1, num_prefix_tokens + g*g, C).
        new_grid: the new grid side.
        num_prefix_tokens: leading tokens kept as they are (the cls slot).

    Returns:
        (1, num_prefix_tokens + new_grid**2, C), the input itself when the grid is unchanged.
    """
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    old = int(round(int(grid.shape[1]) ** 0.5))  # int(): a traced shape (fvcore) is a tensor
    if old * old != grid.shape[1]:
        raise ValueError(f"position embedding of {grid.shape[1]} patches is not a square grid")
    if old == new_grid:
        return pos_embed
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, -1).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)
