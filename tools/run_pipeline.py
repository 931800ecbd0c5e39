#!/usr/bin/env python
"""Pretrain ASL and MAE, transfer each (and a random initialisation) to the frozen-feature probes, detection,
segmentation, linear probing and fine-tuning with equal budgets, and write one results table (Markdown, JSON,
PNG). `make demo` runs it on the toy scenes.

Examples:
    python tools/run_pipeline.py                                       # the toy chain on the CPU (make demo)
    python tools/run_pipeline.py --stages table                        # only rebuild the table
    python tools/run_pipeline.py --stages detection,table --force      # redo detection
    python tools/run_pipeline.py configs/pipeline/toy_long.py --data-root datasets_long   # longer toy budgets
    python tools/run_pipeline.py configs/pipeline/vitb_paper.py --data-root /data   # the paper's settings
A finished stage (its metrics.json exists) is reused on a rerun, unless its command changed since (a config
file, an override, a seed: refused, naming the stages to redo); an interrupted one (killed, preempted) continues
from its own checkpoint; --force redoes the stages named by --stages, and only those.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import UserError, main_guard  # noqa: E402
from asl.config import apply_overrides, load_config  # noqa: E402
from chain.pipeline import CHAIN_STAGES, Pipeline  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "pipeline", "toy.py")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help="pipeline config (default: toy)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the pipeline config")
    parser.add_argument("--stages", help=f"comma-separated subset of {','.join(CHAIN_STAGES)}, the config's tasks "
                        "(by default probe, linprobe, finetune, detection, segmentation) and table (default: all)")
    parser.add_argument("--output-dir", help="the pipeline's directory (default: work_dirs/pipeline/<config name>)")
    parser.add_argument("--work-dir", dest="output_dir", help=argparse.SUPPRESS)
    parser.add_argument("--data-root", help="dataset root (sets $ASL_DATASETS for every stage)")
    parser.add_argument("--jobs", type=int, help="steps run at once, each with its share of the cores (default: the "
                        "config's `jobs`, else 1; the toy configs use 2)")
    parser.add_argument("--force", action="store_true",
                        help="redo the stages named by --stages from scratch, even if their results exist")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_intermixed_args(argv)
    if "=" in args.config and not os.path.exists(args.config):  # overrides of the default config: `seed=1`
        args.config, args.overrides = DEFAULT_CONFIG, [args.config, *args.overrides]
    return args


@main_guard
def main(argv=None):
    args = parse_args(argv)
    if args.force and not args.stages:
        raise UserError("--force redoes the stages named by --stages; name them (e.g. --stages detection,table "
                        "--force) so that pretraining is not restarted by accident")
    cfg = apply_overrides(load_config(args.config), args.overrides)
    name = os.path.splitext(os.path.basename(args.config))[0]
    work_dir = args.output_dir or os.path.join("work_dirs", "pipeline", name)
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    pipeline = Pipeline(cfg, work_dir, args.data_root, args.force, args.jobs)
    pipeline.run(args.stages.split(",") if args.stages else pipeline.stages)
    print(f"[pipeline] done in {time.time() - start:.0f} s; everything is under {work_dir}")


if __name__ == "__main__":
    main()
