#!/usr/bin/env python
"""Pack a folder of images into tar shards for pretraining with data.dataset=shards: WebDataset's layout (plain
tar files, one `<key>.<ext>` member per image, the file's bytes unchanged) plus index.json, which names each
shard, its size and every member's offset, so training reads any image with one positional read and never lists
the folder. Shards are written under a temporary name and renamed when complete; a rerun keeps the complete ones.

Examples:
    python tools/make_shards.py /data/openimages/train /data/openimages_shards
    python tools/pretrain.py configs/pretrain/vitb_openimages_asl_800ep.py data.dataset=shards \\
        data.path=/data/openimages_shards
    python tools/make_shards.py my_images/ my_shards/ --per-shard 2000 --shuffle-seed 0
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import main_guard  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="folder of images (any tree; .jpg .jpeg .png .webp .bmp)")
    parser.add_argument("dst", help="folder to write the shards and index.json into")
    parser.add_argument("--per-shard", type=int, default=10_000,
                        help="images per shard (default 10000)")
    parser.add_argument("--shuffle-seed", type=int,
                        help="pack in a seeded random order (for readers that stream shards in order); default: "
                             "sorted, so sample i is the folder reader's sample i")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    return parser.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    from asl.data.shards import pack_shards  # imported here: --help answers without loading torch

    index = pack_shards(args.src, args.dst, args.per_shard, args.shuffle_seed, log=lambda m: print(m, flush=True))
    print(f"wrote {len(index['shards'])} shard(s) of {index['images']} images and index.json to {args.dst}")


if __name__ == "__main__":
    main()
