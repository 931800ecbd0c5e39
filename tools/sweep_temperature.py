#!/usr/bin/env python
"""Sweep the temperature λ of ASL's patch-level contrastive loss on the toy scenes.

For each λ (and, for reference, MAE and a random encoder) it pretrains the toy ASL config with the same budget,
then scores the frozen encoder by a linear probe on the toy classification task (label = shape of the largest
object; average-pooled patch features, 200 train / 100 val scenes) and by the masked-patch MSE on the val
scenes. Writes a Markdown table and a JSON file.

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
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from asl.checkpoint import load_pretrain_model  # noqa: E402
from asl.cli import dataset_root  # noqa: E402
from asl.data.toy import classification_labels, ensure_toy_scenes  # noqa: E402
from asl.data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from asl.losses import masked_mse  # noqa: E402
from asl.models import build_pretrain_model  # noqa: E402


def load_split(toy, split):
    labels = classification_labels(toy, split)
    imgs = np.stack([np.asarray(Image.open(os.path.join(toy, "coco", split, n)).convert("RGB")) for n in labels])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    return x, torch.tensor(list(labels.values()))


def linear_probe(train_x, train_y, val_x, val_y, steps=500):
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, val_x = (train_x - mean) / std, (val_x - mean) / std
    head = torch.nn.Linear(train_x.shape[1], int(train_y.max()) + 1)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(train_x), train_y).backward()
        opt.step()
    return (head(val_x).argmax(1) == val_y).float().mean().item() * 100


@torch.no_grad()
def score(model, data):
    model.eval()
    (tx, ty), (vx, vy) = data
    feats = [model.encoder.forward_features(x)[:, 1:].mean(1) for x in (tx, vx)]
    out = model(vx, mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
    mse = masked_mse(out["pred"], model.target(vx), out["mask"]).item()
    return {"probe_top1": linear_probe(feats[0], ty, feats[1], vy), "val_masked_mse": mse}


def pretrain(config, overrides, run_dir):
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "pretrain.py"), config, *overrides,
                    "--output-dir", run_dir, "--resume", "auto"], check=True, stdout=subprocess.DEVNULL)
    return load_pretrain_model(os.path.join(run_dir, "checkpoints", "last.pth"))[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=float, nargs="+", default=[0.1, 0.3, 1.0, 3.0, 10.0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--work-dir", default=os.path.join("work_dirs", "sweep_temperature"))
    parser.add_argument("--out", default=os.path.join("docs", "lambda_sweep"), help="writes OUT.md and OUT.json")
    args = parser.parse_args()
    toy = os.path.join(dataset_root(), "toy_scenes")
    ensure_toy_scenes(toy)
    data = (load_split(toy, "train"), load_split(toy, "val"))
    cfg_dir = os.path.join(REPO, "configs", "pretrain")
    common = [f"optim.epochs={args.epochs}", "runtime.tensorboard=False"]
    rows = []
    torch.manual_seed(0)
    random_model = build_pretrain_model("vit_toy_patch16", 128, "mae", decoder=dict(embed_dim=128, depth=2,
                                                                                    num_heads=4), loss="mse")
    rows.append({"run": "random init", **score(random_model, data)})
    model = pretrain(os.path.join(cfg_dir, "toy_mae.py"), common, os.path.join(args.work_dir, "mae"))
    rows.append({"run": "MAE", **score(model, data)})
    for lam in args.values:
        model = pretrain(os.path.join(cfg_dir, "toy_asl.py"), common + [f"model.temperature={lam}"],
                         os.path.join(args.work_dir, f"asl_lambda_{lam:g}"))
        rows.append({"run": f"ASL λ={lam:g}", "temperature": lam, **score(model, data)})
        print(rows[-1], flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"epochs": args.epochs, "rows": rows}, f, indent=2)
    lines = ["| run | linear-probe top-1 (%) | val masked MSE |", "|---|---|---|"]
    lines += [f"| {r['run']} | {r['probe_top1']:.1f} | {r['val_masked_mse']:.4f} |" for r in rows]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
