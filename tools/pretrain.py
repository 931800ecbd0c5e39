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
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import config_tool, imported_on_call  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "pretrain", "toy_asl.py")

parse_args, main = config_tool(__doc__, "pretrain", DEFAULT_CONFIG,
                               imported_on_call("asl.engine.pretrain:run_pretrain"),
                               data_path="unlabeled image folder (sets data.path; default: the toy scenes)")

if __name__ == "__main__":
    main()
