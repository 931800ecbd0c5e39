#!/usr/bin/env python
"""Is the pretraining loader the bottleneck? Decoded + augmented images per second of the real pretraining data
path (asl.engine.pretrain.build_dataset: PIL decode, MAE's RandomResizedCrop + flip, per-sample seeding, the
training loops' DataLoader) for each number of workers, then end-to-end pretraining img/s with that loader against
the same model fed synthetic tensors, in one run.

Without --data-path it writes real photos (matplotlib's bundled sample photographs, re-cropped and re-encoded as
JPEGs at COCO sizes, 640x480 and the like) into a temporary folder; with it, it reads your images.

Examples:
    python tools/benchmark_data.py                                   # CPU, toy model, workers 0,1,2
    python tools/benchmark_data.py --workers 1,4,8,16 --arch vit_base_patch16 --batch 64 --json out.json
    python tools/benchmark_data.py --data-path /data/coco/train2017 --workers 8,16
"""
import argparse
import itertools
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from asl.cli import UserError, main_guard  # noqa: E402
from asl.data.images import ResumableSampler, collate_skip_bad  # noqa: E402
from asl.engine.pretrain import build_dataset  # noqa: E402
from asl.engine.runtime import epoch_loader  # noqa: E402
from asl.models import build_pretrain_model  # noqa: E402

COCO_SIZES = ((640, 480), (480, 640), (640, 427), (612, 612), (500, 375))


def write_photos(folder: str, count: int, seed: int = 0) -> str:
    """`count` JPEGs at COCO sizes cut from matplotlib's sample photographs (real camera images)."""
    import matplotlib.cbook

    sources = [Image.open(matplotlib.cbook.get_sample_data(name)).convert("RGB")
               for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")]
    rng = np.random.default_rng(seed)
    for i in range(count):
        src = sources[i % len(sources)]
        w, h = COCO_SIZES[i % len(COCO_SIZES)]
        scale = rng.uniform(0.6, 1.0)
        cw, ch = int(src.width * scale), int(src.height * scale)
        x, y = int(rng.integers(0, src.width - cw + 1)), int(rng.integers(0, src.height - ch + 1))
        img = src.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BICUBIC)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img.save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)
    return folder


def loader_rate(dataset, workers: int, batch: int, batches: int, pin: bool) -> float:
    """Images per second the loader delivers (first batch excluded: worker start-up)."""
    sampler = ResumableSampler(len(dataset), seed=0)
    loader = epoch_loader(dataset, sampler, batch, workers, seed=0, epoch=0, collate_fn=collate_skip_bad,
                          pin_memory=pin)
    it, seen = iter(loader), 0
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        imgs, _ = next(it)
        seen += imgs.shape[0]
    return seen / (time.perf_counter() - start)


def train_rate(model, optimizer, batches, device, amp) -> float:
    """Images per second of pretraining steps over `batches` (an iterable of image tensors), after one warm-up."""
    def step(imgs):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = model(imgs.to(device, non_blocking=True))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    it = iter(batches)
    step(next(it))
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, seen = time.perf_counter(), 0
    for imgs in it:
        step(imgs)
        seen += imgs.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-path", help="image folder to read (default: JPEGs written from real photos)")
    parser.add_argument("--images", type=int, default=256, help="JPEGs to write without --data-path")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated loader worker counts to time")
    parser.add_argument("--batch", type=int, default=32, help="images per batch")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per measurement")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--arch", default="vit_toy_patch16", help="model of the end-to-end comparison")
    parser.add_argument("--method", default="asl", choices=("asl", "mae"))
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    return parser.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    try:
        workers = [int(w) for w in args.workers.split(",")]
    except ValueError:
        raise UserError(f"--workers takes comma-separated integers, got {args.workers!r}") from None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.data_path:
            print(f"writing {args.images} JPEGs at COCO sizes to {tmp} ...", flush=True)
        folder = args.data_path or write_photos(tmp, args.images)
        data_cfg = dict(dataset="folder", path=folder, transform="mae", file_list_cache=None)
        dataset, name = build_dataset(data_cfg, args.img_size)
        needed = args.batch * (args.batches + 1)
        if len(dataset) < needed:
            raise UserError(f"{len(dataset)} images under {folder}; the measurement needs {needed} "
                            "(batch x (batches + 1)): lower --batch / --batches or give more images")
        result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                  "cpu_cores": os.cpu_count(), "data": args.data_path or f"{args.images} JPEGs from real photos",
                  "img_size": args.img_size, "batch": args.batch, "loader_img_per_s": {}}
        for w in workers:
            rate = loader_rate(dataset, w, args.batch, args.batches, device.type == "cuda")
            result["loader_img_per_s"][w] = round(rate, 1)
            print(f"loader, {w} worker(s): {rate:.1f} img/s ({rate / max(w, 1):.1f} per worker)", flush=True)

        model = build_pretrain_model(args.arch, args.img_size, args.method).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        amp = device.type == "cuda"
        best = max(workers, key=lambda w: result["loader_img_per_s"][w])
        sampler = ResumableSampler(len(dataset), seed=0)
        loader = epoch_loader(dataset, sampler, args.batch, best, 0, 0, collate_skip_bad, pin_memory=amp)
        real_batches = (imgs for imgs, _ in itertools.islice(loader, args.batches + 1))
        real = train_rate(model, optimizer, real_batches, device, amp)
        synthetic_batch = torch.randn(args.batch, 3, args.img_size, args.img_size)
        synthetic = train_rate(model, optimizer, (synthetic_batch for _ in range(args.batches + 1)), device, amp)
        result.update(arch=args.arch, method=args.method, end_to_end_workers=best,
                      train_img_per_s_real_loader=round(real, 1), train_img_per_s_synthetic=round(synthetic, 1),
                      real_over_synthetic=round(real / synthetic, 3))
        print(f"pretraining {args.method} {args.arch}: {real:.1f} img/s with the loader ({best} workers), "
              f"{synthetic:.1f} img/s on synthetic input: ratio {real / synthetic:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
