#!/usr/bin/env bash
# GPU figures in one go, on a machine with an NVIDIA GPU (CUDA 12 driver):
#
#     bash tools/gpu_check.sh [OUT_DIR]        # default OUT_DIR: gpu_figures/
#
# 1. a fresh venv (.venv-gpu) with `pip install -e ".[cuda,test]"`; stops unless JAX sees a GPU;
# 2. the gpu-marked tests (`pytest -m gpu`);
# 3. the benchmarks at NeMo's sizes, one JSON object per line:
#    - tools/bench_render.py: the renders of the search (32 x 84 feature map = the 256 x 672 car crop
#      at stride 8, ~1,000-vertex SingleCuboid);
#    - tools/bench_pose.py: the full search (144-pose grid + 300 Adam steps) batched over images,
#      from feature maps and end to end with ResNet-50;
#    - tools/bench_train.py: the ResNet-50 NeMo train step on 256 x 672 car crops, float32 and bfloat16;
#    - the XLA cost analysis of the search and of the train step (--cost), for the roofline bound.
# Everything lands in OUT_DIR (nvidia-smi, pytest output, *.jsonl); README.md's GPU table is filled
# from those files, with the date and the device named in every JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu_figures}"
mkdir -p "$OUT"
IMAGES="${GPU_CHECK_IMAGES:-64}"        # images per search batch
TRAIN_BATCH="${GPU_CHECK_TRAIN_BATCH:-64}"  # train-step batch on one GPU

if [ ! -x .venv-gpu/bin/python ]; then
  python3 -m venv .venv-gpu
fi
.venv-gpu/bin/pip install -q -e ".[cuda,test]"
PY=.venv-gpu/bin/python
"$PY" -c "import jax, sys; b = jax.default_backend(); print(jax.__version__, b, jax.devices()); sys.exit(b != 'gpu')" \
  | tee "$OUT/jax_devices.txt" || { echo "gpu_check: JAX sees no GPU (see $OUT/jax_devices.txt)"; exit 1; }
{ nvidia-smi || true; } > "$OUT/nvidia-smi.txt" 2>&1
date -u +%Y-%m-%dT%H:%M:%SZ > "$OUT/date.txt"

# gpu-marked tests; exit code 5 = none collected, not a failure
set +e
"$PY" -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.txt"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then echo "gpu_check: gpu tests failed (exit $rc)"; exit "$rc"; fi

"$PY" tools/bench_render.py --json | tee "$OUT/bench_render.jsonl"
"$PY" tools/bench_pose.py --json --images "$IMAGES" | tee "$OUT/bench_pose.jsonl"
"$PY" tools/bench_pose.py --cost --images "$IMAGES" | tee "$OUT/cost_pose.jsonl"
for dtype in float32 bfloat16; do
  "$PY" tools/bench_train.py --config configs/nemo_pascal3d.py:car --config.model.dtype="$dtype" \
    --config.train.batch_size="$TRAIN_BATCH" --json | tee -a "$OUT/bench_train.jsonl"
  "$PY" tools/bench_train.py --config configs/nemo_pascal3d.py:car --config.model.dtype="$dtype" \
    --config.train.batch_size="$TRAIN_BATCH" --cost | tee -a "$OUT/cost_train.jsonl"
done
echo "gpu_check: done; figures in $OUT/"
