#!/usr/bin/env python
"""Pretrain a ViT with ASL or the MAE baseline (one process, or one per device under torchrun or srun).

Examples:
    python tools/pretrain.py                                        # toy ASL on the toy scenes, CPU, minutes
    python tools/pretrain.py configs/pretrain/toy_mae.py optim.epochs=2
    python tools/pretrain.py configs/pretrain/vitb_coco_asl_800ep.py --data-path /data/coco/train2017
    torchrun --nproc_per_node 8 tools/pretrain.py configs/pretrain/vitb_coco_asl_800ep.py --resume auto
    srun --ntasks-per-node 8 python tools/pretrain.py configs/pretrain/vitb_coco_asl_800ep.py --resume auto
    tools/pretrain.sh configs/pretrain/vitb_coco_asl_800ep.py         # torchrun, GPUs and nodes from env
Overrides are dotted key=value pairs anywhere on the line (e.g. model.temperature=0.5 optim.batch_size=32).
Runs go to work_dirs/pretrain/<config name>/ (config.json, log.jsonl, tensorboard/, checkpoints/, metrics.json);
a directory holding another run's checkpoint is refused unless --resume auto (continue) or --force (start over).
SIGTERM / SIGUSR1 save a checkpoint at the next step and exit with status 75 (docs/cluster.md).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import add_run_options, apply_data_root, main_guard, normalize_argv  # noqa: E402
from asl.config import apply_overrides, load_config  # noqa: E402
from asl.engine.pretrain import run_pretrain  # noqa: E402
from asl.engine.runtime import exit_when_preempted  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "pretrain", "toy_asl.py")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help="config file (default: toy ASL)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--data-path", help="unlabeled image folder (sets data.path; default: the toy scenes)")
    add_run_options(parser, "pretrain")
    return parser.parse_intermixed_args(normalize_argv(argv))


@main_guard
@exit_when_preempted
def main(argv=None):
    args = parse_args(argv)
    apply_data_root(args.data_root)
    if "=" in args.config:  # only overrides were given
        args.overrides.insert(0, args.config)
        args.config = DEFAULT_CONFIG
    cfg = apply_overrides(load_config(args.config), args.overrides)
    if args.data_path:
        cfg["data"]["path"] = args.data_path
    name = os.path.splitext(os.path.basename(args.config))[0]
    run_dir = args.output_dir or os.path.join("work_dirs", "pretrain", name)
    run_pretrain(cfg, run_dir, args.resume, args.force)


if __name__ == "__main__":
    main()
