#!/usr/bin/env python
"""Build the unlabeled ImageNet-100 + COCO pretraining folder of the paper (configs/pretrain/vitb_in100coco_*,
data.path = $ASL_DATASETS/in100_coco) as a farm of directory links, nothing copied: OUT/imagenet100/<class> for
each of the 100 classes of asl/data/imagenet100.txt (CMC's list) in ImageNet's train split, and OUT/coco_train2017
for COCO's train2017. Pretraining follows the links. The tool then lists the images as pretraining will and prints
the counts and the iterations at the paper's batch of 4096: 126,689 + 118,287 = 244,976 images, 59 full batches
per epoch, 236,000 iterations in 4000 epochs (the paper's Table 3: ~236k). A rerun with the same sources changes
nothing; --file-list also writes the file-list cache pretraining can read (data.file_list_cache).

Examples:
    python tools/build_in100_coco.py          # $ASL_DATASETS/imagenet/train + coco/train2017 -> in100_coco
    python tools/build_in100_coco.py --imagenet /data/imagenet/train --coco /data/coco/train2017 \\
        --out /data/in100_coco --file-list /data/in100_coco_files.json
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import UserError, dataset_root, main_guard  # noqa: E402

PAPER_COUNTS = {"imagenet100": 126_689, "coco_train2017": 118_287}  # ImageNet-100 train (CMC), COCO train2017
PAPER_BATCH = 4096


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imagenet", help="ImageNet's train split, one folder per class (default: "
                                           "$ASL_DATASETS/imagenet/train)")
    parser.add_argument("--coco", help="COCO train2017 images (default: $ASL_DATASETS/coco/train2017)")
    parser.add_argument("--out", help="the folder to build (default: $ASL_DATASETS/in100_coco)")
    parser.add_argument("--file-list", metavar="JSON", help="also write the file-list cache of OUT here")
    parser.add_argument("--batch", type=int, default=PAPER_BATCH, help="batch for the iteration count (4096)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def link(target: str, path: str):
    """`path` -> `target` (absolute); an existing link to the same target is kept, anything else is refused."""
    if os.path.islink(path):
        if os.path.realpath(path) == os.path.realpath(target):
            return False
        raise UserError(f"{path} links to {os.readlink(path)}, not {target}; remove it or choose another --out")
    if os.path.exists(path):
        raise UserError(f"{path} exists and is not a link; remove it or choose another --out")
    os.symlink(target, path, target_is_directory=True)
    return True


def build(imagenet: str, coco: str, out: str) -> int:
    """Create the links; returns how many were new."""
    if not os.path.isdir(imagenet):
        raise UserError(f"ImageNet train folder {imagenet!r} does not exist; give --imagenet DIR (the folder "
                        "holding n01440764/, ...)")
    if not os.path.isdir(coco):
        raise UserError(f"COCO train2017 folder {coco!r} does not exist; give --coco DIR")
    from asl.data.classification import imagenet100_classes  # imported here: --help answers without loading torch

    classes = imagenet100_classes()
    missing = [c for c in classes if not os.path.isdir(os.path.join(imagenet, c))]
    if missing:
        raise UserError(f"{len(missing)} of the {len(classes)} ImageNet-100 classes are missing under {imagenet!r} "
                        f"(first: {missing[0]}); --imagenet must be ImageNet's train split")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out!r} exists and is not a folder")
    os.makedirs(os.path.join(out, "imagenet100"), exist_ok=True)
    new = sum(link(os.path.abspath(os.path.join(imagenet, c)), os.path.join(out, "imagenet100", c))
              for c in classes)
    return new + link(os.path.abspath(coco), os.path.join(out, "coco_train2017"))


@main_guard
def main(argv=None):
    args = parse_args(argv)
    if args.batch < 1:
        raise UserError("--batch must be a positive integer")
    root = dataset_root()
    imagenet = args.imagenet or os.path.join(root, "imagenet", "train")
    coco = args.coco or os.path.join(root, "coco", "train2017")
    out = args.out or os.path.join(root, "in100_coco")
    new = build(imagenet, coco, out)
    print(f"listing the images under {out} (the full sets: about 245k, a minute or more on a network disk)",
          flush=True)
    from asl.data.images import list_images

    files = list_images(out, args.file_list)
    counts = {part: sum(1 for f in files if f.startswith(part + os.sep)) for part in PAPER_COUNTS}
    total = len(files)
    per_epoch = total // args.batch  # the pretraining loop drops the last partial batch
    print(f"{out}: {new} new link(s); {total:,} images = {counts['imagenet100']:,} ImageNet-100 + "
          f"{counts['coco_train2017']:,} COCO train2017")
    print(f"at batch {args.batch}: {per_epoch} iterations per epoch, {per_epoch * 800:,} in 800 epochs, "
          f"{per_epoch * 4000:,} in 4000 epochs")
    if counts != PAPER_COUNTS:
        print(f"note: the paper's set has {PAPER_COUNTS['imagenet100']:,} + {PAPER_COUNTS['coco_train2017']:,} = "
              f"{sum(PAPER_COUNTS.values()):,} images (~236k iterations at 4000 epochs); these sources differ")
    if args.file_list:
        print(f"file list: {args.file_list} (data.file_list_cache={args.file_list})")


if __name__ == "__main__":
    main()
