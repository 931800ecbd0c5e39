#!/usr/bin/env python
"""Reconstructions of a pretraining checkpoint (original | masked | reconstruction | reconstruction with the
visible patches pasted back, for the plain and the enhanced ASL branch) and its loss curves, as PNG files.

Examples:
    python tools/visualize.py work_dirs/pretrain/toy_asl/checkpoints/last.pth datasets/toy_scenes/coco/val/00000*.png
    python tools/visualize.py ckpt.pth img1.jpg img2.jpg --out figs --log work_dirs/pretrain/toy_mae/log.jsonl
Writes OUT/reconstructions.png and OUT/loss_curves.png (the run's log.jsonl next to checkpoints/, plus --log).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import UserError, main_guard  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--out", default=None, help="output folder (default: the run directory's figures/)")
    parser.add_argument("--log", action="append", default=[], help="more log.jsonl files to plot alongside")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random mask")
    parser.add_argument("--debug", action="store_true")
    return parser.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    import torch  # imported here, as in the other tools: --help answers without loading torch
    from PIL import Image

    from asl.checkpoint import load_pretrain_model
    from asl.data.transforms import eval_transform
    from asl.viz import reconstruct, save_loss_curves, save_reconstructions

    model, cfg = load_pretrain_model(args.checkpoint)
    size = cfg["model"]["img_size"]
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(args.checkpoint)))
    out = args.out or os.path.join(run_dir, "figures")
    os.makedirs(out, exist_ok=True)
    tf = eval_transform(size, crop_ratio=1.0)
    for path in args.images:
        if not os.path.isfile(path):
            raise UserError(f"image {path!r} does not exist")
    imgs = torch.stack([tf(Image.open(p).convert("RGB")) for p in args.images])
    save_reconstructions(reconstruct(model, imgs, args.seed), os.path.join(out, "reconstructions.png"))
    logs = {os.path.basename(run_dir): os.path.join(run_dir, "log.jsonl")}
    logs = {k: v for k, v in logs.items() if os.path.exists(v)}
    logs.update({os.path.basename(os.path.dirname(os.path.abspath(p))): p for p in args.log})
    written = [os.path.join(out, "reconstructions.png")]
    if logs:
        save_loss_curves(logs, os.path.join(out, "loss_curves.png"))
        written.append(os.path.join(out, "loss_curves.png"))
    print("wrote " + ", ".join(written))


if __name__ == "__main__":
    main()
