#!/bin/bash
# Every evaluation of the study, one after another (each under HEAVY_LOCK if set); each run's per-sample table and
# summary are copied to results/<run>.parquet and results/<run>.json, its log to results/logs/<run>.log. Then
# analyse.py. Each run is python -m goldennoise evaluate --config main.yaml [--config <overlay>].
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
lock=${HEAVY_LOCK:+flock $HEAVY_LOCK}  # set HEAVY_LOCK to a lock file to queue behind other heavy jobs
here=experiments/stability_shapes
mkdir -p "$here/results/logs"
evaluate() {
  name=$1; shift
  $lock nice python -m goldennoise evaluate --config $here/main.yaml "$@" > "$here/results/logs/$name.log" 2>&1
  out=runs/eval/stability-shapes-$name
  cp "$out/summary.json" "$here/results/$name.json"
  cp "$out/samples.parquet" "$here/results/$name.parquet"
}
evaluate main                                           # 1,024 test pairs, 10 steps, no CFG, k = 4
evaluate heldout --config $here/heldout.yaml            # the held-out split, same methods
evaluate corr-steps20 --config $here/corr-steps20.yaml  # correlation at 20 steps (1,024 pairs)
evaluate corr-cfg3 --config $here/corr-cfg3.yaml        # correlation at CFG 3 (1,024 pairs)
evaluate sel-cfg3 --config $here/sel-cfg3.yaml          # selection at CFG 3 (256 pairs)
evaluate sel-steps20 --config $here/sel-steps20.yaml    # selection at 20 steps (256 pairs)
evaluate k16 --config $here/k16.yaml                    # k = 4, 8, 16 from one run (256 pairs; 64 were run)
evaluate opt --config $here/optimisation.yaml           # optimisation, every gradient mode, and ReNO (64 pairs)
python $here/analyse.py
