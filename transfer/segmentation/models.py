"""mmseg's MAE backbone, with strict loading of pretrained weights.

`StrictMAE` is mmseg's `MAE` (BEiT-style ViT: cls token, absolute position embedding, layer scale, relative-position
bias initialised to zero) unchanged but for `init_weights`: with `init_cfg=dict(type='Pretrained',
checkpoint=PATH)` it first initialises like mmseg, then loads PATH through `load_backbone_weights`, which fails on
any key that does not fit instead of silently skipping it. `checkpoint=None` means random initialisation (logged).
"""
from mmengine.logging import print_log
from mmseg.models.backbones import MAE
from mmseg.registry import MODELS

from .checkpoint import load_backbone_weights


@MODELS.register_module()
class StrictMAE(MAE):

    def init_weights(self):
        cfg = self.init_cfg
        pretrained = isinstance(cfg, dict) and cfg.get("type") == "Pretrained"
        if not pretrained:
            return super().init_weights()
        self.init_cfg = None  # mmseg's own initialisation first (trunc-normal linears, zero rel-pos bias)
        try:
            super().init_weights()
        finally:
            self.init_cfg = cfg
        if cfg.get("checkpoint"):
            self.loaded_weights = load_backbone_weights(self, cfg["checkpoint"])
        else:
            print_log("backbone: random initialisation (init_cfg checkpoint is None)", logger="current")
