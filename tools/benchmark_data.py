#!/usr/bin/env python
"""Is the pretraining loader the bottleneck, and would it be on a GPU? In one run:
1. img/s of the real pretraining data path (asl.engine.pretrain.build_dataset, per-sample seeding, the training
   loops' DataLoader) for each reader and worker count: the folder with the PIL + torchvision transform
   (data.fast_decode=False, the path before the fast decode), the folder with the fast decode (the default), and
   a shard set (tools/make_shards.py) with the fast decode. One worker is one core's worth.
2. What a GPU needs: training FLOPs per image (fvcore) of MAE and ASL for each --gpu-archs, the img/s a GPU
   delivers at --mfu of --peak-tflops, and so the img/s each of its --cores-per-gpu must decode, against the fast
   path's rate per core measured in step 1.
3. End-to-end pretraining img/s with the fastest loader against the same model fed synthetic tensors.

Without --data-path it writes real photos (matplotlib's bundled sample photographs, re-cropped and re-encoded as
JPEGs at COCO sizes, 640x480 and the like) into a temporary folder; with it, it reads your images.

Examples:
    python tools/benchmark_data.py                                   # CPU, toy model, workers 1,2
    python tools/benchmark_data.py --workers 1,4,8,16 --arch vit_base_patch16 --batch 64 --json out.json
    python tools/benchmark_data.py --data-path /data/coco/train2017 --workers 8,16
"""
import argparse
import itertools
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from asl.cli import UserError, main_guard  # noqa: E402
from asl.data.images import ResumableSampler, collate_skip_bad, list_images  # noqa: E402
from asl.data.shards import pack_shards  # noqa: E402
from asl.data.transforms import to_model_input  # noqa: E402
from asl.engine.pretrain import build_dataset  # noqa: E402
from asl.engine.runtime import epoch_loader  # noqa: E402
from asl.models import build_pretrain_model  # noqa: E402
from asl.records import write_json  # noqa: E402
from tools.benchmark_pretrain import fvcore_flops_per_image  # noqa: E402

COCO_SIZES = ((640, 480), (480, 640), (640, 427), (612, 612), (500, 375))
# reader -> data config: the folder read the PIL way (before the fast decode), the folder and a shard set read the
# fast way (the default)
READERS = {"folder_pil": dict(dataset="folder", fast_decode=False), "folder_fast": dict(dataset="folder"),
           "shards_fast": dict(dataset="shards")}


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
            loss = model(to_model_input(imgs.to(device, non_blocking=True)))["loss"]
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


def gpu_need(archs, img_size: int, mfu: float, peak_tflops: float, cores_per_gpu) -> list:
    """Per method and arch: training GFLOPs per image (fvcore's forward multiply-adds of one image x 2 for FLOPs
    x 3 for forward + backward), the img/s one GPU trains at `mfu` of `peak_tflops`, and what that asks of each
    core for every count in `cores_per_gpu`."""
    rows = []
    for arch in archs:
        for method in ("mae", "asl"):
            model = build_pretrain_model(arch, img_size, method).eval()
            with torch.no_grad():
                gflops = 6 * fvcore_flops_per_image(model, (torch.randn(1, 3, img_size, img_size),))[0] / 1e9
            per_gpu = mfu * peak_tflops * 1e3 / gflops
            rows.append(dict(method=method, arch=arch, train_gflops_per_img=round(gflops, 2),
                             gpu_img_per_s=round(per_gpu), per_core={c: round(per_gpu / c) for c in cores_per_gpu}))
            del model
    return rows


def per_core(rates: dict) -> float:
    """One core's rate: the 1-worker rate where measured, else the best rate per worker."""
    return rates[1] if 1 in rates else max(r / max(w, 1) for w, r in rates.items())


