"""The ONE layer-decay rule of the project (fine-tuning, detectron2 and mmseg all call it).

Layer id of a ViT parameter: embeddings (patch embedding, position embedding, cls/mask tokens) are 0, block i is
i + 1, everything else (final norm, necks, heads, decoders) is the last id, num_layers + 1.
lr scale = decay ** (last id - layer id).
No weight decay for biases, norms and every other 1-D parameter, position embeddings, cls/mask tokens and
relative-position tables.
Names may carry wrappers' prefixes (`module.` from DDP, `backbone.net.`, `encoder.`): only the part after
`prefix` is looked at, and parameters outside `prefix` belong to the last id.
"""
import re

import torch.nn as nn

_BLOCK = re.compile(r"(?:^|\.)(?:blocks|layers)\.(\d+)\.")
_EMBEDDING = re.compile(r"(?:^|\.)(?:cls_token|pos_embed|patch_embed|mask_token|dist_token|reg_token)(?:\.|$)")
_NO_DECAY_NAMES = re.compile(
    r"(?:^|\.)(?:cls_token|pos_embed|mask_token|dist_token|reg_token|rel_pos_h|rel_pos_w"
    r"|relative_position_bias_table)$")


def strip_wrappers(name: str) -> str:
    """Remove DDP / torch.compile wrapper prefixes, which must never change a parameter's group."""
    while name.startswith(("module.", "_orig_mod.")):
        name = name.split(".", 1)[1]
    return name


def layer_id(name: str, num_layers: int, prefix: str = "") -> int:
    name = strip_wrappers(name)
    if not name.startswith(prefix):
        return num_layers + 1
    rest = name[len(prefix):]
    block = _BLOCK.search(rest)
    if block:
        return int(block.group(1)) + 1
    if _EMBEDDING.search(rest):
        return 0
    return num_layers + 1


def lr_scale(layer: int, num_layers: int, decay: float) -> float:
    return decay ** (num_layers + 1 - layer)


def no_weight_decay(name: str, param) -> bool:
    return param.ndim <= 1 or name.endswith(".bias") or bool(_NO_DECAY_NAMES.search(strip_wrappers(name)))


def block_index(name: str):
    """The Transformer block index in a parameter name (`blocks.N.` / `layers.N.`, after any prefix), else None."""
    match = _BLOCK.search(name)
    return int(match.group(1)) if match else None


def count_blocks(names) -> int:
    """Number of Transformer blocks among parameter names: 1 + the largest block index (0 without blocks)."""
    return 1 + max((i for i in map(block_index, names) if i is not None), default=-1)


def count_layers(model: nn.Module, prefix: str = "") -> int:
    """Number of Transformer blocks under `prefix`."""
    names = (strip_wrappers(name) for name, _ in model.named_parameters())
    return count_blocks(name[len(prefix):] for name in names if name.startswith(prefix))


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float = 1.0, num_layers: int = None,
                 prefix: str = "") -> list:
    """Optimizer parameter groups: one per (layer id, decay or not), each with `weight_decay`, `lr_scale` and
    `layer_id`. Frozen parameters are left out. The training loop sets lr = base lr × lr_scale."""
    num_layers = count_layers(model, prefix) if num_layers is None else num_layers
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = layer_id(name, num_layers, prefix)
        decay = not no_weight_decay(name, param)
        key = (layer, decay)
        if key not in groups:
            groups[key] = {"params": [], "param_names": [], "weight_decay": weight_decay if decay else 0.0,
                           "lr_scale": lr_scale(layer, num_layers, layer_decay), "layer_id": layer}
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return [groups[k] for k in sorted(groups)]


def lr_param_groups(model: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0,
                    num_layers: int = None, prefix: str = "") -> list:
    """`param_groups` with each group's `lr` preset to lr × lr_scale: the form that schedulers which scale every
    group's initial lr (detectron2's LRMultiplier, mmengine's and torch's schedulers) keep as is."""
    groups = param_groups(model, weight_decay, layer_decay, num_layers, prefix)
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    return groups
