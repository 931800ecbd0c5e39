#!/usr/bin/env python
"""Linear probing of a frozen encoder: cls token (or the mean patch token: model.pool), BatchNorm without affine,
linear head, LARS.

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
from asl.cli import ENCODER_INIT, config_tool, imported_on_call  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "linprobe", "toy.py")


def classification_tool(mode: str, doc: str, default_config: str):
    """(parse_args, main) of tools/linprobe.py and tools/finetune.py: one command line, the mode apart."""
    run_classification = imported_on_call("asl.engine.classification:run_classification")
    return config_tool(doc, mode, default_config,
                       lambda cfg, run_dir, resume, force: run_classification(cfg, run_dir, mode, resume, force),
                       init=ENCODER_INIT, data_path="the dataset's folder (sets data.path; default: its standard "
                       "place under the dataset root)")


parse_args, main = classification_tool("linprobe", __doc__, DEFAULT_CONFIG)

if __name__ == "__main__":
    main()
