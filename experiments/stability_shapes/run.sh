#!/bin/bash
# Every evaluation of the study, one after another, each under the shared heavy-job lock; the summaries are copied to
# results/. Run from anywhere: python -m goldennoise evaluate ... (see each config's header).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
lock=${HEAVY_LOCK:+flock $HEAVY_LOCK}  # set HEAVY_LOCK to a lock file to queue behind other heavy jobs
here=experiments/stability_shapes
evaluate() {
  name=$1; shift
  $lock nice python -m goldennoise evaluate "$@" > "$here/results/$name.log" 2>&1
  cp "runs/eval/stability-shapes-$name/summary.json" "$here/results/$name.json"
  cp "runs/eval/stability-shapes-$name/samples.parquet" "$here/results/$name.parquet"
}
evaluate main --config $here/main.yaml
evaluate opt --config $here/main.yaml --config $here/optimisation.yaml
evaluate corr --config $here/main.yaml --config $here/correlation.yaml
evaluate k8 --config $here/main.yaml --config $here/k8.yaml
evaluate heldout --config $here/main.yaml --config $here/heldout.yaml
evaluate corr-steps20 --config $here/main.yaml --config $here/correlation.yaml --config $here/steps20.yaml
evaluate corr-cfg3 --config $here/main.yaml --config $here/correlation.yaml --config $here/cfg3.yaml
