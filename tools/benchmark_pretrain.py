#!/usr/bin/env python
"""Benchmark one pretraining step of MAE, ASL (branches decoded in one batched pass) and ASL (two sequential
passes), and optionally of an iBOT-style reference: steady-state step time, img/s, peak memory, fvcore FLOPs per
image, and the ratios between them.

The iBOT reference (mode `ibot`, timing only; the paper's runtime comparison, 0.2 s ASL vs 1.6 s iBOT per
iteration of ViT-B at batch 32 on a V100) is a student and an EMA teacher ViT built from timm blocks, 2 global
crops at --img-size and 10 local crops at 96 px per image, masked patch tokens in the student's global crops,
a shared projection head onto 8192 prototypes for the cls and patch tokens, DINO's cls loss over crop pairs +
iBOT's masked-patch loss with centering, and the teacher's EMA update after each step.

Each mode runs in its own process (so peak memory is its own), in rounds (MAE, ASL batched, ASL sequential,
MAE, ...) so slow drifts of the machine hit every mode alike; the median over rounds is reported.

Examples:
    python tools/benchmark_pretrain.py                                  # ViT-B/16, batch 4, this device
    python tools/benchmark_pretrain.py --batch 64 --amp bf16 --peak-tflops 989 --json out.json   # H100
    python tools/benchmark_pretrain.py --batch 128 --amp bf16 --compile --fused --peak-tflops 989   # two levers
    python tools/benchmark_pretrain.py --batch 32 --amp bf16 --modes mae,asl_batched,ibot   # the paper's runtime
"""
import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from timm.models.vision_transformer import Block, PatchEmbed  # noqa: E402

from asl.models import build_pretrain_model, encoder_kwargs  # noqa: E402
from asl.models.pos_embed import resize_pos_embed  # noqa: E402
from asl.models.vit import LayerNorm  # noqa: E402
from asl.optim import param_groups  # noqa: E402

MODES = {"mae": dict(method="mae", loss="mse"), "asl_batched": dict(method="asl", decode_mode="batched"),
         "asl_sequential": dict(method="asl", decode_mode="sequential"), "ibot": None}
DEFAULT_MODES = "mae,asl_batched,asl_sequential"
PAPER_S_PER_ITER = {"asl": 0.2, "ibot": 1.6}  # ViT-B, batch 32, one V100 (the paper's runtime comparison)


