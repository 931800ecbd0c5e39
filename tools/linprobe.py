#!/usr/bin/env python
"""Linear probing of a frozen encoder: cls token, BatchNorm without affine, linear head, LARS.

Examples:
    python tools/linprobe.py --init work_dirs/pretrain/toy_asl/checkpoints/last.pth --init-name asl   # toy, CPU
    python tools/linprobe.py configs/linprobe/in100_vitb.py --init asl_vitb.pth --init-name asl optim.epochs=10
    torchrun --nproc_per_node 8 tools/linprobe.py configs/linprobe/in100_vitb.py --init asl_vitb.pth --resume auto
Without --init the encoder is randomly initialised (the baseline). Overrides are dotted key=value pairs.
Writes work_dirs/linprobe/<config name>/ (config.json, log.jsonl, checkpoints/last.pth, metrics.json).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import main_guard  # noqa: E402
from asl.engine.classification import tool_main  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "linprobe", "toy.py")

if __name__ == "__main__":
    main_guard(tool_main)("linprobe", __doc__, DEFAULT_CONFIG)
