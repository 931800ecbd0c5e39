#!/usr/bin/env python
"""Sweep the temperature λ of ASL's patch-level contrastive loss on the toy scenes.

For each λ (and, for reference, MAE and a random encoder) it pretrains the toy ASL config with the same budget,
then scores the frozen encoder by the toy linear probe (tools/linprobe.py's engine with configs/linprobe/toy.py,
features cached; a 64 px crop around each object of the 200 train / 100 val scenes, label = its shape) and by the
masked-patch MSE (the reconstruction term alone) of the plain branch on the val scenes. Writes a Markdown table
and a JSON file.

Example:
    python tools/sweep_temperature.py --values 0.1 0.3 1 3 10 --epochs 3 --out docs/lambda_sweep
"""
import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from asl.checkpoint import load_pretrain_model  # noqa: E402
from asl.cli import dataset_root  # noqa: E402
from asl.config import apply_overrides, load_config  # noqa: E402
from asl.data.toy import ensure_toy_scenes  # noqa: E402
from asl.data.transforms import eval_transform  # noqa: E402
from asl.engine.classification import run_classification  # noqa: E402
from asl.losses import masked_mse  # noqa: E402


def val_images(toy):
    """The toy val scenes as a normalised batch (for the masked-patch MSE)."""
    names = sorted(n for n in os.listdir(os.path.join(toy, "coco", "val")) if n.endswith(".png"))
    tf = eval_transform(128)
    return torch.stack([tf(Image.open(os.path.join(toy, "coco", "val", n)).convert("RGB")) for n in names])


@torch.no_grad()
def val_masked_mse(model, imgs):
    model.eval()
    out = model(imgs, generator=torch.Generator().manual_seed(0))
    return masked_mse(out["pred"], model.target(imgs), out["mask"]).item()


def probe(init, run_dir):
    """Top-1 of the toy linear probe (tools/linprobe.py's engine, features cached) of an encoder checkpoint."""
    cfg = load_config(os.path.join(REPO, "configs", "linprobe", "toy.py"))
    cfg = apply_overrides(cfg, ["data.cache_features=True", "runtime.tensorboard=False"])
    cfg["model"]["init"] = init
    return run_classification(cfg, run_dir, "linprobe")["metrics"]["top1"]


def pretrain_and_score(config, overrides, run_dir, imgs):
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "pretrain.py"), config, *overrides,
                    "--output-dir", run_dir, "--resume", "auto"], check=True, stdout=subprocess.DEVNULL)
    ckpt = os.path.join(run_dir, "checkpoints", "last.pth")
    return {"probe_top1": probe(ckpt, os.path.join(run_dir, "linprobe")),
            "val_masked_mse": val_masked_mse(load_pretrain_model(ckpt)[0], imgs)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=float, nargs="+", default=[0.1, 0.3, 1.0, 3.0, 10.0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--work-dir", default=os.path.join("work_dirs", "sweep_temperature"))
    parser.add_argument("--out", default=os.path.join("docs", "lambda_sweep"), help="writes OUT.md and OUT.json")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    toy = os.path.join(dataset_root(), "toy_scenes")
    ensure_toy_scenes(toy)
    imgs = val_images(toy)
    cfg_dir = os.path.join(REPO, "configs", "pretrain")
    common = [f"optim.epochs={args.epochs}", "runtime.tensorboard=False"]
    rows = []

    def add(row):  # the table is rewritten after every run, so a stopped sweep keeps what it measured
        rows.append(row)
        print(row, flush=True)
        write_tables(rows, args.out, args.epochs)

    add({"run": "random init", "probe_top1": probe(None, os.path.join(args.work_dir, "random", "linprobe"))})
    add({"run": "MAE", **pretrain_and_score(os.path.join(cfg_dir, "toy_mae.py"), common,
                                            os.path.join(args.work_dir, "mae"), imgs)})
    for lam in args.values:
        add({"run": f"ASL λ={lam:g}", "temperature": lam, **pretrain_and_score(
            os.path.join(cfg_dir, "toy_asl.py"), common + [f"model.temperature={lam}"],
            os.path.join(args.work_dir, f"asl_lambda_{lam:g}"), imgs)})


def write_tables(rows, out, epochs):
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump({"epochs": epochs, "rows": rows}, f, indent=2)
    lines = ["| run | linear-probe top-1 (%) | val masked MSE |", "|---|---|---|"]
    lines += [f"| {r['run']} | {r['probe_top1']:.1f} | {r.get('val_masked_mse', float('nan')):.4f} |"
              for r in rows]
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
