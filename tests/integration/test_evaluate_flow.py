"""``goldennoise evaluate`` on tiny FLUX.1-dev and tiny SD3: Gaussian, guidance, Redenoise and BestOfN, with counts.

FLUX.1-dev is guidance-distilled (ω is a network input: one row per step whatever ω); SD3 uses classifier-free
guidance (two rows per step when ω ∉ {0, 1}).
"""

import math

import pyarrow.parquet as pq
import pytest
import yaml

from goldennoise.cli import main

STEPS, N = 2, 3
CLIP = {"class_path": "goldennoise.metrics.CLIPScore", "init_args": {"model": "tiny"}}
METHODS = [
    {"name": "gaussian", "method": {"class_path": "goldennoise.noise.Gaussian"}, "guidance_scale": 1.0},
    {"name": "guided", "method": {"class_path": "goldennoise.noise.Gaussian"}, "guidance_scale": 3.5},
    {"name": "redenoise", "method": {"class_path": "goldennoise.noise.Redenoise",
                                     "init_args": {"denoise_guidance": 5.5, "inversion_guidance": 1.0}},
     "guidance_scale": 1.0},
    {"name": "best_of_3", "method": {"class_path": "goldennoise.noise.BestOfN", "init_args": {"metric": CLIP, "n": N}},
     "guidance_scale": 1.0},
]


def expected_costs(rows_guided: int) -> dict[str, tuple[float, float]]:
    """(method, sampling) evaluations per image; ``rows_guided`` = rows of one prediction at ω = 3.5 or 5.5."""
    return {"gaussian": (0, STEPS), "guided": (0, STEPS * rows_guided), "redenoise": (rows_guided + 1, STEPS),
            "best_of_3": (N * STEPS, 0)}  # best-of-N hands its chosen images over: no second sampling


@pytest.mark.parametrize(("backbone", "rows_guided"), [("tiny-flux", 1), ("tiny-sd3", 2)])
def test_evaluate_runs_every_method_with_the_right_evaluation_counts(tmp_path, backbone, rows_guided):
    config = {"name": f"flow-{backbone}", "backbone": backbone, "prompts": ["a red fox", "a blue jay"],
              "seeds": "0", "steps": STEPS, "scheduler": "flow_euler", "methods": METHODS, "metrics": [CLIP],
              "batch_size": 4, "shard_size": 4, "accelerator": "cpu", "progress": False, "bootstrap_resamples": 50,
              "save_images": "none", "output_dir": str(tmp_path / "eval"), "mlflow_tracking_uri": None}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    summary = main(["evaluate", "--config", str(path)])
    assert summary["items"] == 2
    rows = pq.read_table(tmp_path / "eval" / "samples.parquet").to_pylist()
    assert len(rows) == 2 * len(METHODS)
    costs = {(r["method"], r["cost/method/evaluations"], r["cost/sampling/evaluations"]) for r in rows}
    assert costs == {(name, float(m), float(s)) for name, (m, s) in expected_costs(rows_guided).items()}
    scores = [value for r in rows for key, value in r.items() if key.startswith("score/")]
    assert len(scores) >= len(rows) and all(math.isfinite(v) for v in scores)
