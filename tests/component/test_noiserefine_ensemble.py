"""The refiner ensemble of experiments/noiserefine_shapes: the mean of its members' refined noises."""

import importlib.util
from pathlib import Path

import pytest
import torch

from goldennoise.noise import NoiseContext, NoiseRefineNoise

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "noiserefine_shapes" / "ensemble.py"
PROMPTS = ["a red circle left of a blue square", "a green triangle at the top left"]


def _script():
    spec = importlib.util.spec_from_file_location("ensemble", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ensemble_refines_to_the_mean_of_its_members(shapes, monkeypatch):
    monkeypatch.chdir(ROOT)  # the default members name a file of the experiment by its repository path
    script = _script()
    ensemble = script.EnsembleRefiner()
    members = [NoiseRefineNoise(checkpoint) for checkpoint in script.MEMBERS]
    noise = torch.randn(2, *shapes.latent_shape(), generator=torch.Generator().manual_seed(0))
    ctx = NoiseContext.build(shapes, PROMPTS, [0, 1])
    with torch.no_grad():
        first, second = (member(noise, ctx) for member in members)
        torch.testing.assert_close(ensemble(noise, ctx), (first + second) / 2, rtol=0, atol=1e-6)
        assert (first - second).abs().max() > 0.01
    assert [m["lora_sha256"] for m in ensemble.describe()["members"]] == [m.lora_sha256() for m in members]
    with pytest.raises(ValueError, match="two refiners or more"):
        script.EnsembleRefiner(("shapes",))
