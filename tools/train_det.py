#!/usr/bin/env python
"""Train or evaluate a ViTDet Mask R-CNN (detectron2 LazyConfig) from an ASL / MAE encoder: box and mask AP.

Examples:
    python tools/train_det.py                                  # toy config on the toy scenes (generated), CPU
    python tools/convert_ckpt.py work_dirs/pretrain/toy_asl/checkpoints/last.pth --to detectron2 -o toy_asl_d2.pth
    python tools/train_det.py configs/detection/mask_rcnn_vitdet_toy_1000it.py \\
        --init toy_asl_d2.pth --init-name asl
    python tools/train_det.py configs/coco_vitb.py --num-gpus 8 --data-root /data \\
        train.init_checkpoint=work_dirs/weights/asl_vitb_d2.pth
    python tools/train_det.py --config-file configs/coco_vitb.py --num-gpus 8 --resume          # after a crash
    srun --ntasks-per-node 8 python tools/train_det.py configs/coco_vitb.py --resume   # SLURM: one task per GPU
    torchrun --nproc_per_node 8 tools/train_det.py configs/coco_vitb.py               # the same under torchrun
    python tools/train_det.py configs/coco_vitb.py --eval-only train.init_checkpoint=RUN_DIR/model_final.pth
    (node i of 8) python tools/train_det.py configs/coco_vitb.py --num-gpus 8 --num-machines 8 \\
        --machine-rank $i --dist-url tcp://node0:29500 train.init_checkpoint=...

Overrides are detectron2 LazyConfig `key=value` pairs after the config (e.g. train.max_iter=100
dataloader.train.total_batch_size=16); a key the config does not have is an error. --init (train.init_checkpoint)
takes a file from tools/convert_ckpt.py --to detectron2; any other checkpoint is refused with the command that
converts it. Datasets: --data-root, else $ASL_DATASETS, else ./datasets, in the standard layout
(coco/{train2017,val2017,annotations}; toy_scenes/ is generated when a toy config needs it).
A run writes train.output_dir (default work_dirs/detection/<config name>): config.yaml, log.txt, log.jsonl,
tensorboard/, model_*.pth checkpoints, last_checkpoint, metrics.json (box/mask AP, AP50, AP75, APs/m/l).
A directory holding another run's checkpoint is refused unless --resume or --force. Under srun or torchrun each
process joins one group by itself (no --num-gpus); SIGTERM / SIGUSR1 save a checkpoint and exit with status 75.
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# Import-time notices of the stack (torch.jit, pkg_resources, timm), not the user's concern: keep stderr for errors.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
from detectron2.engine import default_argument_parser, launch  # noqa: E402
from torch.multiprocessing import ProcessRaisedException  # noqa: E402

from asl.cli import UserError, add_run_options, apply_data_root, main_guard, normalize_argv  # noqa: E402
from asl.engine import launch as launcher  # noqa: E402
from asl.signals import EXIT_PREEMPTED, StopSignals  # noqa: E402
from transfer.detection.data import prepare_datasets, use_own_dataset  # noqa: E402
from transfer.detection.engine import (  # noqa: E402
    claim_output_dir,
    join_external_launch,
    load_config,
    own_dataset_paths,
    run,
)

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "detection",
                              "mask_rcnn_vitdet_toy_1000it.py")


def parse_args(argv=None):
    """detectron2's default_argument_parser flags, but the config may also be positional and flags may follow
    the config and the overrides (its REMAINDER `opts` would swallow them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    reference = default_argument_parser()
    for action in reference._actions:  # detectron2's --resume is a switch; ours takes the house's [auto|CKPT]
        if action.option_strings and action.dest not in ("help", "resume"):
            parser._add_action(action)
    add_run_options(parser, "detection", init="a file of tools/convert_ckpt.py --to detectron2 (sets "
                    "train.init_checkpoint)", resume_help="continue the output directory's run from its "
                    "last_checkpoint ('auto', also when --resume is given alone); a new run when there is none")
    own = parser.add_argument_group("your own COCO-format set (instead of the config's datasets; classes from its "
                                    "categories, boxes only when it has no masks)")
    for split in ("train", "val"):
        own.add_argument(f"--{split}-annotations", metavar="JSON", help=f"{split} annotation file (COCO format)")
        own.add_argument(f"--{split}-images", metavar="DIR", help=f"folder of the {split} images")
    parser.add_argument("--time-limit-min", type=float, metavar="MIN",
                        help="stop cleanly after MIN minutes of training with a resumable checkpoint (then --resume)")
    parser.add_argument("opts", nargs="*", metavar="[CONFIG] key=value",
                        help="config path (or --config-file), then LazyConfig overrides")
    args = parser.parse_intermixed_args(normalize_argv(argv))
    if args.resume not in (None, "auto"):
        raise UserError("detection resumes the run of its --output-dir (from last_checkpoint): give --resume "
                        "without a file, or train.init_checkpoint=FILE to start from weights")
    args.resume = args.resume == "auto"
    args.init_method = args.init_name
    apply_data_root(args.data_root)
    opts = list(args.opts)
    if opts and "=" not in opts[0]:  # positional config path
        if args.config_file:
            raise UserError(f"two configs given: --config-file {args.config_file} and {opts[0]}")
        args.config_file = opts.pop(0)
    for item in opts:
        if "=" not in item:
            raise UserError(f"{item!r} is neither an option nor a key=value override")
    if args.init:
        opts.append(f"train.init_checkpoint={args.init}")
    args.opts = opts
    args.config_file = args.config_file or DEFAULT_CONFIG
    if args.num_gpus < 1 or args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise UserError("--num-gpus and --num-machines must be >= 1 and 0 <= --machine-rank < --num-machines")
    return args


@main_guard
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config_file, args.opts, args.output_dir)
    own = own_dataset_paths(args)
    if own:
        summary = use_own_dataset(cfg, own)
        print(f"your dataset: {len(summary['classes'])} classes ({', '.join(summary['classes'])}), "
              f"{'boxes and masks' if summary['masks'] else 'boxes only (no masks in the annotations)'}", flush=True)
    if cfg.train.output_dir in ("", "./output", "output"):  # detectron2's default: use the house layout
        name = os.path.splitext(os.path.basename(args.config_file))[0]
        args.output_dir = cfg.train.output_dir = os.path.join("work_dirs", "detection", name)
    init = cfg.train.init_checkpoint
    if init and not os.path.exists(init) and "://" not in init:
        raise UserError(f"train.init_checkpoint {init} does not exist; convert a pretraining checkpoint with "
                        "python tools/convert_ckpt.py CKPT --to detectron2 -o FILE")
    external = launcher.detect_launch()
    if external.world_size > 1:  # srun / torchrun started this process as one of several: join them
        if args.num_gpus > 1 or args.num_machines > 1:
            raise UserError(f"started by {external.source} as process {external.rank} of {external.world_size}: "
                            "leave out --num-gpus / --num-machines (the launcher starts one process per GPU)")
        join_external_launch(external)
    claim_output_dir(cfg, args, main=external.rank == 0 and args.machine_rank == 0)
    # Every check that can fail on the user's data runs here, before anything is built (the main process first:
    # it may generate the toy scenes).
    if external.rank == 0:
        args.dataset_summaries = prepare_datasets(cfg, args.data_root, args.eval_only)
    if external.world_size > 1:
        from detectron2.utils import comm

        comm.synchronize()
        if external.rank:
            args.dataset_summaries = prepare_datasets(cfg, args.data_root, args.eval_only)
        return run(args)
    # detectron2's launch spawns the processes: this one waits for them through a stop signal, passes it on (they
    # save and stop) and passes their status 75 on
    signals = StopSignals(forward_to_children=True)
    try:
        launch(run, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))
    except ProcessRaisedException as err:
        if "Preempted" not in str(err):
            raise
        print(f"preempted: {str(err).strip().splitlines()[-1]}", file=sys.stderr, flush=True)
        sys.exit(EXIT_PREEMPTED)
    finally:
        signals.close()


if __name__ == "__main__":
    main()
