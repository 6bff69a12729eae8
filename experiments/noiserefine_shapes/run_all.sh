#!/usr/bin/env bash
# Everything behind experiments/noiserefine_shapes/README.md, as one job (set HEAVY_LOCK to a lock file to
# queue behind other heavy jobs, PYTHON to the interpreter):
# fit (configs/noiserefine/shapes.yaml) on the teacher records, export the best-val/mse checkpoint into the package,
# evaluate it on the test and held-out splits, the gain-recovered CIs, and the throughput/memory benchmark.
#   bash experiments/noiserefine_shapes/run_all.sh <teacher folder> <run folder>
set -euo pipefail
TEACHER=${1:-data/teacher/shapes}
RUN=${2:-runs/noiserefine_shapes_exp}
CODE=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$CODE/experiments/noiserefine_shapes/results"
mkdir -p "$RUN" "$OUT"
cd "$RUN"
export PYTHONPATH="$CODE" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MLFLOW_ENABLE_ASYNC_LOGGING=false
PY=${PYTHON:-python}
if [ -n "${HEAVY_LOCK:-}" ]; then exec 9>"$HEAVY_LOCK"; flock 9; fi
grep -q '"kept"' "$TEACHER/teacher.json" || { echo "teacher collection unfinished"; exit 3; }
start=$(date +%s)
nice $PY -m goldennoise fit --config "$CODE/configs/noiserefine/shapes.yaml" --data.path "$TEACHER" > fit.log 2>&1
echo "fit seconds: $(( $(date +%s) - start ))" | tee "$OUT/fit_time.txt"
BEST=$(ls -t runs/noiserefine_shapes/*/*/checkpoints/epoch=*.ckpt | head -1)  # the newest run's best
echo "best checkpoint: $BEST" | tee -a "$OUT/fit_time.txt"
$PY "$CODE/experiments/noiserefine_shapes/export.py" "$BEST" "$CODE/goldennoise/noise/weights/noiserefine_shapes.safetensors"
grep -E "val/mse|val/identity_mse|val/delta|train/latent_mse|val/gen" fit.log | tail -40 > "$OUT/fit_metrics.txt" || true
TEST=${TEST_PROMPTS:-shapes:test:1000-1511}          # smaller sets when the CPU budget is short (say so)
HELDOUT=${HELDOUT_PROMPTS:-shapes:heldout:0-127}
nice $PY -m goldennoise evaluate --config "$CODE/experiments/noiserefine_shapes/report.yaml" \
  --prompt_source "$TEST" > eval_test.log 2>&1
nice $PY -m goldennoise evaluate --config "$CODE/experiments/noiserefine_shapes/report.yaml" \
  --config "$CODE/experiments/noiserefine_shapes/heldout.yaml" --prompt_source "$HELDOUT" > eval_heldout.log 2>&1
cp runs/eval/noiserefine-shapes-test/table.txt "$OUT/table_test.txt"
cp runs/eval/noiserefine-shapes-heldout/table.txt "$OUT/table_heldout.txt"
$PY "$CODE/experiments/noiserefine_shapes/recovered.py" runs/eval/noiserefine-shapes-test/samples.parquet \
  runs/eval/noiserefine-shapes-heldout/samples.parquet > "$OUT/recovered.json"
nice $PY "$CODE/benchmarks/noiserefine_throughput.py" --batch 32 --repeats 2 > "$OUT/benchmark.json" 2> benchmark.err
echo done