def int_list(text: str, flag: str) -> list:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{flag} takes comma-separated integers, got {text!r}") from None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-path", help="image folder to read (default: JPEGs written from real photos)")
    parser.add_argument("--images", type=int, default=256, help="JPEGs to write without --data-path")
    parser.add_argument("--workers", default="1,2", help="comma-separated loader worker counts to time")
    parser.add_argument("--batch", type=int, default=32, help="images per batch")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per measurement")
    parser.add_argument("--train-batches", type=int, default=3,
                        help="timed batches of the end-to-end pretraining comparison")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--arch", default="vit_toy_patch16", help="model of the end-to-end comparison")
    parser.add_argument("--method", default="asl", choices=("asl", "mae"))
    parser.add_argument("--gpu-archs", default="vit_base_patch16,vit_large_patch16",
                        help="archs of the GPU-need table (empty: no table)")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="the GPU's dense bf16 peak (default: H100 SXM, 989)")
    parser.add_argument("--mfu", type=float, default=0.4, help="model FLOP utilisation aimed at (default 0.4)")
    parser.add_argument("--cores-per-gpu", default="16,12", help="CPU cores per GPU of the nodes to plan for")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    return parser.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    workers, cores = int_list(args.workers, "--workers"), int_list(args.cores_per_gpu, "--cores-per-gpu")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.data_path:
            print(f"writing {args.images} JPEGs at COCO sizes to {tmp} ...", flush=True)
        folder = args.data_path or write_photos(tmp, args.images)
        needed = args.batch * (args.batches + 1)
        # the shard set holds the images the measurement reads (a --data-path folder is not copied whole)
        shards = os.path.join(tmp, "shards")
        pack_shards(folder, shards, per_shard=max(needed // 4, 1), files=list_images(folder)[:needed],
                    log=lambda m: None)
        result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                  "cpu_cores": os.cpu_count(), "data": args.data_path or f"{args.images} JPEGs from real photos",
                  "img_size": args.img_size, "batch": args.batch, "loader_img_per_s": {}}
        datasets = {}
        for reader, data_cfg in READERS.items():
            path = shards if data_cfg["dataset"] == "shards" else folder
            datasets[reader] = build_dataset(dict(data_cfg, path=path, transform="mae", file_list_cache=None),
                                             args.img_size)[0]
            if len(datasets[reader]) < needed:
                raise UserError(f"{len(datasets[reader])} images under {folder}; the measurement needs {needed} "
                                "(batch x (batches + 1)): lower --batch / --batches or give more images")
            rates = result["loader_img_per_s"][reader] = {}
            for w in workers:
                rates[w] = round(loader_rate(datasets[reader], w, args.batch, args.batches, device.type == "cuda"), 1)
                print(f"loader {reader}, {w} worker(s): {rates[w]:.1f} img/s ({rates[w] / max(w, 1):.1f} per "
                      "worker)", flush=True)
        result["img_per_s_per_core"] = {r: per_core(rates) for r, rates in result["loader_img_per_s"].items()}
        before, fast = result["img_per_s_per_core"]["folder_pil"], result["img_per_s_per_core"]["folder_fast"]
        print(f"per core: {before:.0f} img/s before (PIL), {fast:.0f} with the fast decode "
              f"({fast / before:.2f}x), {result['img_per_s_per_core']['shards_fast']:.0f} from shards", flush=True)

        archs = [a for a in args.gpu_archs.split(",") if a]
        result["gpu_need"] = gpu_need(archs, args.img_size, args.mfu, args.peak_tflops, cores)
        for row in result["gpu_need"]:
            need = ", ".join(f"{n} img/s per core at {c} cores" for c, n in row["per_core"].items())
            print(f"{row['method']} {row['arch']}: {row['train_gflops_per_img']} GFLOPs/img, {row['gpu_img_per_s']} "
                  f"img/s per GPU at {args.mfu:.0%} MFU of {args.peak_tflops:g} TFLOP/s: {need}", flush=True)

        model = build_pretrain_model(args.arch, args.img_size, args.method).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        amp = device.type == "cuda"
        reader, best = max(((r, w) for r, rates in result["loader_img_per_s"].items() for w in rates),
                           key=lambda rw: result["loader_img_per_s"][rw[0]][rw[1]])
        sampler = ResumableSampler(len(datasets[reader]), seed=0)
        loader = epoch_loader(datasets[reader], sampler, args.batch, best, 0, 0, collate_skip_bad, pin_memory=amp)
        real_batches = (imgs for imgs, _ in itertools.islice(loader, args.train_batches + 1))
        real = train_rate(model, optimizer, real_batches, device, amp)
        synthetic_batch = torch.randn(args.batch, 3, args.img_size, args.img_size)
        synthetic = train_rate(model, optimizer, (synthetic_batch for _ in range(args.train_batches + 1)), device,
                               amp)
        result.update(arch=args.arch, method=args.method, end_to_end_reader=reader, end_to_end_workers=best,
                      train_img_per_s_real_loader=round(real, 1), train_img_per_s_synthetic=round(synthetic, 1),
                      real_over_synthetic=round(real / synthetic, 3))
        print(f"pretraining {args.method} {args.arch}: {real:.1f} img/s with the loader ({reader}, {best} workers), "
              f"{synthetic:.1f} img/s on synthetic input: ratio {real / synthetic:.3f}", flush=True)
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
