"""The prompt-dependence diagnostic of experiments/noiserefine_shapes: the shipped refiner reading another prompt.

``reads_other`` must refine pair i from the prompt of pair (i + B/2) mod B and ``reads_empty`` from the empty prompt,
with the same noise: checked against the plain refiner run on the swapped prompts.
"""

import importlib.util
from pathlib import Path

import torch

from goldennoise.noise import NoiseContext, NoiseRefineNoise

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "noiserefine_shapes" / "prompt_dependence.py"
PROMPTS = ["a red circle left of a blue square", "a green triangle at the top left",
           "a yellow square above a magenta circle", "a blue cross right of a red triangle"]


def _script():
    spec = importlib.util.spec_from_file_location("prompt_dependence", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_swapped_refiners_refine_from_the_other_prompt_and_from_the_empty_one(shapes):
    swap = _script().PromptSwapRefiner
    own, other, empty = NoiseRefineNoise("shapes"), swap("other"), swap("empty")
    noise = torch.randn(4, *shapes.latent_shape(), generator=torch.Generator().manual_seed(0))
    ctx = NoiseContext.build(shapes, PROMPTS, [0, 1, 2, 3])
    swapped = NoiseContext.build(shapes, PROMPTS[2:] + PROMPTS[:2], [0, 1, 2, 3])
    blank = NoiseContext.build(shapes, [""] * 4, [0, 1, 2, 3])
    with torch.no_grad():
        refined = own(noise, ctx)
        torch.testing.assert_close(other(noise, ctx), own(noise, swapped), rtol=0, atol=1e-6)
        torch.testing.assert_close(empty(noise, ctx), own(noise, blank), rtol=0, atol=1e-6)
        assert (other(noise, ctx) - refined).abs().max() > 0.05
    assert other.describe()["reads"] == "other" and empty.describe()["lora_sha256"] == own.describe()["lora_sha256"]
