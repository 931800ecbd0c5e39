"""The patch-level feature enhancement layer of ASL (docs/design.md, Feature enhancement): one Transformer layer
after the encoder whose dropout, active in training, is a stochastic augmentation in feature space. It replaces the
global image-level augmentations (colour jitter, blur, ...) that hurt MAE."""
import torch.nn as nn
from timm.models.vision_transformer import Block

from .vit import LayerNorm


class FeatureEnhancement(nn.Module):
    """h' = T(h). T is a timm Block with 4 heads and dropout 0.5 on attention weights, attention output and MLP
    (where torch's nn.TransformerEncoderLayer puts its dropout). A width other than the encoder's is reached by
    linear projections in and out."""

    def __init__(self, encoder_dim, dim=None, num_heads=4, dropout=0.5, attn_dropout=None, mlp_ratio=4.0):
        super().__init__()
        dim = dim or encoder_dim
        self.proj_in = nn.Identity() if dim == encoder_dim else nn.Linear(encoder_dim, dim)
        self.block = Block(dim, num_heads, mlp_ratio, qkv_bias=True, proj_drop=dropout,
                           attn_drop=dropout if attn_dropout is None else attn_dropout, norm_layer=LayerNorm)
        self.proj_out = nn.Identity() if dim == encoder_dim else nn.Linear(dim, encoder_dim)

    def forward(self, h):
        return self.proj_out(self.block(self.proj_in(h)))
