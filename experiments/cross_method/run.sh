#!/usr/bin/env bash
# Runs experiments/cross_method/shapes.yaml in pieces of at most PIECE_S seconds, each under the shared heavy-job
# lock HEAVY_LOCK when one is given (the evaluation is sharded: a rerun resumes at the first unfinished shard), until
# its summary is written; then copies the table, summary, per-sample parquet and grid into results/.
#   HEAVY_LOCK=/path/to/lock bash experiments/cross_method/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG=experiments/cross_method/shapes.yaml
OUT=runs/eval/cross-method-shapes
PIECE_S=${PIECE_S:-840}
PYTHON=${PYTHON:-python}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
evaluate=(timeout "$PIECE_S" nice "$PYTHON" -m goldennoise evaluate --config "$CONFIG")
for piece in 1 2 3 4 5 6; do
  [ -f "$OUT/summary.json" ] && break
  echo "piece $piece: $(date -u +%T)"
  if [ -n "${HEAVY_LOCK:-}" ]; then flock "$HEAVY_LOCK" "${evaluate[@]}" || true; else "${evaluate[@]}" || true; fi
done
[ -f "$OUT/summary.json" ] || { echo "not finished after 6 pieces" >&2; exit 1; }
mkdir -p experiments/cross_method/results
cp "$OUT/table.txt" "$OUT/summary.json" "$OUT/samples.parquet" "$OUT/grid.png" experiments/cross_method/results/
