#!/usr/bin/env bash
# Everything behind experiments/noiserefine_shapes/README.md, as one job (set HEAVY_LOCK to a lock file to
# queue behind other heavy jobs, PYTHON to the interpreter): the teacher records (configs/teacher/shapes.yaml, two
# worker processes; reused when whole), the fit (configs/noiserefine/shapes.yaml), the export of its last step into
# the package (fixed in advance: no selection), the report on the test and held-out splits with the gain-recovered
# CIs and the per-fact breakdown, and the throughput/memory benchmark.
#   bash experiments/noiserefine_shapes/run_all.sh <teacher folder> <run folder>
set -euo pipefail
TEACHER=${1:-data/teacher/shapes}
RUN=${2:-runs/noiserefine_shapes_exp}
CODE=$(cd "$(dirname "$0")/../.." && pwd)
EXP="$CODE/experiments/noiserefine_shapes"
OUT="$EXP/results/teacher16k"
mkdir -p "$RUN" "$OUT" "$(dirname "$TEACHER")"
RUN=$(cd "$RUN" && pwd)
TEACHER=$(cd "$(dirname "$TEACHER")" && pwd)/$(basename "$TEACHER")
cd "$RUN"
export PYTHONPATH="$CODE" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MLFLOW_ENABLE_ASYNC_LOGGING=false
PY=${PYTHON:-python}
if [ -n "${HEAVY_LOCK:-}" ]; then exec 9>"$HEAVY_LOCK"; flock 9; fi
nice $PY -m goldennoise collect-teacher --config "$CODE/configs/teacher/shapes.yaml" --output_dir "$TEACHER" \
  --devices 2 --accelerator cpu > collect.log 2>&1
start=$(date +%s)
nice $PY -m goldennoise fit --config "$CODE/configs/noiserefine/shapes.yaml" --data.path "$TEACHER" > fit.log 2>&1
echo "fit seconds: $(( $(date +%s) - start ))" | tee "$OUT/fit_time.txt"
LAST=$(ls -t runs/noiserefine_shapes/*/*/checkpoints/last.ckpt | head -1)  # the newest run's last step
$PY -m goldennoise export-refiner "$LAST" "$CODE/goldennoise/noise/weights/noiserefine_shapes.safetensors" \
  >> fit.log 2>&1
echo "shipped: $LAST" | tee -a "$OUT/fit_time.txt"
cd "$CODE"   # report.yaml names refiner files relative to the repository
for split in test heldout; do
  overlay=()
  [ $split = heldout ] && overlay=(--config "$EXP/heldout.yaml")
  nice $PY -m goldennoise evaluate --config "$EXP/report.yaml" "${overlay[@]}" \
    --output_dir "$RUN/eval_$split" > "$RUN/eval_$split.log" 2>&1
  cp "$RUN/eval_$split/table.txt" "$OUT/table_$split.txt"
  cp "$RUN/eval_$split/samples.parquet" "$OUT/samples_$split.parquet"
  $PY "$EXP/recovered.py" "$RUN/eval_$split/samples.parquet" > "$OUT/recovered_$split.json"
done
$PY "$EXP/facts.py" "$RUN/eval_test" "$RUN/eval_heldout" > "$OUT/facts.json"
nice $PY "$CODE/benchmarks/noiserefine_throughput.py" --batch 32 --repeats 2 > "$OUT/benchmark.json" 2> "$RUN/benchmark.err"
echo done
