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
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import add_run_options, apply_data_root, main_guard, normalize_argv  # noqa: E402
from asl.config import apply_overrides, load_config  # noqa: E402
from asl.engine.probing import run_probes  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "probe", "toy.py")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help="config file (default: the toy one)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    add_run_options(parser, "probe", init="any encoder checkpoint (a pretraining checkpoint, an MAE release, "
                    "timm weights, a tools/convert_ckpt.py file)")
    args = parser.parse_intermixed_args(normalize_argv(argv))
    if "=" in args.config:  # overrides of the default config
        args.overrides.insert(0, args.config)
        args.config = DEFAULT_CONFIG
    return args


@main_guard
def main(argv=None):
    args = parse_args(argv)
    apply_data_root(args.data_root)
    cfg = apply_overrides(load_config(args.config), args.overrides)
    for key, value in (("init", args.init), ("init_name", args.init_name)):
        if value:
            cfg["model"][key] = value
    name = os.path.splitext(os.path.basename(args.config))[0]
    run_probes(cfg, args.output_dir or os.path.join("work_dirs", "probe", name), args.resume, args.force)


if __name__ == "__main__":
    main()
