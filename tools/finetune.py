#!/usr/bin/env python
"""End-to-end fine-tuning: global pooling + fc_norm, layer-wise lr decay, RandAug, mixup/cutmix, drop path.

Examples:
    python tools/finetune.py --init work_dirs/pretrain/toy_asl/checkpoints/last.pth --init-name asl   # toy, CPU
    python tools/finetune.py configs/finetune/in100_vitb.py --init asl_vitb.pth --init-name asl optim.epochs=10
    torchrun --nproc_per_node 8 tools/finetune.py configs/finetune/in100_vitb.py --init asl_vitb.pth --resume auto
Without --init the encoder is randomly initialised (the baseline). Overrides are dotted key=value pairs.
Writes work_dirs/finetune/<config name>/ (config.json, log.jsonl, checkpoints/last.pth, metrics.json).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tools.linprobe import classification_tool  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "finetune", "toy.py")

parse_args, main = classification_tool("finetune", __doc__, DEFAULT_CONFIG)  # linear probing's command line

if __name__ == "__main__":
    main()