class IBOTViT(nn.Module):
    """iBOT's backbone: a plain ViT of timm blocks with learnable positions (resized for the local crops) and a
    learnable mask token that replaces the masked patch embeddings; every token is encoded."""

    def __init__(self, img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.patch_size = patch_size
        self.patch_embed = PatchEmbed(img_size, patch_size, 3, embed_dim, strict_img_size=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, 1 + (img_size // patch_size) ** 2, embed_dim))
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=LayerNorm)
                                     for _ in range(depth)])
        self.norm = LayerNorm(embed_dim)

    def forward(self, imgs, mask=None):
        x = self.patch_embed(imgs)
        if mask is not None:
            x = torch.where(mask.unsqueeze(-1), self.mask_token.to(x.dtype), x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + resize_pos_embed(self.pos_embed, imgs.shape[-1] // self.patch_size)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


class IBOTHead(nn.Module):
    """DINO's / iBOT's projection head: MLP (2048, 2048, 256 bottleneck), l2-normalised, then a weight-normalised
    linear layer onto the prototypes; iBOT's ViT-B shares it between the cls and the patch tokens."""

    def __init__(self, dim, out_dim=8192, hidden=2048, bottleneck=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.last = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))

    def forward(self, x):
        return self.last(F.normalize(self.mlp(x), dim=-1))


class IBOTReference(nn.Module):
    """An iBOT-style training step, for timing only: the student encodes 2 global crops (a random `mask_ratio` of
    their patch tokens masked) and `local_crops` small crops, the EMA teacher the 2 global crops unmasked; the
    loss is DINO's cls cross-entropy between every teacher crop and every other student crop plus iBOT's
    cross-entropy on the masked patch tokens, both against centred, sharpened teacher outputs. No augmentation,
    schedule or multi-GPU centring: the work per step, not a trainer."""

    def __init__(self, arch, img_size=224, local_size=None, local_crops=10, out_dim=8192, mask_ratio=0.3,
                 momentum=0.996):
        super().__init__()
        kwargs = encoder_kwargs(arch, img_size)
        self.student = nn.ModuleDict(dict(backbone=IBOTViT(**kwargs), head=IBOTHead(kwargs["embed_dim"], out_dim)))
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        patch = kwargs["patch_size"]  # local crops: 96 px at 224, in proportion at other sizes
        self.local_size = local_size or max(round(img_size * 96 / 224 / patch), 1) * patch
        self.img_size, self.local_crops = img_size, local_crops
        self.mask_ratio, self.momentum = mask_ratio, momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("center_patch", torch.zeros(1, 1, out_dim))

    def inputs(self, batch: int, device) -> tuple:
        """The crops of `batch` images: (2 x batch global, local_crops x batch local)."""
        return (torch.randn(2 * batch, 3, self.img_size, self.img_size, device=device),
                torch.randn(self.local_crops * batch, 3, self.local_size, self.local_size, device=device))

    def forward(self, global_crops, local_crops):
        n = global_crops.shape[0] // 2
        grid = self.img_size // self.student.backbone.patch_size
        mask = torch.rand(2 * n, grid * grid, device=global_crops.device) < self.mask_ratio
        with torch.no_grad():
            t = self.teacher.head(self.teacher.backbone(global_crops))  # (2n, 1 + L, prototypes)
            t_cls = F.softmax((t[:, 0] - self.center) / 0.04, dim=-1).view(2, n, -1)
            t_patch = F.softmax((t[:, 1:] - self.center_patch) / 0.04, dim=-1)
        s_global = self.student.head(self.student.backbone(global_crops, mask))
        s_local = self.student.head(self.student.backbone(local_crops)[:, 0])
        s_cls = F.log_softmax(torch.cat([s_global[:, 0], s_local]) / 0.1, dim=-1).view(2 + self.local_crops, n, -1)
        cls_terms = [-(t_cls[q] * s_cls[v]).sum(-1).mean() for q in range(2) for v in range(2 + self.local_crops)
                     if v != q]
        patch = -(t_patch * F.log_softmax(s_global[:, 1:] / 0.1, dim=-1)).sum(-1)
        patch_loss = ((patch * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
        with torch.no_grad():
            self.center.mul_(0.9).add_(t[:, 0].float().mean(0, keepdim=True), alpha=0.1)
            self.center_patch.mul_(0.9).add_(t[:, 1:].float().mean((0, 1)).view(1, 1, -1), alpha=0.1)
        return {"loss": sum(cls_terms) / len(cls_terms) + patch_loss}

    @torch.no_grad()
    def after_step(self):
        """The teacher's EMA update, after every optimizer step."""
        teacher, student = list(self.teacher.parameters()), list(self.student.parameters())
        torch._foreach_mul_(teacher, self.momentum)
        torch._foreach_add_(teacher, student, alpha=1 - self.momentum)


def build(mode: str, arch: str, img_size: int, device):
    """The model of a mode, and its inputs for a number of images."""
    if mode == "ibot":
        model = IBOTReference(arch, img_size).to(device)
        return model, lambda batch: model.inputs(batch, device)
    model = build_pretrain_model(arch, img_size, **MODES[mode]).to(device)
    return model, lambda batch: (torch.randn(batch, 3, img_size, img_size, device=device),)


def fvcore_flops_per_image(model, inputs) -> tuple:
    """(all, untrained) forward multiply-adds on the inputs of one image; `untrained` is the part that has no
    backward pass (the iBOT teacher's)."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    teacher = analysis.by_module().get("teacher", 0) if isinstance(model, IBOTReference) else 0
    return analysis.total(), teacher


def run_one(args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    torch.manual_seed(0)
    model, make_inputs = build(args.single, args.arch, args.img_size, device)
    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95),
                                  fused=args.fused and device.type == "cuda")
    inputs = make_inputs(args.batch)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    flops = fvcore_flops_per_image(model, make_inputs(1)) if args.flops else None
    after_step = getattr(model, "after_step", None)
    net = model
    if args.compile:  # as runtime.compile=True trains
        from torch._inductor import config as inductor_config

        inductor_config.fallback_random = True
        net = torch.compile(model)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = net(*inputs)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if after_step:
            after_step()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / args.steps
    cpu_step_s = (time.process_time() - cpu_start) / args.steps  # this process's CPU time: on a shared CPU, the
    # work done, without the waits for cores that other jobs hold
    mem = (torch.cuda.max_memory_allocated() if device.type == "cuda"
           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2 ** 30
    return {"mode": args.single, "step_s": step_s, "cpu_step_s": cpu_step_s, "img_per_s": args.batch / step_s,
            "peak_mem_gib": mem,
            "fvcore_gflops_per_img": flops[0] / 1e9 if flops else None,
            "fvcore_untrained_gflops_per_img": flops[1] / 1e9 if flops else None, "device":
            torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"}


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
    parser.add_argument("--modes", default=DEFAULT_MODES, help=f"comma-separated subset of {','.join(MODES)} "
                        f"(default: {DEFAULT_MODES}; ibot is the paper's runtime reference)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--single", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--flops", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.single:
        print(json.dumps(run_one(args)))
        return
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        sys.exit(f"error: unknown mode(s) {', '.join(unknown)}; modes are {', '.join(MODES)}")
    base = [sys.executable, os.path.abspath(__file__), "--arch", args.arch, "--img-size", str(args.img_size),
            "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--amp", args.amp]
    base += [flag for flag, on in (("--cpu", args.cpu), ("--compile", args.compile), ("--fused", args.fused)) if on]
    runs = {mode: [] for mode in modes}
    for r in range(args.rounds):
        for mode in modes:
            cmd = base + ["--single", mode] + (["--flops"] if r == 0 else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"benchmark of {mode} failed:\n{out.stderr[-3000:]}")
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}/{args.rounds} {mode:15s} {runs[mode][-1]['step_s']:.3f} s/step "
                  f"({runs[mode][-1]['cpu_step_s']:.3f} s CPU time)", flush=True)
    summary = {}
    for mode, rs in runs.items():
        step_s = statistics.median(r["step_s"] for r in rs)
        summary[mode] = {"step_s": step_s, "cpu_step_s": statistics.median(r["cpu_step_s"] for r in rs),
                         "img_per_s": args.batch / step_s,
                         "peak_mem_gib": max(r["peak_mem_gib"] for r in rs),
                         "fvcore_gflops_per_img": rs[0]["fvcore_gflops_per_img"],
                         "fvcore_untrained_gflops_per_img": rs[0]["fvcore_untrained_gflops_per_img"],
                         "all_step_s": [r["step_s"] for r in rs]}
        if args.peak_tflops and rs[0]["fvcore_gflops_per_img"]:
            # fvcore counts one multiply-add as one flop: x2 for FLOPs, x3 for forward + backward (x1 for the
            # iBOT teacher, which has no backward)
            gflops, untrained = rs[0]["fvcore_gflops_per_img"], rs[0]["fvcore_untrained_gflops_per_img"]
            achieved = 2 * (3 * (gflops - untrained) + untrained) * 1e9 * summary[mode]["img_per_s"]
            summary[mode]["mfu"] = achieved / (args.peak_tflops * 1e12)
    device = runs[modes[0]][0]["device"]
    pairs = [("asl_batched", "mae"), ("asl_sequential", "mae"), ("asl_batched", "asl_sequential"),
             ("ibot", "asl_batched"), ("ibot", "mae")]
    ratios = {f"{a}/{b}": summary[a]["step_s"] / summary[b]["step_s"] for a, b in pairs if a in runs and b in runs}
    cpu_ratios = {f"{a}/{b}": summary[a]["cpu_step_s"] / summary[b]["cpu_step_s"] for a, b in pairs
                  if a in runs and b in runs}
    print(f"\n{args.arch} {args.img_size}px batch {args.batch} amp {args.amp} on {device}")
    print(f"{'mode':15s} {'s/step':>8s} {'img/s':>8s} {'peak GiB':>9s} {'GFLOPs/img':>11s}" +
          (f" {'MFU':>6s}" if args.peak_tflops else ""))
    for mode, s in summary.items():
        gf = s["fvcore_gflops_per_img"]
        print(f"{mode:15s} {s['step_s']:8.3f} {s['img_per_s']:8.2f} {s['peak_mem_gib']:9.2f} "
              f"{gf if gf else float('nan'):11.2f}" + (f" {s.get('mfu', float('nan')):6.1%}" if args.peak_tflops
                                                         else ""))
    for name, value in ratios.items():
        print(f"{name:28s} {value:.3f}" + (f"   CPU time {cpu_ratios[name]:.3f}" if device.startswith("cpu") else ""))
    if "ibot/asl_batched" in ratios:
        print(f"{'paper: ibot/asl':28s} {PAPER_S_PER_ITER['ibot'] / PAPER_S_PER_ITER['asl']:.3f} "
              f"({PAPER_S_PER_ITER['ibot']} vs {PAPER_S_PER_ITER['asl']} s/iter, ViT-B, batch 32, V100)")
    faster = None
    if "asl_batched/asl_sequential" in ratios:
        faster = "batched" if ratios["asl_batched/asl_sequential"] < 1 else "sequential"
        print(f"faster ASL decoding here: {faster}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "device": device, "modes": summary, "ratios": ratios,
                       "cpu_time_ratios": cpu_ratios,
                       "faster_decode_mode": faster}, f, indent=2)


if __name__ == "__main__":
    main()
