"""Checkpoints in the mmseg adapter.

* `install_safe_loader()`: mmengine 0.10.7 reads local checkpoints with a bare `torch.load`, which torch >= 2.6 runs
  with `weights_only=True`; an mmengine Runner checkpoint (its message hub holds `HistoryBuffer`s and numpy
  scalars) then fails to load and `--resume` breaks. Instead of turning the safe loader off, this registers a
  local-file loader that keeps `weights_only=True` and allows exactly the few types mmengine/mmseg checkpoints
  hold. Installed on import (the configs import this module through `custom_imports`).
* `load_backbone_weights(backbone, path)`: strict loading of encoder weights into mmseg's MAE backbone. mmseg's
  own `init_cfg=dict(type='Pretrained')` loading is non-strict: a wrong prefix loads nothing and training silently
  starts from random weights. Here every backbone key must come from the file or be one that mmseg initialises
  itself (asl.convert.TARGET_INIT), every key of the file must be used, and a wrong architecture is a one-line
  error. The file may be one written by `tools/convert_ckpt.py --to mmseg`, or any checkpoint asl.checkpoint
  reads (this project's pretraining checkpoint, an MAE release, ...), which is converted in memory by asl.convert.
"""
import collections
import os
import pickle
import re

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader

from asl.checkpoint import load_encoder
from asl.cli import UserError
from asl.convert import convert, describe, unmatched_target_keys


def _numpy_globals():
    found = [np.dtype, np.ndarray]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            mod = __import__(module, fromlist=["scalar", "_reconstruct"])
            found += [mod.scalar, mod._reconstruct]
        except (ImportError, AttributeError):
            pass
    # dtype classes of numpy >= 1.25 (numpy.dtypes.Float64DType, ...) that pickled numpy scalars refer to
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
    """torch.load with weights_only=True and the allow-list above; anything else is a one-line UserError."""
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f"a Python object ({unsafe.group(1)})" if unsafe else "something the safe loader cannot read"
        raise UserError(f"refusing to load {filename}: it holds {what} and loading it could run arbitrary code; "
                        "use a checkpoint written by mmengine's Runner or by tools/convert_ckpt.py") from None
    except (RuntimeError, EOFError) as err:
        raise UserError(f"{filename} is not a readable PyTorch checkpoint (truncated or corrupt?): "
                        f"{str(err).splitlines()[0]}") from None


def _load_from_local(filename, map_location):
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise UserError(f"checkpoint {filename} does not exist")
    return safe_torch_load(filename, map_location)


def install_safe_loader():
    """Make mmengine read local checkpoints (load_from, --resume, Pretrained) with weights_only=True."""
    CheckpointLoader.register_scheme(prefixes="", force=True)(_load_from_local)


install_safe_loader()


def _img_size(backbone):
    """The backbone's (square) input size in pixels, from its patch grid."""
    rows, cols = backbone.patch_shape
    patch = backbone.patch_embed.projection.kernel_size[0]
    if rows != cols:
        raise UserError(f"the backbone's patch grid is {rows}x{cols}; converted ViT weights need a square img_size")
    return rows * patch


def load_backbone_weights(backbone: torch.nn.Module, path: str) -> dict:
    """Load encoder weights into an mmseg MAE backbone strictly; return a summary of what was loaded.

    Raises UserError when the file is missing or unreadable, holds no ViT, has another width / depth / patch size
    than the backbone, lacks a tensor the backbone needs, or has a tensor the backbone cannot take."""
    state_dict, info = load_encoder(path)
    embed_dims = backbone.patch_embed.projection.out_channels
    patch = backbone.patch_embed.projection.kernel_size[0]
    depth = len(backbone.layers)
    if (info["embed_dim"], info["depth"], info["patch_size"]) != (embed_dims, depth, patch):
        raise UserError(f"{path} holds a ViT of width {info['embed_dim']}, depth {info['depth']}, patch "
                        f"{info['patch_size']}, but the config's backbone has width {embed_dims}, depth {depth}, "
                        f"patch {patch}: choose the config that matches the checkpoint (or the other checkpoint)")
    heads = backbone.layers[0].attn.num_heads
    if heads != info["num_heads"]:
        message = (f"{path}: the backbone has {heads} attention heads, the checkpoint's ViT of width "
                   f"{info['embed_dim']} has {info['num_heads']} ({info['num_heads_source']})")
        if info["num_heads_source"].startswith("config"):
            raise UserError(message + "; set model.backbone.num_heads to match")
        print_log(f"warning: {message}; the weights load either way, check num_heads", logger="current")
    final_norm = bool(backbone.final_norm)
    if final_norm and not info["final_norm"]:
        raise UserError(f"the config's backbone has final_norm=True but {path} has no final norm: set "
                        "model.backbone.final_norm=False (MAE's setting for segmentation)")
    out, report = convert(state_dict, info, "mmseg", img_size=_img_size(backbone), final_norm=final_norm)
    own = backbone.state_dict()
    for key, value in out.items():
        if key in own and tuple(value.shape) != tuple(own[key].shape):
            raise UserError(f"{path}: {key} has shape {tuple(value.shape)}, the backbone needs "
                            f"{tuple(own[key].shape)}")
    missing, unexpected = backbone.load_state_dict(out, strict=False)
    unmatched = unmatched_target_keys("mmseg", missing)
    if unexpected:
        raise UserError(f"{path}: the backbone has no parameter {unexpected[0]}"
                        + (f" ({len(unexpected) - 1} more keys alike)" if len(unexpected) > 1 else ""))
    if unmatched:
        raise UserError(f"{path} lacks {unmatched[0]}, which the backbone needs"
                        + (f" ({len(unmatched) - 1} more keys alike)" if len(unmatched) > 1 else ""))
    summary = {"checkpoint": os.fspath(path), "source": describe(info), "format": info["format"],
               "loaded": len(out), "initialised_by_mmseg": len(missing),
               "dropped": len(report.dropped), "notes": report.notes[:-1]}
    print_log(f"backbone weights: {summary['loaded']} tensors loaded strictly from {path} ({summary['source']}); "
              f"{len(missing)} initialised by mmseg (layer scale, relative-position bias)"
              + "".join(f"; {n}" for n in summary["notes"]), logger="current")
    return summary
