#!/usr/bin/env bash
# Train a shapes refiner on teacher records (configs/teacher/shapes.yaml: 16,384 CFG-3 pairs), then export the
# best-val/mse checkpoint (run_all.sh ships the last step instead; `python -m goldennoise export-refiner` exports any
# other). Set HEAVY_LOCK to a lock file to queue behind other heavy jobs, PYTHON to the interpreter (default: python).
# Further arguments go to `fit` (e.g. --model.init_args.rollout_steps 20).
#   bash experiments/noiserefine_shapes/train.sh <teacher folder> <run folder> [fit arguments]
set -euo pipefail
TEACHER=${1:-data/teacher/shapes}
RUN=${2:-runs/noiserefine_shapes_exp}
shift $(( $# < 2 ? $# : 2 ))
CODE=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python}
lock=${HEAVY_LOCK:+flock $HEAVY_LOCK}
mkdir -p "$RUN"
cd "$RUN"
$lock env PYTHONPATH="$CODE" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MLFLOW_ENABLE_ASYNC_LOGGING=false \
  nice $PY -m goldennoise fit --config "$CODE/configs/noiserefine/shapes.yaml" \
  --data.path "$TEACHER" "$@" > fit.log 2>&1
BEST=$(ls -t runs/noiserefine_shapes/*/*/checkpoints/epoch=*.ckpt | head -1)  # the newest run's best
PYTHONPATH="$CODE" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $PY -m goldennoise export-refiner "$BEST" refiner.safetensors \
  >> fit.log 2>&1
echo "exported $BEST" >> fit.log
