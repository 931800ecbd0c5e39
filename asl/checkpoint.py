"""Checkpoints: reading without running pickled code, atomic writing, the canonical encoder state dict and the
architecture it implies.

The canonical encoder state dict holds ViTEncoder's keys without prefix (MAE's and timm's names): `cls_token`,
`pos_embed` (1, [1 +] g*g, C), `patch_embed.proj.*`, `blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`,
`norm.*`. `load_encoder` extracts it from every supported file; asl.convert maps it to other frameworks.
"""
import argparse
import math
import os
import pickle
import re
import tempfile
import warnings

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .cli import UserError
from .convert import BLOCK_KEYS, to_canonical
from .models import ARCHS, build_pretrain_model
from .models.pos_embed import resize_pos_embed
from .optim.layer_decay import block_index, strip_wrappers

# Heads cannot be read off tensor shapes: the standard ViT of each width (ViT-Ti/S/B/L/H).
STANDARD_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}


def save_atomic(obj, path):
    """torch.save `obj` to `path` (safetensors if the name ends in .safetensors; obj then a flat dict of tensors)
    through a temp file in the same directory, flushed, fsynced and renamed: a crash never leaves a torn file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if path.endswith(".safetensors"):
                f.write(safetensors_bytes({k: v.contiguous() for k, v in obj.items()}))
            else:
                torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_checkpoint(path, safe_globals=(), map_location="cpu"):
    """The object in a torch or safetensors file, read with torch.load(weights_only=True) (argparse.Namespace,
    as in MAE's training checkpoints, and `safe_globals` allowed) or safetensors. Anything else is refused with a
    UserError: this is the one checkpoint reader of the toolkit (the adapters pass their frameworks' types)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory, not a checkpoint file")
    with open(path, "rb") as f:
        head = f.read(9)
    if not head:
        raise UserError(f"{path} is empty")
    if head[8:9] == b"{" or path.endswith(".safetensors"):
        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as err:
            raise UserError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from None
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals([argparse.Namespace, *safe_globals]):
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(err))
        if unsafe:
            raise UserError(f"refusing to load {path}: it pickles a Python object ({unsafe.group(1)}) and loading "
                            "it could run arbitrary code; re-save just its tensors (a state dict) from a trusted "
                            "session, with torch.save or safetensors") from None
    except Exception:  # torch.load raises RuntimeError, EOFError, KeyError, UnicodeDecodeError... on bad bytes
        pass
    problem = ("is truncated or corrupt" if head.startswith(b"PK")  # torch.save's zip format
               else "is a pickle the safe loader cannot read (truncated?)" if head.startswith(b"\x80")
               else "is not a PyTorch checkpoint")
    raise UserError(f"{path} {problem} (expected a torch.save or safetensors file)")


def unwrap_state_dict(obj, path):
    """(state dict, config or None) from the containers in use: a bare state dict, {'model': ...} (MAE releases,
    detectron2, this project's pretraining checkpoints, with 'config'), {'state_dict': ...} (mmengine)."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, None
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                config = obj.get("config")
                return obj[key], config if isinstance(config, dict) else None
        found = ", ".join(map(str, list(obj)[:6])) or "nothing"
    else:
        found = type(obj).__name__
    raise UserError(f"{path} holds no state dict (expected tensors, or a dict with 'model' or 'state_dict'; "
                    f"found {found})")


def encoder_state_dict(state_dict: dict, config: dict = None):
    """(canonical encoder state dict, arch info) from a state dict of any supported layout; see load_encoder."""
    stripped = {strip_wrappers(k): v for k, v in state_dict.items()}
    canonical, fmt, dropped, origin = to_canonical(stripped)
    info = infer_arch(canonical, config)
    method = ((config or {}).get("model") or {}).get("method")
    info.update(format=fmt, dropped=dropped, source_keys=origin, method=method if isinstance(method, str) else None)
    return canonical, info


def load_encoder(path):
    """Read any supported checkpoint and return (canonical encoder state dict, arch info).

    Supported: this project's pretraining checkpoint, MAE releases (encoder only, or with decoder_* and
    mask_token), timm ViT state dicts, detectron2 and mmseg files written by asl.convert (or the same layouts),
    DDP (`module.`) and torch.compile (`_orig_mod.`) prefixes, .safetensors. arch info: embed_dim, depth,
    num_heads and num_heads_source, patch_size, in_chans, mlp_ratio, grid_size, img_size, cls_token,
    pos_embed_cls_slot, final_norm, format, dropped {key: reason}, source_keys {canonical key: source key}."""
    state_dict, config = unwrap_state_dict(read_checkpoint(path), path)
    return encoder_state_dict(state_dict, config)


def _num_heads(width: int, config: dict):
    arch = ((config or {}).get("model") or {}).get("arch")
    if arch in ARCHS and ARCHS[arch]["embed_dim"] == width:
        return ARCHS[arch]["num_heads"], f"config arch {arch}"
    if width in STANDARD_HEADS:
        return STANDARD_HEADS[width], "standard ViT of this width"
    return max(1, width // 64), "assumed head width 64"


def infer_arch(state_dict: dict, config: dict = None) -> dict:
    """Architecture of a canonical encoder state dict, read from its tensors (heads from the config when it
    names an arch, else the standard ViT of that width). Missing or wrongly shaped keys are one-line UserErrors."""
    weight = state_dict["patch_embed.proj.weight"]
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise UserError(f"patch_embed.proj.weight has shape {tuple(weight.shape)}, expected (width, channels, p, p)")
    width, in_chans, patch = weight.shape[:3]
    indices = sorted({i for i in map(block_index, state_dict) if i is not None})
    if not indices:
        raise UserError("the checkpoint has a patch embedding but no Transformer blocks (blocks.N.*)")
    absent = sorted(set(range(indices[-1] + 1)) - set(indices))
    if absent:
        raise UserError(f"the checkpoint lacks block(s) {', '.join(map(str, absent))} (it has blocks "
                        f"{', '.join(map(str, indices))})")
    if "pos_embed" not in state_dict:
        raise UserError("pos_embed is missing")
    tokens = state_dict["pos_embed"].shape[1] if state_dict["pos_embed"].ndim == 3 else 0
    cls_slot = math.isqrt(tokens) ** 2 != tokens
    grid = math.isqrt(tokens - cls_slot)
    if grid < 1 or grid * grid != tokens - cls_slot:
        raise UserError(f"pos_embed has shape {tuple(state_dict['pos_embed'].shape)}: not (1, [1 +] g*g, width)")
    fc1 = state_dict.get("blocks.0.mlp.fc1.weight")
    hidden = fc1.shape[0] if fc1 is not None else 4 * width
    shapes = {"patch_embed.proj.weight": (width, in_chans, patch, patch), "patch_embed.proj.bias": (width,),
              "pos_embed": (1, tokens, width), "cls_token": (1, 1, width), "norm.weight": (width,),
              "norm.bias": (width,)}
    block = dict(zip(BLOCK_KEYS, [(width,), (width,), (3 * width, width), (3 * width,), (width, width), (width,),
                                  (width,), (width,), (hidden, width), (hidden,), (width, hidden), (width,)]))
    for i in indices:
        shapes.update({f"blocks.{i}.{k}": s for k, s in block.items()})
    for key, shape in shapes.items():
        if key in state_dict and tuple(state_dict[key].shape) != shape:
            raise UserError(f"{key} has shape {tuple(state_dict[key].shape)} but a ViT of width {width} "
                            f"needs {shape}")
        if key not in state_dict and key not in ("cls_token", "norm.weight", "norm.bias"):
            raise UserError(f"{key} is missing (the checkpoint has {len(indices)} blocks)")
    heads, source = _num_heads(width, config)
    return dict(embed_dim=width, depth=len(indices), num_heads=heads, num_heads_source=source, patch_size=patch,
                in_chans=in_chans, mlp_ratio=hidden / width, grid_size=grid, img_size=grid * patch,
                cls_token="cls_token" in state_dict, pos_embed_cls_slot=cls_slot,
                final_norm="norm.weight" in state_dict and "norm.bias" in state_dict)


def _more(keys) -> str:
    return f" ({len(keys) - 1} more keys alike)" if len(keys) > 1 else ""


def check_fit(state: dict, own: dict, source: str, may_lack=lambda key: False, shape_hint=lambda key: "") -> list:
    """The one strict-loading rule: every tensor of `state` lands on a key of `own` (a model's state dict) of the
    same shape, and every key of `own` that `state` lacks is one `may_lack` allows (what the framework initialises
    itself). Anything else is a one-line UserError naming `source`. Returns the keys left to the model."""
    for key, value in state.items():
        if key in own and tuple(value.shape) != tuple(own[key].shape):
            raise UserError(f"{source}: {key} has shape {tuple(value.shape)} but the model needs "
                            f"{tuple(own[key].shape)}{shape_hint(key)}")
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise UserError(f"{source} has {unexpected[0]}, which the model does not have{_more(unexpected)}; check "
                        "the config's architecture (width, depth, patch size) against the checkpoint")
    missing = [k for k in own if k not in state]
    lacking = [k for k in missing if not may_lack(k)]
    if lacking:
        raise UserError(f"{source} lacks {lacking[0]}, which the model needs{_more(lacking)}")
    return missing


def load_into(model: torch.nn.Module, state_dict: dict):
    """Load a canonical encoder state dict into a ViTEncoder (or any module with its keys) strictly: a wrongly
    shaped, missing or unexpected key is a one-line UserError. A pos_embed of another grid is resized
    bicubically first, as MAE does when fine-tuning at another resolution."""
    own = model.state_dict()
    state_dict = dict(state_dict)
    src, dst = state_dict.get("pos_embed"), own.get("pos_embed")
    if src is not None and dst is not None and src.shape != dst.shape and src.shape[-1] == dst.shape[-1]:
        prefix = int(math.isqrt(src.shape[1]) ** 2 != src.shape[1])
        if math.isqrt(dst.shape[1] - prefix) ** 2 == dst.shape[1] - prefix:
            state_dict["pos_embed"] = resize_pos_embed(src, math.isqrt(dst.shape[1] - prefix), prefix)
    check_fit(state_dict, own, "the checkpoint")
    model.load_state_dict(state_dict)


def load_pretrain_model(path):
    """The whole ASL/MAE pretraining model (decoder and enhancement layer included) of one of this project's
    pretraining checkpoints, and its config."""
    ckpt = read_checkpoint(path)
    if not (isinstance(ckpt, dict) and isinstance(ckpt.get("config"), dict) and "model" in ckpt):
        raise UserError(f"{path} is not a pretraining checkpoint of this project (it needs the decoder and config)")
    m = ckpt["config"]["model"]
    model = build_pretrain_model(m["arch"], m["img_size"], m["method"],
                                 **{k: v for k, v in m.items() if k not in ("arch", "img_size", "method")})
    model.load_state_dict(ckpt["model"])
    return model, ckpt["config"]
