"""The noise-only ceiling of experiments/noiserefine_shapes/oracle.py: the unguided inversion of the guided sample."""

import importlib.util
import json
import sys
from pathlib import Path

import torch

from goldennoise.noise import NoiseContext
from goldennoise.sampling import sample

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "experiments" / "noiserefine_shapes"
PROMPTS = ["a red circle left of a blue square", "a green triangle at the top left", "two yellow squares",
           "a blue circle above a red triangle"]


def _script(name: str, monkeypatch):
    monkeypatch.syspath_prepend(str(FOLDER))  # the scripts import each other by file name
    spec = importlib.util.spec_from_file_location(name, FOLDER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_unguided_sampling_from_the_inverted_guided_sample_returns_near_the_guided_sample(shapes, monkeypatch):
    oracle = _script("oracle", monkeypatch).InvertedGuidedSample(guidance=3.0)
    noise = torch.randn(8, *shapes.latent_shape(), generator=torch.Generator().manual_seed(0))  # (8, C, h, w)
    ctx = NoiseContext.build(shapes, PROMPTS * 2, list(range(8)))
    schedule = shapes.schedule(ctx.sampler.steps, tuple(noise.shape[-2:]))
    with torch.no_grad():
        inverted = oracle(noise, ctx)
        guided = sample(shapes.denoiser(ctx.cond, ctx.uncond, 3.0), noise, schedule)
        unguided = sample(shapes.denoiser(ctx.cond), noise, schedule)
        returned = sample(shapes.denoiser(ctx.cond), inverted, schedule)
    assert inverted.shape == noise.shape and (inverted - noise).abs().max() > 0.1  # a new noise, not the input
    images = {name: shapes.decode(x) for name, x in [("guided", guided), ("unguided", unguided),
                                                      ("returned", returned)]}  # each (8, 3, H, W)
    miss, baseline = ((images[name] - images["guided"]).pow(2).mean() for name in ("returned", "unguided"))
    assert miss < 0.3 * baseline, (miss, baseline)  # 0.10 when written
    assert oracle.describe()["init_args"] == {"guidance": 3.0}


def test_agreement_reports_how_far_one_change_goes_along_another(monkeypatch):
    stats = _script("agreement", monkeypatch).change_stats
    b = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    half = stats(0.5 * b, b)
    assert abs(half["cosine"] - 1) < 1e-5 and abs(half["projection"] - 0.5) < 1e-5
    assert abs(half["rms"][0] - 0.5 * half["rms"][1]) < 1e-6 and abs(half["rms_of_mean"] - 0.75 * half["rms"][1]) < 1e-6
    assert abs(stats(-2 * b, b)["projection"] + 2) < 1e-5
    first, second = torch.zeros(3, 4, 8, 8), torch.zeros(3, 4, 8, 8)
    first[:, 0], second[:, 1] = 1.0, 1.0  # disjoint channels: orthogonal changes
    assert stats(first, second)["cosine"] == 0 and stats(first, second)["projection"] == 0


def test_agreement_compares_a_refiner_with_the_inverted_guided_sample(monkeypatch):
    agreement = _script("agreement", monkeypatch)
    monkeypatch.setattr(sys, "argv", ["agreement.py", "--scenes", "shapes:heldout:0-1", "--refiners", "shapes",
                                      "oracle"])
    printed = []
    monkeypatch.setattr("builtins.print", printed.append)
    agreement.main()
    report = json.loads(printed[0])
    assert report["pairs"] == 2 and report["refiners"] == ["shapes", "oracle"]
    assert 0 < report["rms"][0] < report["rms"][1] and -1 <= report["cosine"] <= 1  # the oracle moves further
