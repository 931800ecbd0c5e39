#!/usr/bin/env python
"""Benchmark one pretraining step of MAE, ASL (branches decoded in one batched pass) and ASL (two sequential
passes): steady-state step time, img/s, peak memory, fvcore FLOPs per image, and the ratios between them.

Each mode runs in its own process (so peak memory is its own), in rounds (MAE, ASL batched, ASL sequential,
MAE, ...) so slow drifts of the machine hit every mode alike; the median over rounds is reported.

Examples:
    python tools/benchmark_pretrain.py                                  # ViT-B/16, batch 4, this device
    python tools/benchmark_pretrain.py --batch 64 --amp bf16 --peak-tflops 989 --json out.json   # H100
    python tools/benchmark_pretrain.py --batch 128 --amp bf16 --compile --fused --peak-tflops 989   # two levers
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch  # noqa: E402

from asl.models import build_pretrain_model  # noqa: E402
from asl.optim import param_groups  # noqa: E402

MODES = {"mae": dict(method="mae", loss="mse"), "asl_batched": dict(method="asl", decode_mode="batched"),
         "asl_sequential": dict(method="asl", decode_mode="sequential")}


def fvcore_flops_per_image(model, imgs) -> float:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, (imgs,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total() / imgs.shape[0]


def run_one(args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    torch.manual_seed(0)
    model = build_pretrain_model(args.arch, args.img_size, **MODES[args.single]).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95),
                                  fused=args.fused and device.type == "cuda")
    imgs = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    flops = fvcore_flops_per_image(model, imgs[:1]) if args.flops else None
    net = model
    if args.compile:  # as runtime.compile=True trains
        from torch._inductor import config as inductor_config

        inductor_config.fallback_random = True
        net = torch.compile(model)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = net(imgs)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / args.steps
    mem = (torch.cuda.max_memory_allocated() if device.type == "cuda"
           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2 ** 30
    return {"mode": args.single, "step_s": step_s, "img_per_s": args.batch / step_s, "peak_mem_gib": mem,
            "fvcore_gflops_per_img": flops / 1e9 if flops else None, "device": torch.cuda.get_device_name()
            if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vit_base_patch16")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the modes; the median is reported")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    parser.add_argument("--cpu", action="store_true", help="benchmark on the CPU even if a GPU is present")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense peak (e.g. 989 for H100 bf16) to report MFU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (a lever to measure)")
    parser.add_argument("--fused", action="store_true", help="fused AdamW on a GPU (a lever to measure)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--single", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--flops", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.single:
        print(json.dumps(run_one(args)))
        return
    base = [sys.executable, os.path.abspath(__file__), "--arch", args.arch, "--img-size", str(args.img_size),
            "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--amp", args.amp]
    base += [flag for flag, on in (("--cpu", args.cpu), ("--compile", args.compile), ("--fused", args.fused)) if on]
    runs = {mode: [] for mode in MODES}
    for r in range(args.rounds):
        for mode in MODES:
            cmd = base + ["--single", mode] + (["--flops"] if r == 0 else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"benchmark of {mode} failed:\n{out.stderr[-3000:]}")
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}/{args.rounds} {mode:15s} {runs[mode][-1]['step_s']:.3f} s/step", flush=True)
    summary = {}
    for mode, rs in runs.items():
        step_s = statistics.median(r["step_s"] for r in rs)
        summary[mode] = {"step_s": step_s, "img_per_s": args.batch / step_s,
                         "peak_mem_gib": max(r["peak_mem_gib"] for r in rs),
                         "fvcore_gflops_per_img": rs[0]["fvcore_gflops_per_img"],
                         "all_step_s": [r["step_s"] for r in rs]}
        if args.peak_tflops and rs[0]["fvcore_gflops_per_img"]:
            # fvcore counts one multiply-add as one flop: x2 for FLOPs, x3 for forward + backward
            achieved = 6 * rs[0]["fvcore_gflops_per_img"] * 1e9 * summary[mode]["img_per_s"]
            summary[mode]["mfu"] = achieved / (args.peak_tflops * 1e12)
    device = runs["mae"][0]["device"]
    ratios = {"asl_batched/mae": summary["asl_batched"]["step_s"] / summary["mae"]["step_s"],
              "asl_sequential/mae": summary["asl_sequential"]["step_s"] / summary["mae"]["step_s"],
              "asl_batched/asl_sequential": summary["asl_batched"]["step_s"] / summary["asl_sequential"]["step_s"]}
    print(f"\n{args.arch} {args.img_size}px batch {args.batch} amp {args.amp} on {device}")
    print(f"{'mode':15s} {'s/step':>8s} {'img/s':>8s} {'peak GiB':>9s} {'GFLOPs/img':>11s}" +
          (f" {'MFU':>6s}" if args.peak_tflops else ""))
    for mode, s in summary.items():
        gf = s["fvcore_gflops_per_img"]
        print(f"{mode:15s} {s['step_s']:8.3f} {s['img_per_s']:8.2f} {s['peak_mem_gib']:9.2f} "
              f"{gf if gf else float('nan'):11.2f}" + (f" {s.get('mfu', float('nan')):6.1%}" if args.peak_tflops
                                                         else ""))
    for name, value in ratios.items():
        print(f"{name:28s} {value:.3f}")
    faster = "batched" if ratios["asl_batched/asl_sequential"] < 1 else "sequential"
    print(f"faster ASL decoding here: {faster}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "device": device, "modes": summary, "ratios": ratios,
                       "faster_decode_mode": faster}, f, indent=2)


if __name__ == "__main__":
    main()
