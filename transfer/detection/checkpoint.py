"""detectron2's DetectionCheckpointer, made strict and accounted.

detectron2 loads non-strictly: a key it cannot place is a log line, a wrongly shaped tensor is skipped with a
warning, and with its matching heuristics keys are matched by suffix (an MAE `norm.*` lands on a pyramid norm).
`StrictDetectionCheckpointer` keeps everything detectron2 does for resuming (trainer, optimizer, scheduler state)
but refuses a file unless every tensor in it lands on a parameter of the same name and shape, and every
parameter it leaves alone is one that detectron2 initialises itself (asl.convert.TARGET_INIT: relative-position
tables, the pyramid, RPN and ROI heads): asl.checkpoint.check_fit. Files are read with asl.checkpoint's safe
reader (no pickled code). It reads detectron2 files only: encoder weights come from tools/convert_ckpt.py
--to detectron2, the one conversion path.
"""
import logging

import torch
from detectron2.checkpoint import DetectionCheckpointer

from asl.checkpoint import check_fit, read_checkpoint
from asl.cli import UserError
from asl.convert import DETECTRON2_BACKBONE, detect_format, unmatched_target_keys
from asl.optim import strip_wrappers

logger = logging.getLogger("detectron2.asl")  # under detectron2's log setup
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
        if fmt != "detectron2":
            raise UserError(f"{filename} is a {fmt} checkpoint; detection reads detectron2 files: convert it once "
                            f"with python tools/convert_ckpt.py {filename} --to detectron2 -o FILE")
        ckpt["model"] = state
        method = (obj.get("meta") or {}).get("method") if isinstance(obj.get("meta"), dict) else None
        self._pending = {"path": filename, "format": fmt, "method": method}
        return ckpt

    def _load_model(self, checkpoint):
        state = checkpoint["model"]
        path = self._pending["path"]
        full = any(not k.startswith(DETECTRON2_BACKBONE) for k in state)
        own = {k: v for k, v in self.model.state_dict().items() if not k.endswith(IGNORED_BUFFERS)}
        def hint(key):
            return (" (a pretraining grid other than the config's: set model.backbone.net.pretrain_img_size to the "
                    "pretraining image size)") if key.endswith("pos_embed") else ""

        # a full detector checkpoint must have every tensor; a backbone file leaves TARGET_INIT to detectron2
        missing = check_fit(state, own, path, may_lack=lambda k: not full and not unmatched_target_keys(
            "detectron2", [k]), shape_hint=hint)
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
