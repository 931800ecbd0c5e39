"""Layer-wise lr decay and weight decay for detectron2 LazyConfigs, from the project's one rule (asl.optim).

In a LazyConfig, in place of detectron2's own `get_default_optimizer_params`:

    optimizer = L(torch.optim.AdamW)(
        params=L(vit_param_groups)(lr="${..lr}", weight_decay="${..weight_decay}", layer_decay=0.7),
        lr=8e-5, betas=(0.9, 0.999), weight_decay=0.1)

and in the training script `cfg.optimizer.params.model = model; optimizer = instantiate(cfg.optimizer)`.
Each group carries its own `lr` (= lr × decay^(depth + 1 - layer id)), which detectron2's LRMultiplier scales.
A `module.` prefix (optimizer built after DDP wrapping) does not change the groups.
"""
from asl.convert import DETECTRON2_BACKBONE
from asl.optim import lr_param_groups


def vit_param_groups(model, lr: float, weight_decay: float, layer_decay: float, num_layers: int = None) -> list:
    """Parameter groups of a ViTDet model: ViT blocks by depth, pyramid and heads at the full lr."""
    return lr_param_groups(model, lr, weight_decay, layer_decay, num_layers, prefix=DETECTRON2_BACKBONE)
