#!/bin/bash
# Section 1 of README.md: is the re-denoise noise golden on the shapes backbone? One 1,024-pair NPD per setting
# (train prompts, the collection's own guidance for both images); prints kept fraction, Gaussian and golden means.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1
run() {
  name=$1; shift
  python -m goldennoise collect --config configs/npd/shapes.yaml --output_dir "data/npd/pilot/$name" \
    --prompt_source shapes:train:1024 --progress false --mlflow_tracking_uri null "$@" > /dev/null
  python -c "import json; d = json.load(open('data/npd/pilot/$name/summary.json')); \
print('$name', d['kept_fraction'], d['mean/shapes_alignment/random'], d['mean/shapes_alignment/golden'])"
}
run tb55 --convention textbook
run of10 --denoise_guidance 10
run of20 --denoise_guidance 20
run tb15 --convention textbook --denoise_guidance 15
run of55r3 --repeats 3
run of10r3 --denoise_guidance 10 --repeats 3
