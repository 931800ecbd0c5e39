#!/usr/bin/env python
"""Frozen-feature probes of an encoder, in seconds on the toy scenes: weighted kNN top-1 (DINO's protocol) and a
linear classifier on image features (cls + mean patch token), and a dense linear probe on the patch tokens,
upsampled to the label maps and scored as mIoU (mmseg's definition). The encoder is never trained.

Examples:
    python tools/probe.py --init work_dirs/pretrain/toy_asl/checkpoints/last.pth --init-name asl   # toy, CPU
    python tools/probe.py                                                   # a random encoder: the baseline
    python tools/probe.py configs/probe/in1k_ade20k_vitb.py --init mae_pretrain_vit_base.pth --init-name mae
Overrides are dotted key=value pairs (probe.knn.k=10). Writes work_dirs/probe/<config name>/ (config.json,
metrics.json: knn_top1, linear_top1, dense_mIoU and the dense probe's IoU per class).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import ENCODER_INIT, config_tool, imported_on_call  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "probe", "toy.py")

parse_args, main = config_tool(__doc__, "probe", DEFAULT_CONFIG, imported_on_call("asl.engine.probing:run_probes"),
                               init=ENCODER_INIT)

if __name__ == "__main__":
    main()
