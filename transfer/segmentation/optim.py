"""mmengine optimizer-wrapper constructor for mmseg: layer-wise lr decay and weight decay from the project's one
rule (asl.optim), for any ViT backbone class (`backbone.layers.N` as in mmseg's MAE/BEiT/VisionTransformer, or
`backbone.blocks.N`). Unlike mmseg's LayerDecayOptimizerConstructor it does not dispatch on the backbone's class
name, and pos_embed / cls_token get no weight decay. In an mmseg config:

    custom_imports = dict(imports=["transfer.segmentation.optim"], allow_failed_imports=False)
    optim_wrapper = dict(type="OptimWrapper", constructor="ViTLayerDecayOptimWrapperConstructor",
                         optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
                         paramwise_cfg=dict(layer_decay_rate=0.65))   # num_layers=N optional

Each group carries its own `lr` (= lr × rate^(depth + 1 - layer id)), which mmengine's schedulers scale.
A `module.` prefix (MMDistributedDataParallel) does not change the groups.
"""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from asl.optim import lr_param_groups

BACKBONE_PREFIX = "backbone."


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """paramwise_cfg: layer_decay_rate (default 1.0), num_layers (default: counted from the backbone)."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict = None):
        # a non-empty paramwise_cfg makes mmengine call add_params, the only place the rule is applied
        super().__init__(optim_wrapper_cfg, {"layer_decay_rate": 1.0, **(paramwise_cfg or {})})

    def add_params(self, params: list, module, **kwargs):
        params.extend(lr_param_groups(module, self.base_lr, self.base_wd or 0.0,
                                      self.paramwise_cfg["layer_decay_rate"], self.paramwise_cfg.get("num_layers"),
                                      prefix=BACKBONE_PREFIX))
