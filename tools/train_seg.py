#!/usr/bin/env python
"""Semantic segmentation transfer: UperNet on a ViT encoder in mmsegmentation (mmengine Runner), ADE20K or the toy
scenes. Run with --help for examples; the work is done in transfer/segmentation/engine.py.

Examples:
    python tools/train_seg.py configs/segmentation/upernet_toy_1xb8_toyscenes.py --init toy_asl_mmseg.pth
    python tools/train_seg.py configs/segmentation/upernet_toy_1xb8_toyscenes.py --resume
    torchrun --nproc_per_node 8 tools/train_seg.py configs/ade20k_vitb_upernet.py --init vitb_mmseg.pth
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import main_guard  # noqa: E402
from asl.engine.runtime import exit_when_preempted  # noqa: E402


@main_guard
@exit_when_preempted
def main(argv=None):
    from transfer.segmentation.engine import parse_args, run  # mmseg imports take a few seconds

    run(parse_args(argv))


if __name__ == "__main__":
    main()
