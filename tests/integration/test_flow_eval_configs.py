"""configs/eval/flux_schnell.yaml and sd35.yaml parse into their methods, and run end to end on the tiny models.

The real backbones and scorers need weights; the copies here swap in the tiny backbone of the same family and tiny
random scorers, and keep every method and setting.
"""

from pathlib import Path

import pytest
import yaml

from goldennoise.cli import main
from goldennoise.evaluation.cli import parse_config
from goldennoise.noise import BestOfN, Gaussian, Redenoise

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "eval"
CASES = {"flux_schnell.yaml": ("black-forest-labs/FLUX.1-schnell", "tiny-flux-schnell", 4, 1.0),
         "sd35.yaml": ("stabilityai/stable-diffusion-3.5-large", "tiny-sd3", 28, 3.5)}


def _tiny(value):
    """The config with every metric (top level or a method's verifier) on tiny random weights."""
    if isinstance(value, dict):
        out = {key: _tiny(item) for key, item in value.items()}
        if str(out.get("class_path", "")).startswith("goldennoise.metrics."):
            out["init_args"] = {**out.get("init_args", {}), "model": "tiny"}
        return out
    return [_tiny(item) for item in value] if isinstance(value, list) else value


def _offline_copy(name, tmp_path, **overrides):
    config = {**_tiny(yaml.safe_load((CONFIGS / name).read_text())), **overrides}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return config, path


@pytest.mark.parametrize("name", sorted(CASES))
def test_flow_eval_config_parses_into_its_methods(name, tmp_path):
    hub_id, _, steps, guidance = CASES[name]
    original, path = _offline_copy(name, tmp_path)
    assert original["backbone"] == hub_id
    config, _ = parse_config(["--config", str(path)])
    assert config.steps == steps and config.scheduler == "flow_euler" and config.image_size == 1024
    methods = {spec.name: spec for spec in config.methods}
    assert [type(spec.method) for spec in methods.values()] == [Gaussian, Redenoise, BestOfN]
    assert all(spec.guidance_scale == guidance for spec in methods.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_flow_eval_config_runs_on_the_tiny_model_of_its_family(name, tmp_path):
    _, tiny, _, _ = CASES[name]
    _, path = _offline_copy(name, tmp_path, backbone=tiny, prompt_source=None, max_prompts=None,
                            prompts=["a red fox"], steps=2, image_size=64, output_dir=str(tmp_path / "eval"),
                            mlflow_tracking_uri=None, progress=False, save_images="none", bootstrap_resamples=50)
    summary = main(["evaluate", "--config", str(path)])
    assert summary["items"] == 1
