#!/usr/bin/env python
"""`make demo`: the main job on the built-in toy scenes, on the CPU.

Generates the toy scenes (unlabeled folder, COCO and ADE20K-style splits), pretrains a toy ViT with ASL and
with the MAE baseline under the same budget, and prints what was written and what comes next.
The transfer stages (detectron2, mmseg, classification) join this chain as they land.

Example:
    python tools/demo.py                    # or: make demo
    python tools/demo.py --pretrain-epochs 2  # shorter
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from asl.cli import dataset_root, main_guard  # noqa: E402
from asl.data.toy import ensure_toy_scenes  # noqa: E402


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain-epochs", type=int, default=3, help="epochs over the unlabeled toy scenes")
    parser.add_argument("--work-dir", default=os.path.join("work_dirs", "demo"))
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    start = time.time()
    toy = os.path.join(dataset_root(), "toy_scenes")
    print(f"[demo] 1/2 toy scenes in {toy} (generated once, reused after) ...", flush=True)
    meta = ensure_toy_scenes(toy)
    print(f"[demo]     {meta['num_unlabeled']} unlabeled, {meta['num_train']} train / {meta['num_val']} val "
          f"labeled scenes ({meta['size']} px, classes {', '.join(meta['classes'])})", flush=True)
    results = {}
    for method in ("asl", "mae"):
        print(f"[demo] 2/2 pretraining {method.upper()} for {args.pretrain_epochs} epochs ...", flush=True)
        run_dir = os.path.join(args.work_dir, f"pretrain_{method}")
        subprocess.run([sys.executable, os.path.join(REPO, "tools", "pretrain.py"),
                        os.path.join(REPO, "configs", "pretrain", f"toy_{method}.py"),
                        f"optim.epochs={args.pretrain_epochs}", "--output-dir", run_dir, "--resume", "auto"],
                       check=True)
        with open(os.path.join(run_dir, "metrics.json")) as f:
            results[method] = json.load(f)
    print(f"\n[demo] done in {time.time() - start:.0f} s")
    print(f"{'method':6s} {'steps':>6s} {'final loss':>11s} {'minutes':>8s}  checkpoint")
    for method, m in results.items():
        print(f"{method:6s} {m['iterations']:6d} {m['metrics']['loss']:11.4f} {m['wall_time_s'] / 60:8.1f}  "
              f"{m['checkpoint']}")
    print("(the two losses are different objectives: ASL's patch-level contrastive loss vs MAE's MSE)")
    print("next: convert a checkpoint (tools/convert_ckpt.py) and transfer it to detectron2 / mmseg; "
          "see README.md")


if __name__ == "__main__":
    main()
