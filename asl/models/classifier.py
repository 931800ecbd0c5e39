"""ViT classifiers for linear probing and fine-tuning, as in MAE's models_vit.

pool="cls": the final-normed cls token (MAE's linear probing). pool="avg": the mean of the patch tokens through
a fresh `fc_norm` (MAE's global pooling for fine-tuning); the encoder's final norm is then unused and removed.
head_bn: a BatchNorm without affine parameters before the linear head (MAE's linear probing).
"""
import torch.nn as nn
from timm.layers import trunc_normal_

from .vit import LayerNorm, ViTEncoder


class ViTClassifier(nn.Module):
    def __init__(self, encoder: ViTEncoder, num_classes: int, pool: str = "cls", head_bn: bool = False,
                 head_init_std: float = 0.01):
        super().__init__()
        if pool not in ("cls", "avg"):
            raise ValueError(f"pool must be 'cls' or 'avg', got {pool!r}")
        self.encoder, self.pool = encoder, pool
        dim = encoder.embed_dim
        if pool == "avg":
            self.encoder.norm = nn.Identity()
            self.fc_norm = LayerNorm(dim)
        head = nn.Linear(dim, num_classes)
        trunc_normal_(head.weight, std=head_init_std)
        nn.init.zeros_(head.bias)
        self.head = nn.Sequential(nn.BatchNorm1d(dim, affine=False, eps=1e-6), head) if head_bn else head

    def features(self, imgs):
        tokens = self.encoder.forward_features(imgs)
        return tokens[:, 0] if self.pool == "cls" else self.fc_norm(tokens[:, 1:].mean(dim=1))

    def forward(self, imgs):
        return self.head(self.features(imgs))
