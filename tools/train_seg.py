#!/usr/bin/env python
"""Semantic segmentation transfer: UperNet on a ViT encoder in mmsegmentation (mmengine Runner), ADE20K or the toy
scenes. Run with --help for examples; the work is done in transfer/segmentation/engine.py.

Examples:
    python tools/train_seg.py configs/segmentation/upernet_toy_1xb8_toyscenes.py --init toy_asl_mmseg.pth
    python tools/train_seg.py configs/segmentation/upernet_toy_1xb8_toyscenes.py --resume
    torchrun --nproc_per_node 8 tools/train_seg.py configs/ade20k_vitb_upernet.py --init vitb_mmseg.pth
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import add_run_options, main_guard, normalize_argv  # noqa: E402


def build_parser():
    from mmengine.config import DictAction  # only here: mmseg's own imports wait for main

    parser = argparse.ArgumentParser(
        prog="train_seg.py",
        description="UperNet semantic segmentation (mmsegmentation) on a ViT encoder: ADE20K or the toy scenes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  python tools/train_seg.py configs/segmentation/upernet_toy_1xb8_toyscenes.py       # toy, random init, CPU
  python tools/convert_ckpt.py work_dirs/pretrain/toy_asl/checkpoints/last.pth --to mmseg -o toy_asl_mmseg.pth
  python tools/train_seg.py configs/segmentation/upernet_toy_1xb8_toyscenes.py --init toy_asl_mmseg.pth \
      --init-name asl
  python tools/train_seg.py configs/segmentation/upernet_toy_1xb8_toyscenes.py --resume   # continue the last run
  python tools/train_seg.py configs/segmentation/upernet_toy_1xb8_toyscenes.py \
      --eval-only work_dirs/segmentation/upernet_toy_1xb8_toyscenes/iter_600.pth
  torchrun --nproc_per_node 8 tools/train_seg.py configs/ade20k_vitb_upernet.py --init vitb_asl_mmseg.pth
  srun --ntasks-per-node 8 python tools/train_seg.py configs/ade20k_vitb_upernet.py --init vitb_asl_mmseg.pth
under torchrun or srun every process joins one group by itself; SIGTERM / SIGUSR1 save a checkpoint and exit
with status 75; a run directory holding another run's checkpoint is refused unless --resume or --force.
overrides: key=value pairs after the config or --cfg-options (mmengine syntax), e.g.
  train_cfg.max_iters=100 optim_wrapper.optimizer.lr=5e-4 train_dataloader.dataset.indices=40
runs go to work_dirs/segmentation/<config name>/ (resolved config, log.jsonl, mmengine logs and tensorboard
events under <timestamp>/, iter_N.pth checkpoints, metrics.json).""")
    parser.add_argument("config", help="mmengine config file")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (as --cfg-options)")
    add_run_options(parser, "segmentation", init="a file of tools/convert_ckpt.py --to mmseg")
    parser.add_argument("--data-path", metavar="DIR", help="the dataset's folder holding images/ and annotations/ "
                                                           "(default: the config's data_root under the dataset root)")
    own = parser.add_argument_group("your own label maps (instead of the config's datasets; the heads get the "
                                    "class count)")
    for split in ("train", "val"):
        own.add_argument(f"--{split}-images", metavar="DIR", help=f"folder of the {split} images")
        own.add_argument(f"--{split}-labels", metavar="DIR", help=f"folder of the {split} label maps (.png, one "
                         "channel of class indices, named as the images)")
    own.add_argument("--classes", metavar="A,B,...|FILE", help="the class names, in label order (a list or a file "
                     "with one name per line)")
    own.add_argument("--ignore-index", type=int, default=255, help="the label that is no class (default 255)")
    own.add_argument("--reduce-zero-label", action="store_true", help="label 0 is 'other', ignored (ADE20K's "
                     "convention); class i is label i + 1")
    parser.add_argument("--resume-from", dest="resume", help=argparse.SUPPRESS)
    parser.add_argument("--amp", action="store_true", help="mixed precision (AmpOptimWrapper; needs a GPU)")
    parser.add_argument("--eval-only", metavar="CKPT", help="evaluate this mmengine checkpoint on the test split")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="mmengine overrides: key=value, lists as key=[a,b]")
    parser.add_argument("--launcher", choices=["auto", "none", "pytorch", "slurm", "mpi"], default="auto",
                        help="job launcher (auto: torchrun's or srun's variables when present, else one process)")
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def parse_args(argv=None):
    return build_parser().parse_intermixed_args(normalize_argv(argv))


@main_guard
def main(argv=None):
    args = parse_args(argv)
    from transfer.segmentation.engine import run  # mmseg imports take a few seconds

    run(args)


if __name__ == "__main__":
    main()
