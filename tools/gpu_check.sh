#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md in one short run, JSON under $OUT:
#   pretrain_b{64,128,256}.json  MAE / ASL (batched, sequential) step time, img/s, peak memory, MFU, bf16
#   pretrain_b128_levers.json    the same at batch 128 with torch.compile and fused AdamW
#   pretrain_ibot_b32.json       MAE / ASL / the iBOT reference at batch 32 (the paper's runtime comparison), bf16
#   data.json                    loader img/s per worker count on real-photo JPEGs, real loader vs synthetic input
#   detection/metrics.json       configs/coco_vitb.py, 50 iterations, batch 8, AMP, on 1024 LSJ of full-size scenes
#   segmentation/metrics.json    configs/ade20k_vitb_upernet.py, 50 iterations, batch 2, AMP, 512 crops
#   summary.json                 s/iter, img/s and peak memory of each, read from the files above
# A step that fails (e.g. detectron2 or mmseg not installed on the machine) is recorded in summary.json and the
# others still run. Usage: OUT=gpu_out PEAK_TFLOPS=989 tools/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check}
PEAK=${PEAK_TFLOPS:-989}  # dense bf16 peak of an H100 / H200
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DATA=$(mktemp -d)
mkdir -p "$OUT"
failed=()
step() {  # step NAME COMMAND...: run, keep going on failure, remember it
  local name=$1; shift
  echo "[gpu_check] $name: $*"
  local t0=$SECONDS
  if "$@" > "$OUT/$name.log" 2>&1; then echo "[gpu_check]   done in $((SECONDS - t0)) s"
  else echo "[gpu_check]   FAILED after $((SECONDS - t0)) s (see $OUT/$name.log)"; failed+=("$name"); fi
}

for batch in 64 128 256; do
  step "pretrain_b$batch" "$PY" tools/benchmark_pretrain.py --batch "$batch" --amp bf16 --steps 8 --warmup 3 \
    --rounds 1 --peak-tflops "$PEAK" --json "$OUT/pretrain_b$batch.json"
done
step pretrain_b128_levers "$PY" tools/benchmark_pretrain.py --batch 128 --amp bf16 --steps 8 --warmup 5 --rounds 1 \
  --compile --fused --peak-tflops "$PEAK" --json "$OUT/pretrain_b128_levers.json"
step pretrain_ibot_b32 "$PY" tools/benchmark_pretrain.py --batch 32 --amp bf16 --steps 8 --warmup 3 --rounds 1 \
  --modes mae,asl_batched,asl_sequential,ibot --peak-tflops "$PEAK" --json "$OUT/pretrain_ibot_b32.json"
step data "$PY" tools/benchmark_data.py --images 1024 --workers 1,8,16 --arch vit_base_patch16 --batch 64 \
  --batches 12 --json "$OUT/data.json"
step scenes "$PY" tools/make_toy_data.py --out "$DATA/toy_scenes" --size 640 --num-unlabeled 0 --num-train 64 \
  --num-val 8 --standard-layouts "$DATA"
step detection "$PY" tools/train_det.py configs/coco_vitb.py --data-root "$DATA" --output-dir "$OUT/detection" \
  --force train.max_iter=50 dataloader.train.total_batch_size=8 train.eval_period=1000 train.log_period=10
step segmentation "$PY" tools/train_seg.py configs/ade20k_vitb_upernet.py --data-root "$DATA" \
  --output-dir "$OUT/segmentation" --amp --force train_cfg.max_iters=50 train_cfg.val_interval=50 \
  train_dataloader.batch_size=2
"$PY" - "$OUT" ${failed[@]+"${failed[@]}"} <<'EOF'
import json, os, statistics, sys
out, failed = sys.argv[1], sys.argv[2:]
summary = {"failed": failed}
def load(path):
    path = os.path.join(out, path)
    return json.load(open(path)) if os.path.exists(path) else None
for name in ("pretrain_b64", "pretrain_b128", "pretrain_b256", "pretrain_b128_levers", "pretrain_ibot_b32"):
    r = load(f"{name}.json")
    if r:
        summary[name] = {m: {k: v[k] for k in ("step_s", "img_per_s", "peak_mem_gib", "mfu") if k in v}
                         for m, v in r["modes"].items()}
        summary[name].update(r["ratios"])
summary["data"] = load("data.json")
for stage, batch in (("detection", 8), ("segmentation", 2)):
    metrics, log = load(f"{stage}/metrics.json"), os.path.join(out, stage, "log.jsonl")
    if not (metrics and os.path.exists(log)):
        continue
    times = [r["time"] for r in map(json.loads, open(log)) if isinstance(r.get("time"), (int, float))]
    s_iter = statistics.median(times[1:] or times) if times else None
    summary[stage] = {"s_per_iter": s_iter, "img_per_s": batch / s_iter if s_iter else None, "batch": batch,
                      "peak_memory_gib": metrics.get("peak_memory_gib"), "iterations": metrics["iterations"]}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(json.dumps(summary, indent=2))
EOF
rm -rf "$DATA"
