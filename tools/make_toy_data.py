#!/usr/bin/env python
"""Generate the toy scenes (unlabeled folder, COCO instance split, ADE20K-style semantic split).

Example:
    python tools/make_toy_data.py                       # -> $ASL_DATASETS/toy_scenes (default ./datasets)
    python tools/make_toy_data.py --out /tmp/toy --num-unlabeled 5000 --size 96 --seed 1
    python tools/make_toy_data.py --out /tmp/big/toy_scenes --size 640 --num-unlabeled 64 --num-train 16 \\
        --num-val 4 --standard-layouts /tmp/big       # full-size stand-ins for COCO and ADE20K
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tqdm import tqdm  # noqa: E402

from asl.cli import UserError, dataset_root, main_guard  # noqa: E402
from asl.data.toy import TOY_SCENES, write_standard_layouts, write_toy_scenes  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="output folder (default: $ASL_DATASETS/toy_scenes)")
    parser.add_argument("--num-unlabeled", type=int, default=TOY_SCENES["num_unlabeled"],
                        help="unlabeled pretraining scenes")
    parser.add_argument("--num-train", type=int, default=TOY_SCENES["num_train"],
                        help="labeled training scenes (COCO and ADE splits)")
    parser.add_argument("--num-val", type=int, default=TOY_SCENES["num_val"], help="labeled validation scenes")
    parser.add_argument("--size", type=int, default=TOY_SCENES["size"], help="image side in pixels")
    parser.add_argument("--seed", type=int, default=TOY_SCENES["seed"])
    parser.add_argument("--radius", type=float, nargs=2, default=TOY_SCENES["radius"], metavar=("MIN", "MAX"),
                        help="range of the shapes' circumradius, as fractions of the side")
    parser.add_argument("--max-objects", type=int, default=TOY_SCENES["max_objects"], help="shapes per scene, at most")
    parser.add_argument("--backgrounds", choices=["all", "smooth"], default=TOY_SCENES["backgrounds"],
                        help="all: gradients, smooth noise, stripes and checkerboards; smooth: the first two")
    parser.add_argument("--upright", dest="rotate", action="store_false", default=TOY_SCENES["rotate"],
                        help="squares axis-aligned and triangles on their base instead of rotated at random")
    parser.add_argument("--rotated", dest="rotate", action="store_true", help="shapes rotated at random")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="processes sharing the scenes (default: one per core this process may use; the files "
                             "are the same for any number)")
    parser.add_argument("--standard-layouts", metavar="ROOT",
                        help="also lay the scenes out as COCO (coco/train2017, ...) and ADE20K "
                             "(ADEChallengeData2016/...) under ROOT, so the real configs run on them (timing)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    if min(args.num_unlabeled, args.num_train, args.num_val) < 0 or args.size < 16 or args.workers < 1:
        raise UserError("counts must be >= 0, --size >= 16 and --workers >= 1")
    out = args.out or os.path.join(dataset_root(), "toy_scenes")
    total = args.num_unlabeled + args.num_train + args.num_val
    start = time.time()
    with tqdm(total=total, desc="toy scenes", unit="scene") as bar:
        write_toy_scenes(out, bar.update, args.workers, num_unlabeled=args.num_unlabeled, num_train=args.num_train,
                         num_val=args.num_val, size=args.size, seed=args.seed, radius=args.radius,
                         max_objects=args.max_objects, backgrounds=args.backgrounds,
                         rotate=args.rotate)
    print(f"wrote {total} scenes ({args.size}px, seed {args.seed}) to {out} in {time.time() - start:.1f} s")
    if args.standard_layouts:
        counts = write_standard_layouts(out, args.standard_layouts)
        print(f"laid out as COCO and ADE20K under {args.standard_layouts}: {counts}")


if __name__ == "__main__":
    main()
