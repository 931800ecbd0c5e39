#!/usr/bin/env python
"""Could the transfer runs' training loaders limit a GPU? Images per second that one core (one loader worker)
delivers through the TRAINING loader of each transfer adapter, built from the real recipe, at its real sizes:
1. detectron2, ViTDet Mask R-CNN (configs/detection/mask_rcnn_vitdet_b_100ep_coco.py): large-scale jitter
   (flip, resize 0.1-2.0 of 1024, crop 1024x1024), polygon masks, boxes recomputed from the cropped masks; the loader
   the adapter trains with (transfer.detection.data.build_train_loader), with dataloader.train.total_batch_size
   and dataloader.train.num_workers=1 overridden as on the command line of tools/train_det.py.
2. mmseg, UperNet on ADE20K (configs/segmentation/upernet_vitb_8xb2_100ep_ade20k.py): resize 0.5-2.0 of
   2048x512, 512x512 crop (at most 75 % of one class), flip, photometric distortion; the loader the adapter trains
   with (SegRunner.build_dataloader, the config's OpenCV threads), train_dataloader.batch_size and num_workers=1
   overridden.
Both time --batches batches after the first (worker start-up); the loaders' samplers cycle over the images.

Without --data-root it writes, into a temporary folder, the two standard layouts the configs read: real photos
(tools/benchmark_data.py's, JPEGs at COCO sizes) with a COCO instance file of a few boxes and polygon masks per
image (3 categories), and the same photos with ADE20K-style PNG label maps (bands and rectangles of labels 0..150,
0 ignored as in ADE20K). With it, it reads coco/train2017 and ADEChallengeData2016/images/training under the root.

Examples:
    python tools/benchmark_transfer_data.py                          # generated data, 96 images, batch 4
    python tools/benchmark_transfer_data.py --data-root /data --batches 20 --json transfer_loaders.json
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from asl.cli import UserError, main_guard  # noqa: E402
from asl.records import write_json  # noqa: E402
from tools.benchmark_data import write_photos  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
DETECTION = os.path.join(CONFIGS, "detection", "mask_rcnn_vitdet_b_100ep_coco.py")
SEGMENTATION = os.path.join(CONFIGS, "segmentation", "upernet_vitb_8xb2_100ep_ade20k.py")
ADE = "ADEChallengeData2016"


def write_datasets(root: str, count: int, seed: int = 0) -> str:
    """`count` photos in the layouts of COCO (coco/train2017 + instances_train2017.json, polygon masks) and of
    ADE20K (the same photos as images/training + annotations/training label maps) under `root`."""
    images = os.path.join(root, "coco", "train2017")
    labels = os.path.join(root, ADE, "annotations", "training")
    for folder in (images, labels, os.path.join(root, "coco", "annotations"), os.path.join(root, ADE, "images")):
        os.makedirs(folder)
    write_photos(images, count, seed)
    os.symlink(images, os.path.join(root, ADE, "images", "training"))
    rng = np.random.default_rng(seed)
    coco = dict(images=[], annotations=[], categories=[dict(id=i + 1, name=n) for i, n in
                                                         enumerate(("person", "car", "dog"))])
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    for i, name in enumerate(sorted(os.listdir(images))):
        w, h = Image.open(os.path.join(images, name)).size
        coco["images"].append(dict(id=i, file_name=name, width=w, height=h))
        label = np.tile(np.repeat(rng.integers(1, 151, 3), -(-h // 3))[:h, None], (1, w)).astype(np.uint8)
        for _ in range(rng.integers(3, 7)):  # an ellipse (16-point polygon) per object; its box in the label map
            bw, bh = rng.uniform(0.1, 0.5) * w, rng.uniform(0.1, 0.5) * h
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            poly = np.stack([x + bw / 2 * (1 + np.cos(angles)), y + bh / 2 * (1 + np.sin(angles))], 1)
            coco["annotations"].append(dict(
                id=len(coco["annotations"]) + 1, image_id=i, category_id=int(rng.integers(1, 4)), iscrowd=0,
                bbox=[float(x), float(y), float(bw), float(bh)], area=float(np.pi * bw * bh / 4),
                segmentation=[poly.round(2).ravel().tolist()]))
            label[int(y):int(y + bh), int(x):int(x + bw)] = rng.integers(0, 151)
        Image.fromarray(label).save(os.path.join(labels, name[:-4] + ".png"))
    with open(os.path.join(root, "coco", "annotations", "instances_train2017.json"), "w") as f:
        json.dump(coco, f)
    return root


def rate(loader, batches: int) -> float:
    """Images per second over `batches` batches after the first (worker start-up)."""
    it = iter(loader)
    next(it)
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        batch = next(it)
        seen += len(batch["inputs"] if isinstance(batch, dict) else batch)  # mmseg: a dict; detectron2: a list
    return seen / (time.perf_counter() - start)


def detectron2_rate(root: str, batch: int, batches: int) -> float:
    from transfer.detection.data import SPLITS, build_train_loader, check_coco_file, register_datasets
    from transfer.detection.engine import load_config

    cfg = load_config(DETECTION, [f"dataloader.train.total_batch_size={batch}", "dataloader.train.num_workers=1"])
    register_datasets(root)
    name = cfg.dataloader.train.dataset.names
    check_coco_file(os.path.join(root, SPLITS[name][2]), os.path.join(root, SPLITS[name][1]), name)
    return rate(build_train_loader(cfg.dataloader.train, seed=0), batches)


def mmseg_rate(root: str, batch: int, batches: int) -> float:
    from mmengine.registry import init_default_scope
    from mmengine.utils.dl_utils import set_multi_processing

    from transfer.segmentation.data import check_data_roots, set_data_root
    from transfer.segmentation.engine import SegRunner, load_config

    cfg = load_config(SEGMENTATION, {"train_dataloader.batch_size": batch, "train_dataloader.num_workers": 1})
    set_data_root(cfg, os.path.join(root, ADE))
    check_data_roots(cfg, loaders=("train_dataloader",))
    init_default_scope(cfg.default_scope)
    set_multi_processing(**cfg.env_cfg.mp_cfg)  # as the Runner does: OpenCV single-threaded, fork
    return rate(SegRunner.build_dataloader(cfg.train_dataloader, seed=0), batches)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="root holding coco/ and ADEChallengeData2016/ in the standard layouts "
                                            "(default: generated data in a temporary folder)")
    parser.add_argument("--images", type=int, default=96, help="photos to write without --data-root")
    parser.add_argument("--batch", type=int, default=4, help="images per batch")
    parser.add_argument("--batches", type=int, default=10, help="timed batches per loader")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    args = parser.parse_args(argv)
    if min(args.images, args.batch, args.batches) < 1:
        raise UserError("--images, --batch and --batches must be positive")
    return args


@main_guard
def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.data_root:
            print(f"writing {args.images} photos with COCO and ADE20K-style annotations to {tmp} ...", flush=True)
        root = os.path.abspath(args.data_root) if args.data_root else write_datasets(tmp, args.images)
        det = detectron2_rate(root, args.batch, args.batches)
        print(f"detectron2 LSJ 1024, 1 worker: {det:.1f} img/s", flush=True)
        seg = mmseg_rate(root, args.batch, args.batches)
        print(f"mmseg 512 crops, 1 worker: {seg:.1f} img/s", flush=True)
    result = {"detectron2_lsj1024_img_per_s_per_core": round(det, 2), "mmseg_ade20k512_img_per_s_per_core":
              round(seg, 2), "images": None if args.data_root else args.images, "data_root": args.data_root,
              "batch": args.batch, "batches": args.batches}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
