"""detectron2's DetectionCheckpointer, made strict and accounted.

detectron2 loads non-strictly: a key it cannot place is a log line, a wrongly shaped tensor is skipped with a
warning, and with its matching heuristics keys are matched by suffix (an MAE `norm.*` lands on a pyramid norm).
`StrictDetectionCheckpointer` keeps everything detectron2 does for resuming (trainer, optimizer, scheduler state)
but refuses a file unless every tensor in it lands on a parameter of the same name and shape, and every
parameter it leaves alone is one that detectron2 initialises itself (asl.convert.TARGET_INIT: relative-position
tables, the pyramid, RPN and ROI heads). Files are read with asl.checkpoint's safe reader (no pickled code).

A checkpoint that is not in detectron2's layout (this project's pretraining checkpoint, an MAE release, timm,
mmseg) is converted in memory by asl.convert, as tools/convert_ckpt.py would, with the position embedding
resized to the model's pretraining grid.
"""
import logging
import math

import torch
from detectron2.checkpoint import DetectionCheckpointer

from asl.checkpoint import encoder_state_dict, read_checkpoint
from asl.cli import UserError
from asl.convert import convert, detect_format, unmatched_target_keys
from asl.optim import strip_wrappers

logger = logging.getLogger("detectron2.asl")  # under detectron2's log setup
BACKBONE = "backbone.net."
IGNORED_BUFFERS = ("pixel_mean", "pixel_std")  # set by the config, as detectron2 does


class StrictDetectionCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer that loads a file exactly or not at all. After a load, `last_load` says what was
    loaded: {"path", "format", "loaded" (keys), "initialised" (model keys left to detectron2), "method"}."""

    def __init__(self, model, save_dir="", **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.last_load = None

    def _load_file(self, filename):
        obj = read_checkpoint(filename)
        if not isinstance(obj, dict):
            raise UserError(f"{filename} holds a {type(obj).__name__}, not a state dict")
        ckpt = dict(obj) if isinstance(obj.get("model"), dict) else {"model": obj}
        state = {strip_wrappers(k): v for k, v in ckpt["model"].items()}
        fmt = detect_format(state)
        method = None
        if fmt != "detectron2":
            config = obj.get("config") if isinstance(obj.get("config"), dict) else None
            canonical, info = encoder_state_dict(state, config)
            method = ((config or {}).get("model") or {}).get("method")
            state, report = convert(canonical, info, "detectron2", img_size=self._pretrain_img_size(info))
            logger.info("converted %s in memory (as tools/convert_ckpt.py --to detectron2 would):\n%s",
                        filename, report.text())
            ckpt = {"model": state}
        ckpt["model"] = state
        self._pending = {"path": filename, "format": fmt, "method": method}
        return ckpt

    def _pretrain_img_size(self, info):
        """Image size whose patch grid is the model's pos_embed grid (so the converter resizes to it)."""
        pos = self.model.state_dict().get(BACKBONE + "pos_embed")
        vit = getattr(getattr(self.model, "backbone", None), "net", None)
        if pos is None or vit is None:
            return None
        return math.isqrt(pos.shape[1] - int(vit.pretrain_use_cls_token)) * info["patch_size"]

    def _load_model(self, checkpoint):
        state = checkpoint["model"]
        own = self.model.state_dict()
        path = self._pending["path"]
        for key, value in state.items():
            if key in own and tuple(value.shape) != tuple(own[key].shape):
                hint = ""
                if key.endswith("pos_embed"):
                    hint = (" (a pretraining grid other than the config's: set model.backbone.net.pretrain_img_size "
                            "to the pretraining image size, or convert with --img-size)")
                raise UserError(f"{path}: {key} has shape {tuple(value.shape)} but the model's is "
                                f"{tuple(own[key].shape)}{hint}")
        unexpected = [k for k in state if k not in own]
        if unexpected:
            raise UserError(f"{path} has {unexpected[0]}, which the model does not have"
                            + (f" ({len(unexpected) - 1} more keys alike)" if len(unexpected) > 1 else "")
                            + "; check the config's backbone (depth, width, use_rel_pos) against the checkpoint")
        missing = [k for k in own if k not in state and not k.endswith(IGNORED_BUFFERS)]
        full = any(not k.startswith(BACKBONE) for k in state)
        not_accounted = missing if full else unmatched_target_keys("detectron2", missing)
        if not_accounted:
            raise UserError(f"{path} lacks {not_accounted[0]}"
                            + (f" ({len(not_accounted) - 1} more keys alike)" if len(not_accounted) > 1 else "")
                            + (", which a full detector checkpoint must have" if full else
                               ", which detectron2 does not initialise by itself"))
        expected = {k: v.detach().clone() for k, v in state.items()}
        incompatible = super()._load_model(checkpoint)
        loaded = self.model.state_dict()
        wrong = [k for k, v in expected.items() if not torch.equal(loaded[k].cpu(), v.to(loaded[k].dtype))]
        if wrong:  # never expected: detectron2 skipped or altered a tensor
            raise RuntimeError(f"{len(wrong)} tensors of {path} did not load, e.g. {wrong[0]}")
        self.last_load = dict(self._pending, loaded=sorted(expected), initialised=missing, full=full)
        logger.info("loaded all %d tensors of %s (%s layout)%s", len(expected), path, self._pending["format"],
                    "" if full else f"; {len(missing)} detectron2-initialised tensors (relative-position tables, "
                                    "pyramid, RPN, ROI heads)")
        return incompatible
