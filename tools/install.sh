#!/usr/bin/env bash
# Install the whole stack into .venv/ (idempotent). Built wheels (mmcv with ops, the detectron2 re-pack)
# are cached in $ASL_WHEEL_CACHE (default ~/.cache/asl-toolkit/wheels) so a fresh clone never rebuilds.
# Why each workaround is needed: docs/install.md.
set -Eeuo pipefail  # -E: the ERR trap (which names the failed step) also fires inside functions (pipq)
cd "$(dirname "$0")/.."
VENV=${ASL_VENV:-.venv}
CACHE=${ASL_WHEEL_CACHE:-$HOME/.cache/asl-toolkit/wheels}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.asl-install-stamp"
want=$(cat tools/install.sh setup.py | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import asl" 2>/dev/null; then
  echo "[install] up to date ($VENV; wheel cache $CACHE)"
  exit 0
fi

current=""
t_all=$SECONDS
on_fail() { echo "[install] FAILED at step: $current (see the output above; rerun 'make install' after fixing)" >&2; }
trap on_fail ERR
step() { current="$1"; t_step=$SECONDS; echo "[install] $1 ..."; }
done_step() { echo "[install]   done in $((SECONDS - t_step)) s"; }

mkdir -p "$CACHE"
step "virtual environment $VENV"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
export PYTHONWARNINGS=ignore
# pip, minus the noise of this machine's optional local package indexes that may not exist (`|| true`: a quiet
# pip leaves grep nothing to pass on, which the ERR trap would take for a failed step)
pipq() { "$PY" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2 || true); }
PIP="pipq install --quiet --disable-pip-version-check"
$PIP --upgrade pip wheel 'setuptools<81'
done_step

step "torch 2.14.1 + torchvision 0.29.1"
$PIP torch==2.14.1 torchvision==0.29.1
done_step

step "numpy<2, headless OpenCV and pure-Python dependencies"
$PIP 'numpy<2' opencv-python-headless==4.11.0.86 timm 'fvcore==0.1.5.post20221221' 'iopath==0.1.9' \
  pycocotools shapely pytest tensorboard matplotlib 'omegaconf<2.4' hydra-core yacs tabulate cloudpickle termcolor \
  tqdm scipy addict rich yapf prettytable ftfy regex safetensors packaging pillow ruff
done_step

step "detectron2 (sal-detectron2 0.7.2 re-packed as a pure-Python wheel)"
d2whl=$(ls "$CACHE"/detectron2-*-py3-none-any.whl "$CACHE"/sal_detectron2-*-py3-none-any.whl 2>/dev/null | head -1 || true)
if [ -z "$d2whl" ]; then
  tmp=$(mktemp -d)
  pipq download --quiet --no-deps --only-binary=:all: --python-version 3.10 --platform any \
    sal-detectron2==0.7.2 -d "$tmp/dl" 2>/dev/null || \
  pipq download --quiet --no-deps --only-binary=:all: --python-version 3.10 \
    --platform manylinux2014_x86_64 --platform linux_x86_64 sal-detectron2==0.7.2 -d "$tmp/dl"
  $PY -m wheel unpack -d "$tmp/unpacked" "$tmp"/dl/*.whl
  root=$(ls -d "$tmp"/unpacked/*)
  rm -f "$root"/detectron2/_C*.so
  wheelfile=$(ls "$root"/*.dist-info/WHEEL)
  sed -i -e 's/^Tag: .*/Tag: py3-none-any/' -e 's/^Root-Is-Purelib: .*/Root-Is-Purelib: true/' "$wheelfile"
  $PY -m wheel pack -d "$CACHE" "$root" >/dev/null
  rm -rf "$tmp"
  d2whl=$(ls "$CACHE"/*detectron2-*-py3-none-any.whl | head -1)
fi
$PIP --no-deps --force-reinstall "$d2whl"
done_step

step "mmengine 0.10.7 + mmsegmentation 1.2.2 (no deps: the headless OpenCV is enough)"
$PIP --no-deps mmengine==0.10.7 mmsegmentation==1.2.2
done_step

step "mmcv 2.1.0 with compiled ops (built once, ~11 min on 2 cores; cached in $CACHE)"
mmcvwhl=$(ls "$CACHE"/mmcv-2.1.0-*.whl 2>/dev/null | head -1 || true)
if [ -z "$mmcvwhl" ]; then
  tmp=$(mktemp -d)
  pipq download --quiet --no-deps --no-build-isolation --no-binary :all: mmcv==2.1.0 -d "$tmp"
  tar -xzf "$tmp"/mmcv-2.1.0.tar.gz -C "$tmp"
  sed -i 's/-std=c++17/-std=c++20/g' "$tmp"/mmcv-2.1.0/setup.py
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
    $PY -m pip wheel --no-deps --no-build-isolation -w "$CACHE" "$tmp"/mmcv-2.1.0
  rm -rf "$tmp"
  mmcvwhl=$(ls "$CACHE"/mmcv-2.1.0-*.whl | head -1)
fi
$PIP --no-deps "$mmcvwhl"
done_step

step "this project (editable)"
$PIP --no-deps --no-build-isolation -e .
done_step

step "import check"
$PY -c "import torch, torchvision, timm, detectron2, shapely, mmcv, mmcv.ops, mmengine, mmseg, pycocotools, asl, transfer; print('  torch', torch.__version__, '| detectron2', detectron2.__version__, '| mmcv', mmcv.__version__, '| mmseg', mmseg.__version__)"
done_step

echo "$want" > "$STAMP"
echo "[install] complete in $((SECONDS - t_all)) s"
