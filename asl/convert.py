"""Key maps between the canonical encoder state dict and other frameworks: detectron2's ViTDet `ViT`, mmseg's
MAE/BEiT backbone and timm's VisionTransformer (the MAE release layout). This is the only module of the project
that knows another framework's parameter names.

`to_canonical` reads this project's pretraining model, MAE releases, timm, detectron2 and mmseg state dicts;
`convert` writes detectron2, mmseg or timm ones. Every key is mapped, dropped for a stated reason, or named as
initialised by the target; any other key is an error, so nothing is silently lost or mangled.
"""
import fnmatch
import re
from dataclasses import dataclass, field

import torch

from .cli import UserError
from .models.pos_embed import resize_pos_embed
from .optim.layer_decay import count_blocks

TARGETS = ("detectron2", "mmseg", "timm")
BLOCK_KEYS = tuple(f"{m}.{p}" for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
                   for p in ("weight", "bias"))
FILE_KEY = {"detectron2": "model", "mmseg": "state_dict", "timm": "model"}  # the dict key each target reads
DETECTRON2_BACKBONE = "backbone.net."  # ViTDet: SimpleFeaturePyramid(net=ViT(...)) inside GeneralizedRCNN
_MMSEG_BLOCK = {"norm1": "ln1", "attn.qkv": "attn.qkv", "attn.proj": "attn.proj", "norm2": "ln2",
                "mlp.fc1": "ffn.layers.0.0", "mlp.fc2": "ffn.layers.1"}
_CANONICAL = re.compile(r"cls_token|pos_embed|patch_embed\.proj\.(?:weight|bias)|norm\.(?:weight|bias)"
                        r"|blocks\.\d+\.(?:" + "|".join(re.escape(k) for k in BLOCK_KEYS) + ")")

DECODER = "MAE decoder (pretraining only)"
_DROP_FOR_TARGET = {
    ("detectron2", "cls_token"): "ViTDet uses no cls token (its pos_embed slot is kept: pretrain_use_cls_token)",
    ("detectron2", "norm"): "ViTDet's backbone has no final norm",
    ("mmseg", "norm"): "final norm, unused by mmseg's MAE with final_norm=False (keep it with --final-norm)",
}
# Parameters and buffers that the target builds and initialises itself, as glob patterns over its keys.
TARGET_INIT = {
    "detectron2": [("backbone.net.blocks.*.attn.rel_pos_[hw]", "relative-position tables (use_rel_pos), zero"),
                   ("backbone.net.blocks.*.residual.*", "residual conv blocks (residual_block_indexes)"),
                   ("backbone.simfp_*", "simple feature pyramid"),
                   ("proposal_generator.*", "RPN"), ("roi_heads.*", "box and mask heads"),
                   ("pixel_[ms]*", "pixel mean/std buffers from the config")],
    "mmseg": [("layers.*.gamma_[12]", "layer scale (init_values=1.0 starts it as the identity)"),
              ("layers.*.attn.relative_position_bias_table", "relative-position bias, zero"),
              ("layers.*.attn.relative_position_index", "relative-position index buffer")],
    "timm": [("head.*", "classifier head (or num_classes=0)"),
             ("fc_norm.*", "pooled-feature norm (global_pool='avg')")],
}


def key_map(target: str, depth: int, final_norm: bool = False) -> dict:
    """canonical key -> the target's key, or None where the target has no such parameter."""
    keys = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"]
    keys += [f"blocks.{i}.{k}" for i in range(depth) for k in BLOCK_KEYS]
    if target == "timm":
        return {k: k for k in keys}
    if target == "detectron2":
        return {k: None if k == "cls_token" or k.startswith("norm.") else DETECTRON2_BACKBONE + k for k in keys}
    if target != "mmseg":
        raise ValueError(f"unknown target {target!r}")
    out = {}
    for k in keys:
        if k.startswith("blocks."):
            _, i, rest = k.split(".", 2)
            module, param = rest.rsplit(".", 1)
            out[k] = f"layers.{i}.{_MMSEG_BLOCK[module]}.{param}"
        elif k.startswith("patch_embed."):
            out[k] = k.replace(".proj.", ".projection.")
        elif k.startswith("norm."):
            out[k] = "ln1." + k.split(".")[1] if final_norm else None
        else:
            out[k] = k
    return out


def detect_format(keys) -> str:
    keys = list(keys)
    if any(k.startswith(DETECTRON2_BACKBONE) for k in keys):
        return "detectron2"
    if any(re.match(r"(?:backbone\.)?(?:layers\.\d+\.|patch_embed\.projection\.)", k) for k in keys):
        return "mmseg"
    if any(k.startswith("encoder.") for k in keys):
        return "asl-pretrain"
    return "mae/timm"


