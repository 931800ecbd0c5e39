"""ASL and MAE pretraining models (docs/design.md, The method).

ASL: the encoder runs once on the visible patches giving h; the enhancement layer gives h' = T(h); the shared
decoder predicts the masked pixels from both. `decode_mode="batched"` decodes [h; h'] as one 2B batch (the
paper's single pass); `"sequential"` decodes h then h' (same math, two smaller passes). Losses: the patch-level
contrastive loss on each branch (averaged) plus `sem_weight` × L_SEM, the same loss between the enhanced
branch's predictions and the plain branch's (stop-gradient) predictions.
MAE: the same model with no enhancement layer, one branch and the masked MSE, so the comparison is fair.
"""
import torch
import torch.nn as nn

from ..losses import masked_mse, normalize_patches, patch_contrastive, patchify
from .decoder import MAEDecoder
from .enhance import FeatureEnhancement
from .vit import ViTEncoder

DECODE_MODES = ("batched", "sequential")
def init_mae_weights(module: nn.Module):
    """MAE's initialisation: xavier-uniform linear layers with zero bias, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PretrainModel(nn.Module):
    def __init__(self, encoder: dict, decoder: dict, method: str = "asl", enhance: dict = None,
                 loss: str = "contrastive", temperature: float = 1.0, sem_weight: float = 1.0,
                 mask_ratio: float = 0.75, norm_pix_loss: bool = True, decode_mode: str = "batched",
                 chunk_size: int = 4096, max_negatives: int = 0):
        super().__init__()
        if method not in ("asl", "mae"):
            raise ValueError(f"method must be 'asl' or 'mae', got {method!r}")
        if loss not in ("contrastive", "mse"):
            raise ValueError(f"loss must be 'contrastive' or 'mse', got {loss!r}")
        if decode_mode not in DECODE_MODES:
            raise ValueError(f"decode_mode must be one of {DECODE_MODES}, got {decode_mode!r}")
        if not 0 < mask_ratio < 1:  # 0 masks no patch (nothing to reconstruct), >= 1 leaves the encoder none
            raise ValueError(f"mask_ratio must be between 0 and 1 (exclusive), got {mask_ratio!r}")
        self.method, self.loss_type, self.temperature, self.sem_weight = method, loss, temperature, sem_weight
        self.mask_ratio, self.norm_pix_loss, self.decode_mode = mask_ratio, norm_pix_loss, decode_mode
        self.chunk_size, self.max_negatives = chunk_size, max_negatives
        self.encoder = ViTEncoder(**encoder)
        self.patch_size = self.encoder.patch_size
        self.decoder = MAEDecoder(self.encoder.grid_size ** 2, self.patch_size, encoder.get("in_chans", 3),
                                  self.encoder.embed_dim, **decoder)
        self.enhance = FeatureEnhancement(self.encoder.embed_dim, **(enhance or {})) if method == "asl" else None
        for part in (self.encoder.blocks, self.encoder.norm, self.decoder, self.enhance):
            if part is not None:
                init_mae_weights(part)

    def reconstruction_loss(self, pred, target, mask):
        if self.loss_type == "mse":
            return masked_mse(pred, target, mask)
        return patch_contrastive(pred, target, mask, self.temperature, self.chunk_size, self.max_negatives)

    def sem_loss(self, pred_enhanced, pred, mask):
        """L_SEM: the enhanced branch is pulled towards the plain branch's predictions, which get no gradient."""
        return self.reconstruction_loss(pred_enhanced, pred.detach(), mask)

    def target(self, imgs):
        target = patchify(imgs, self.patch_size)
        return normalize_patches(target) if self.norm_pix_loss else target

    def forward(self, imgs, mask_ratio=None, generator=None):
        """One pretraining step's forward pass.

        Args:
            imgs: (B, 3, H, W) normalised images.
            mask_ratio: fraction of patches masked (default: the model's).
            generator: torch.Generator of the random masking (default: the global RNG).

        Returns:
            dict with `loss` (scalar), `terms` (name -> detached scalar: recon, and for ASL recon_enh and sem),
            `pred` (B, L, p*p*3, the plain branch's per-patch predictions), `mask` (B, L, 1 = masked) and, for
            ASL, `pred_enhanced` (the enhanced branch's predictions).
        """
        latent, mask, ids_restore = self.encoder.forward_masked(
            imgs, self.mask_ratio if mask_ratio is None else mask_ratio, generator)
        target = self.target(imgs)
        if self.enhance is None:
            pred = self.decoder(latent, ids_restore)
            loss = self.reconstruction_loss(pred, target, mask)
            return {"loss": loss, "terms": {"recon": loss.detach()}, "pred": pred, "mask": mask}
        enhanced = self.enhance(latent)
        if self.decode_mode == "batched":
            both = self.decoder(torch.cat([latent, enhanced]), torch.cat([ids_restore, ids_restore]))
            pred, pred_enh = both.chunk(2)
        else:
            pred, pred_enh = self.decoder(latent, ids_restore), self.decoder(enhanced, ids_restore)
        recon_plain = self.reconstruction_loss(pred, target, mask)
        recon_enh = self.reconstruction_loss(pred_enh, target, mask)
        sem = self.sem_loss(pred_enh, pred, mask)
        loss = 0.5 * (recon_plain + recon_enh) + self.sem_weight * sem
        terms = {"recon": recon_plain.detach(), "recon_enh": recon_enh.detach(), "sem": sem.detach()}
        return {"loss": loss, "terms": terms, "pred": pred, "pred_enhanced": pred_enh, "mask": mask}
