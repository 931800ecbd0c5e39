"""MAE's lightweight decoder: embed the encoder's tokens, insert mask tokens, add fixed sin-cos positions,
run Transformer blocks and predict the pixels of every patch."""
import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from .pos_embed import sincos_2d
from .vit import LayerNorm


class MAEDecoder(nn.Module):
    def __init__(self, num_patches, patch_size, in_chans=3, encoder_dim=768, embed_dim=512, depth=8,
                 num_heads=16, mlp_ratio=4.0):
        super().__init__()
        grid = int(round(num_patches ** 0.5))
        self.decoder_embed = nn.Linear(encoder_dim, embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=LayerNorm) for _ in range(depth)])
        self.decoder_norm = LayerNorm(embed_dim)
        self.decoder_pred = nn.Linear(embed_dim, patch_size ** 2 * in_chans, bias=True)
        self.decoder_pos_embed.data.copy_(sincos_2d(embed_dim, grid, cls_token=True).unsqueeze(0))
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent, ids_restore):
        """latent (B, 1 + L_keep, C_enc), ids_restore (B, L) -> per-patch pixel predictions (B, L, p*p*3)."""
        x = self.decoder_embed(latent)
        B, L = ids_restore.shape
        mask_tokens = self.mask_token.expand(B, L + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]