def _require_zero(key, value, what):
    if torch.count_nonzero(value):
        raise UserError(f"{key} is non-zero: the checkpoint was trained with {what}, which a plain ViT cannot "
                        "represent; convert the pretraining checkpoint instead")
    return f"zero {what} (a no-op)"


def to_canonical(state_dict: dict):
    """Split a (wrapper-free) state dict of any supported layout into the canonical encoder state dict.
    Returns (canonical, format, dropped {key: reason}, origin {canonical key: source key})."""
    fmt = detect_format(state_dict)
    inverse = {}
    if fmt in ("detectron2", "mmseg"):
        inverse = {v: k for k, v in key_map(fmt, count_blocks(state_dict), final_norm=True).items() if v}
    out, dropped, origin, unknown, gammas = {}, {}, {}, [], {}
    for key, value in state_dict.items():
        name, reason = key, None
        if fmt == "asl-pretrain":
            if key.startswith("decoder."):
                reason = DECODER
            elif key.startswith("enhance."):
                reason = "ASL feature-enhancement layer (pretraining only)"
            name = key[len("encoder."):] if key.startswith("encoder.") else None
        elif fmt == "mae/timm":
            if key.startswith("decoder_") or key == "mask_token":
                reason = DECODER
            elif key.startswith(("head.", "fc_norm.")):
                reason = "classifier head (fine-tuning only)"
        elif fmt == "detectron2":
            if not key.startswith(DETECTRON2_BACKBONE):
                reason = "detectron2 feature pyramid and heads"
            elif key.endswith((".rel_pos_h", ".rel_pos_w")):
                reason = _require_zero(key, value, "relative-position tables")
            name = inverse.get(key)
        else:  # mmseg
            if key.startswith(("decode_head.", "auxiliary_head.", "neck.", "data_preprocessor.")):
                reason = "segmentation neck and heads"
            sub = key[len("backbone."):] if key.startswith("backbone.") else key
            if sub.endswith(".relative_position_bias_table"):
                reason = _require_zero(key, value, "relative-position bias")
            elif sub.endswith(".relative_position_index"):
                reason = "relative-position index buffer (computed by the model)"
            elif re.fullmatch(r"layers\.\d+\.gamma_[12]", sub):
                gammas[sub] = value
                reason = "layer scale, folded exactly into attn.proj / mlp.fc2"
            name = inverse.get(sub)
        if reason:
            dropped[key] = reason
        elif name is None or not _CANONICAL.fullmatch(name) or not isinstance(value, torch.Tensor):
            unknown.append(key)
        else:
            out[name], origin[name] = value, key
    if "patch_embed.proj.weight" not in out:
        sample = ", ".join(list(state_dict)[:4])
        raise UserError(f"not a ViT checkpoint: there is no patch embedding among its {len(state_dict)} keys "
                        f"({sample}, ...)")
    if unknown:
        raise UserError(f"{unknown[0]} is not part of a plain (MAE-style) ViT encoder"
                        + (f" ({len(unknown)} such keys)" if len(unknown) > 1 else ""))
    for sub, gamma in gammas.items():  # x + gamma * W(y) == x + (diag(gamma) W)(y)
        i, which = sub.split(".")[1], sub[-1]
        linear = f"blocks.{i}.attn.proj" if which == "1" else f"blocks.{i}.mlp.fc2"
        if linear + ".bias" not in out:
            continue  # reported as missing by asl.checkpoint's shape check
        out[linear + ".weight"] = out[linear + ".weight"] * gamma[:, None]
        out[linear + ".bias"] = out[linear + ".bias"] * gamma
    return out, fmt, dropped, origin


@dataclass
class Report:
    """What a conversion did with every key: mapped (source, target), dropped {key: reason}, target-initialised
    (pattern, description), and notes on settings the target's config needs."""
    source: str
    mapped: list = field(default_factory=list)
    dropped: dict = field(default_factory=dict)
    target_init: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def text(self) -> str:
        lines = [f"source: {self.source}", f"mapped ({len(self.mapped)} tensors):"]
        pairs = {}
        for src, dst in self.mapped:
            pair = (_collapse(src), _collapse(dst))
            pairs[pair] = pairs.get(pair, 0) + 1
        lines += [f"  {s} -> {d}" + (f"  (x{n})" if n > 1 else "") for (s, d), n in pairs.items()]
        lines.append(f"dropped on purpose ({len(self.dropped)} tensors):")
        by_reason = {}
        for key, reason in self.dropped.items():
            by_reason.setdefault(reason, []).append(key)
        lines += [f"  {_summary(keys)}: {reason}" for reason, keys in by_reason.items()]
        lines.append("initialised by the target:")
        lines += [f"  {pattern}: {what}" for pattern, what in self.target_init]
        lines += ["notes:"] + [f"  {note}" for note in self.notes] if self.notes else []
        return "\n".join(lines)


