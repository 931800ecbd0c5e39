"""The ViT encoder of MAE, from timm's blocks: patch embedding, cls token, fixed sin-cos positions, random
masking of patches (argsort of uniform noise), Transformer blocks, final norm.

Parameter names are MAE's (`cls_token`, `pos_embed`, `patch_embed.proj`, `blocks.N.*`, `norm`): they are the
canonical encoder keys that asl.checkpoint reads and converts.
"""
from functools import partial

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block, PatchEmbed

from .pos_embed import sincos_2d

LayerNorm = partial(nn.LayerNorm, eps=1e-6)  # MAE's, timm's, ViTDet's and mmseg's epsilon


def random_masking(x: torch.Tensor, mask_ratio: float, generator=None):
    """MAE's per-sample random masking by sorting uniform noise.

    x: (B, L, C) patch tokens. Returns the kept tokens (B, L_keep, C), the binary mask (B, L) with 1 = masked,
    in the original patch order, and ids_restore (B, L) that un-shuffles a kept+masked sequence.
    """
    B, L, C = x.shape
    len_keep = int(L * (1 - mask_ratio))
    noise = torch.rand(B, L, device=x.device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, C))
    mask = torch.ones(B, L, device=x.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return kept, mask, ids_restore


class ViTEncoder(nn.Module):
    """Plain ViT as in MAE. `forward_masked` is the pretraining path; `forward_features` the transfer path."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768, depth=12, num_heads=12,
                 mlp_ratio=4.0, drop_path_rate=0.0):
        super().__init__()
        self.patch_size, self.embed_dim, self.depth, self.num_heads = patch_size, embed_dim, depth, num_heads
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.grid_size = self.patch_embed.grid_size[0]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size ** 2 + 1, embed_dim), requires_grad=False)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=dpr[i], norm_layer=LayerNorm)
            for i in range(depth)])
        self.norm = LayerNorm(embed_dim)
        self.pos_embed.data.copy_(sincos_2d(embed_dim, self.grid_size, cls_token=True).unsqueeze(0))
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)

    def _tokens(self, imgs):
        return self.patch_embed(imgs) + self.pos_embed[:, 1:]

    def _with_cls(self, x):
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1)

    def forward_masked(self, imgs, mask_ratio=0.75, generator=None):
        """Encode the visible patches only. Returns latent (B, 1 + L_keep, C), mask (B, L), ids_restore."""
        x, mask, ids_restore = random_masking(self._tokens(imgs), mask_ratio, generator)
        x = self._with_cls(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_features(self, imgs, norm=True):
        """Encode all patches (no masking): (B, 1 + L, C) tokens, cls first."""
        x = self._with_cls(self._tokens(imgs))
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x) if norm else x
