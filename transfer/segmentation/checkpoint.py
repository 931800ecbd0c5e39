"""Checkpoints in the mmseg adapter.

* `install_safe_loader()`: mmengine reads local checkpoints with a bare `torch.load`, which recent torch runs with
  `weights_only=True`; an mmengine Runner checkpoint (its message hub holds `HistoryBuffer`s and numpy
  scalars) then fails to load and `--resume` breaks. Instead of turning the safe loader off, this registers a
  local-file loader that keeps `weights_only=True` and allows exactly the few types mmengine/mmseg checkpoints
  hold. Installed by train.run (explicitly: importing this module changes nothing in mmengine).
* `load_backbone_weights(backbone, path)`: strict loading of encoder weights into mmseg's MAE backbone. mmseg's
  own `init_cfg=dict(type='Pretrained')` loading is non-strict: a wrong prefix loads nothing and training silently
  starts from random weights. Here every backbone key must come from the file or be one that mmseg initialises
  itself (asl.convert.TARGET_INIT), every key of the file must be used, and a wrong architecture is a one-line
  error. The file is one written by `tools/convert_ckpt.py --to mmseg` (the one conversion path); any other
  checkpoint is refused with the command that converts it.
"""
import collections
import os
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader

from asl.checkpoint import check_fit, read_checkpoint, unwrap_state_dict
from asl.cli import UserError
from asl.convert import detect_format, unmatched_target_keys
from asl.optim.layer_decay import count_blocks


def _numpy_globals():
    found = [np.dtype, np.ndarray]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            mod = __import__(module, fromlist=["scalar", "_reconstruct"])
            found += [mod.scalar, mod._reconstruct]
        except (ImportError, AttributeError):
            pass
    # dtype classes of newer numpy (numpy.dtypes.Float64DType, ...) that pickled numpy scalars refer to
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return found


def _history_buffer_getattr(obj, name):
    """Stands in for `getattr` in the unpickler: a HistoryBuffer pickles its statistics methods by reference, as
    getattr(HistoryBuffer, 'min'), ...; nothing else may be looked up (a free getattr allows arbitrary code)."""
    owner = obj if isinstance(obj, type) else type(obj)
    if (issubclass(owner, HistoryBuffer) and isinstance(name, str)
            and name in {"min", "max", "current", "mean", *HistoryBuffer._statistics_methods}):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f"GLOBAL builtins.getattr used on {type(obj).__name__}.{name}")


# What an mmengine Runner checkpoint of an mmseg model holds besides tensors and builtins: the message hub's
# HistoryBuffers (with their bound statistics methods) and numpy arrays / scalars.
SAFE_GLOBALS = [HistoryBuffer, collections.OrderedDict, *_numpy_globals(),
                (_history_buffer_getattr, "builtins.getattr")]


def safe_torch_load(filename, map_location=None):
    """asl.checkpoint's safe reader with the allow-list above (mmengine Runner checkpoints)."""
    return read_checkpoint(os.path.expanduser(filename), SAFE_GLOBALS, map_location or "cpu")


def install_safe_loader():
    """Make mmengine read local checkpoints (load_from, --resume, Pretrained) with weights_only=True. Idempotent."""
    CheckpointLoader.register_scheme(prefixes="", force=True)(safe_torch_load)


def load_backbone_weights(backbone: torch.nn.Module, path: str) -> dict:
    """Load a tools/convert_ckpt.py --to mmseg file into an mmseg MAE backbone strictly (asl.checkpoint.check_fit);
    return a summary of what was loaded. The position embedding is resized to the backbone's grid by mmseg's own
    `resize_abs_pos_embed`, as mmseg's Pretrained loading does.

    Raises UserError when the file is missing or unreadable, is not an mmseg backbone file (the command that
    converts it is named), has another width / depth / patch size or number of heads than the backbone, lacks a
    tensor the backbone needs, or has a tensor the backbone cannot take."""
    obj = read_checkpoint(path, SAFE_GLOBALS)
    state, _ = unwrap_state_dict(obj, path)
    if any(k.startswith(("decode_head.", "backbone.")) for k in state):
        raise UserError(f"{path} is a whole segmentor's checkpoint: --init takes encoder weights (a "
                        "tools/convert_ckpt.py file); continue a run with --resume, evaluate one with --eval-only")
    fmt = detect_format(state)
    if fmt != "mmseg":
        raise UserError(f"{path} is a {fmt} checkpoint; segmentation reads mmseg files: convert it once with "
                        f"python tools/convert_ckpt.py {path} --to mmseg -o FILE")
    projection = state.get("patch_embed.projection.weight")
    if projection is None:
        raise UserError(f"{path} lacks patch_embed.projection.weight")
    width, patch, depth = projection.shape[0], projection.shape[2], count_blocks(state)
    embed_dims = backbone.patch_embed.projection.out_channels
    own_patch, own_depth = backbone.patch_embed.projection.kernel_size[0], len(backbone.layers)
    if (width, depth, patch) != (embed_dims, own_depth, own_patch):
        raise UserError(f"{path} holds a ViT of width {width}, depth {depth}, patch {patch}, but the config's "
                        f"backbone has width {embed_dims}, depth {own_depth}, patch {own_patch}: choose the config "
                        "that matches the checkpoint (or the other checkpoint)")
    meta = obj.get("meta") if isinstance(obj, dict) and isinstance(obj.get("meta"), dict) else {}
    heads = backbone.layers[0].attn.num_heads
    if meta.get("num_heads") and meta["num_heads"] != heads:
        message = (f"{path}: the backbone has {heads} attention heads, the encoder had {meta['num_heads']} "
                   f"({meta.get('num_heads_source', 'recorded by tools/convert_ckpt.py')})")
        if str(meta.get("num_heads_source", "")).startswith("config"):
            raise UserError(message + "; set model.backbone.num_heads to match")
        print_log(f"warning: {message}; the weights load either way, check num_heads", logger="current")
    if backbone.final_norm and "ln1.weight" not in state:
        raise UserError(f"the config's backbone has final_norm=True but {path} has no final norm: set "
                        "model.backbone.final_norm=False (MAE's setting for segmentation), or convert with "
                        "--final-norm")
    notes = []
    grid = state["pos_embed"].shape[1] if "pos_embed" in state else None
    state = backbone.resize_abs_pos_embed(dict(state))
    if grid is not None and state["pos_embed"].shape[1] != grid:
        notes.append(f"pos_embed resized (bicubic, mmseg's resize_abs_pos_embed) from {grid} to "
                     f"{state['pos_embed'].shape[1]} tokens")
    missing = check_fit(state, backbone.state_dict(), path,
                        may_lack=lambda key: not unmatched_target_keys("mmseg", [key]))
    backbone.load_state_dict(state, strict=False)
    summary = {"checkpoint": os.fspath(path), "method": meta.get("method"), "format": fmt, "loaded": len(state),
               "initialised_by_mmseg": len(missing), "notes": notes}
    print_log(f"backbone weights: {summary['loaded']} tensors loaded strictly from {path}; {len(missing)} "
              "initialised by mmseg (layer scale, relative-position bias)" + "".join(f"; {n}" for n in notes),
              logger="current")
    return summary
