"""configs/eval/flux_schnell.yaml and sd35.yaml through ``goldennoise evaluate`` on the tiny model of each family.

The real backbones and scorers need weights; the copies here swap in the tiny backbone of the same family, tiny
random scorers, one prompt × two seeds and 2 steps at 64 px, and keep every method with its settings. The cost
columns must follow the formulas: FLUX.1-schnell and SD3 both use classifier-free guidance (2 rows per prediction
when ω ∉ {0, 1}); FLUX.1-dev's distilled guidance (1 row whatever ω) is counted in
tests/component/test_flow_backbones.py.
"""

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from goldennoise.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "eval"
STEPS = 2
CASES = {  # config → (hub id, its steps and guidance, the tiny model of its family)
    "flux_schnell.yaml": ("black-forest-labs/FLUX.1-schnell", 4, 1.0, "tiny-flux-schnell"),
    "sd35.yaml": ("stabilityai/stable-diffusion-3.5-large", 28, 3.5, "tiny-sd3"),
}


def _tiny(value):
    """The config with every metric (top level or a method's verifier) on tiny random weights."""
    if isinstance(value, dict):
        out = {key: _tiny(item) for key, item in value.items()}
        if str(out.get("class_path", "")).startswith("goldennoise.metrics."):
            out["init_args"] = {**out.get("init_args", {}), "model": "tiny"}
        return out
    return [_tiny(item) for item in value] if isinstance(value, list) else value


def rows(guidance: float) -> int:
    return 1 if guidance in (0.0, 1.0) else 2


def expected_costs(config: dict) -> dict[str, tuple[float, float]]:
    """(method, sampling) evaluations per image of each method of the config, from its settings."""
    out = {}
    for spec in config["methods"]:
        name, sampling = spec["name"], STEPS * rows(spec["guidance_scale"])
        init = spec["method"].get("init_args", {})
        kind = spec["method"]["class_path"].rsplit(".", 1)[-1]
        if kind == "Gaussian":
            out[name] = (0, sampling)
        elif kind == "Redenoise":
            out[name] = (rows(init["denoise_guidance"]) + rows(init["inversion_guidance"]), sampling)
        elif kind == "BestOfN":  # the chosen candidate's images are handed over: no second sampling
            out[name] = (init["n"] * sampling, 0)
        elif kind == "StabilitySelection":  # k round trips of STEPS denoise + STEPS inversion steps, then sampling
            out[name] = (init["k"] * 2 * sampling, sampling)
        elif kind == "RewardOptimization":  # I samplings, I - 1 recomputed by checkpoints; the best images handed over
            out[name] = ((2 * init["iterations"] - 1) * sampling, 0)
    return out


def _few_iterations(config: dict) -> dict:
    """The config with RewardOptimization cut to 2 iterations (the formula is the same, the test is faster)."""
    for spec in config["methods"]:
        if spec["method"]["class_path"].endswith("RewardOptimization"):
            spec["method"]["init_args"]["iterations"] = 2
    return config


@pytest.mark.parametrize("name", sorted(CASES))
def test_flow_eval_config_runs_on_the_tiny_model_with_the_right_counts(name, tmp_path):
    hub_id, steps, guidance, tiny = CASES[name]
    original = yaml.safe_load((CONFIGS / name).read_text())
    assert (original["backbone"], original["steps"], original["scheduler"]) == (hub_id, steps, "flow_euler")
    assert {spec["guidance_scale"] for spec in original["methods"]} == {guidance}
    original = _few_iterations(original)
    config = {**_tiny(original), "backbone": tiny, "prompt_source": None, "max_prompts": None,
              "prompts": ["a red fox"], "seeds": "0-1", "distinct_seeds": False, "steps": STEPS, "image_size": 64,
              "output_dir": str(tmp_path / "eval"), "mlflow_tracking_uri": None, "progress": False,
              "save_images": "none", "bootstrap_resamples": 50, "accelerator": "cpu"}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    summary = main(["evaluate", "--config", str(path)])
    assert summary["items"] == 2
    table = pq.read_table(tmp_path / "eval" / "samples.parquet").to_pylist()
    assert len(table) == 2 * len(original["methods"])
    costs = {(r["method"], r["cost/method/evaluations"], r["cost/sampling/evaluations"]) for r in table}
    assert costs == {(m, float(a), float(b)) for m, (a, b) in expected_costs(original).items()}
    scores = [value for r in table for key, value in r.items() if key.startswith("score/")]
    assert len(scores) == 3 * len(table) and all(math.isfinite(v) for v in scores)  # HPSv2, PickScore, ImageReward
