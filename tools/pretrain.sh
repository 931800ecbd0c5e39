#!/usr/bin/env bash
# Pretrain with torchrun: tools/pretrain.sh [CONFIG] [key=value ...] [--resume auto] ...
# With no arguments: toy ASL on the toy scenes (generated if absent), on the CPU, in a few minutes.
# GPUS (per node, default: all visible GPUs, 1 on a CPU), NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1),
# MASTER_PORT (29500) choose the layout, e.g. on each of 8 nodes:
#   NNODES=8 NODE_RANK=$i MASTER_ADDR=node0 tools/pretrain.sh configs/pretrain/vitb_coco_asl_800ep.py --resume auto
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
if [ -z "${GPUS:-}" ]; then
  GPUS=$($PY -c "import torch; print(max(torch.cuda.device_count(), 1))")
fi
exec $PY -m torch.distributed.run --nproc_per_node="$GPUS" --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29500}" tools/pretrain.py "$@"
