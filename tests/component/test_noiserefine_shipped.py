"""The refiner shipped for the shapes backbone (experiments/noiserefine_shapes) loads and still helps.

A fixed, small set of unseen test-split scenes and seeds, sampled without guidance from Gaussian and from refined
noise: the refined images align better by a margin the full experiment's CI clears with room to spare.
"""

import copy

import torch

from goldennoise.data.prompt_sources import load_prompts
from goldennoise.metrics import ShapesAlignment
from goldennoise.noise import NoiseContext, RefinedNoise, SamplerSettings, load_refiner
from goldennoise.noise.noiserefine import SHIPPED, read_refiner

PROMPTS = "shapes:test:2000-2031"  # scenes the experiment's report did not use
STEPS = 10


def test_shipped_refiner_is_small_and_raises_unguided_alignment(shapes):
    path = SHIPPED["shapes"]
    assert path.stat().st_size <= 5 * 2**20
    config, info, _ = read_refiner("shapes")
    assert info["backbone"] == "shapes" and config.output == "residual"
    refiner = copy.deepcopy(shapes)
    load_refiner(refiner, "shapes")
    prompts = load_prompts(PROMPTS).prompts
    seeds = list(range(len(prompts)))
    ctx = NoiseContext.build(shapes, prompts, seeds, SamplerSettings(steps=STEPS))
    noise = torch.stack([torch.randn(shapes.latent_shape(), generator=torch.Generator().manual_seed(s))
                         for s in seeds])
    metric = ShapesAlignment()
    with torch.no_grad():
        refined = RefinedNoise(refiner, config)(noise, ctx)
        gaussian_score = metric.sample_scores(ctx.sample(noise), prompts)["alignment"]
        refined_score = metric.sample_scores(ctx.sample(refined), prompts)["alignment"]
    assert (refined - noise).abs().max() > 0
    assert (refined_score - gaussian_score).mean() > 0.03