def _collapse(key: str) -> str:
    """Block index -> *, so that a report lists each kind of key once."""
    return re.sub(r"((?:^|\.)(?:blocks|layers)\.)\d+\.", r"\1*.", key, count=1)


def _summary(keys: list) -> str:
    patterns = list(dict.fromkeys(_collapse(k) for k in keys))
    if len(patterns) > 3:
        patterns = list(dict.fromkeys(p.split(".")[0] + (".*" if "." in p else "") for p in patterns))
    return ", ".join(patterns) + f" ({len(keys)})"


def unmatched_target_keys(target: str, keys) -> list:
    """The keys of a target model that neither a converted file nor TARGET_INIT accounts for."""
    return [k for k in keys if not any(fnmatch.fnmatchcase(k, p) for p, _ in TARGET_INIT[target])]


def convert(state_dict: dict, info: dict, target: str, img_size: int = None, final_norm: bool = False):
    """Canonical encoder state dict (with `info` from asl.checkpoint) -> (the target's state dict, Report)."""
    if target not in TARGETS:
        raise UserError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if final_norm and target != "mmseg":
        raise UserError("--final-norm applies to --to mmseg only")
    if final_norm and not info["final_norm"]:
        raise UserError("--final-norm was asked for but the checkpoint has no final norm (norm.weight)")
    if target != "detectron2" and not (info["cls_token"] and info["pos_embed_cls_slot"]):
        raise UserError(f"{target} needs the cls token, which this {info['format']} checkpoint lacks (ViTDet drops "
                        "it): convert the pretraining checkpoint instead")
    state_dict = dict(state_dict)
    grid, patch = info["grid_size"], info["patch_size"]
    report = Report(describe(info), dropped=dict(info.get("dropped", {})), target_init=list(TARGET_INIT[target]))
    if img_size:
        new_grid = img_size // patch
        if new_grid < 1:
            raise UserError(f"--img-size {img_size} is smaller than the patch size {patch}")
        if new_grid != grid:
            state_dict["pos_embed"] = resize_pos_embed(state_dict["pos_embed"], new_grid,
                                                       int(info["pos_embed_cls_slot"]))
            report.notes.append(f"pos_embed resized (bicubic) from {grid}x{grid} to {new_grid}x{new_grid} "
                                f"patches for {new_grid * patch} px")
            grid = new_grid
    kmap = key_map(target, info["depth"], final_norm)
    origin = info.get("source_keys", {})
    out = {}
    for key, value in state_dict.items():
        dst = kmap[key]
        if dst is None:
            report.dropped[origin.get(key, key)] = _DROP_FOR_TARGET[target, key.split(".")[0]]
        else:
            out[dst] = value
            report.mapped.append((origin.get(key, key), dst))
    if target == "timm" and not info["final_norm"]:
        report.target_init.append(("norm.*", "final norm: the source had none"))
    if target == "mmseg" and not final_norm:
        report.target_init.append(("ln1.*", "final norm, only with final_norm=True"))
    report.notes.append(_usage(target, info, grid, final_norm))
    return out, report


def _usage(target, info, grid, final_norm):
    size = grid * info["patch_size"]
    if target == "detectron2":
        return (f"detectron2: ViT(embed_dim={info['embed_dim']}, depth={info['depth']}, "
                f"num_heads={info['num_heads']}, patch_size={info['patch_size']}, pretrain_img_size={size}, "
                f"pretrain_use_cls_token={info['pos_embed_cls_slot']}); load with train.init_checkpoint")
    if target == "mmseg":
        return (f"mmseg: MAE(img_size={size}, patch_size={info['patch_size']}, embed_dims={info['embed_dim']}, "
                f"num_layers={info['depth']}, num_heads={info['num_heads']}, init_values=1.0, "
                f"final_norm={final_norm}); load with "
                "backbone init_cfg=dict(type='Pretrained', checkpoint=...)")
    return (f"timm: VisionTransformer(img_size={size}, patch_size={info['patch_size']}, "
            f"embed_dim={info['embed_dim']}, depth={info['depth']}, num_heads={info['num_heads']}); load with "
            "timm.models.load_checkpoint or MAE's fine-tuning script")


def describe(info: dict) -> str:
    """One line naming the checkpoint's layout and architecture."""
    return (f"{info['format']} checkpoint, ViT width {info['embed_dim']}, depth {info['depth']}, "
            f"{info['num_heads']} head{'s' * (info['num_heads'] != 1)} ({info['num_heads_source']}), "
            f"patch {info['patch_size']}, "
            f"{info['grid_size']}x{info['grid_size']} grid ({info['img_size']} px)"
            + (", cls token" if info["cls_token"] else ", no cls token")
            + (", final norm" if info["final_norm"] else ", no final norm"))
