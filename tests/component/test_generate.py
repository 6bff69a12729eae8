"""Plug-in generation: any diffusers pipeline and scheduler started from given unit-variance noise."""

import pytest
import torch

from goldennoise.backbones import generate
from goldennoise.sampling import noise_for_seeds, sample_ddim

PROMPTS = ["a photo of a cat", "a red circle left of a blue square"]


def test_ddim_pipeline_from_given_noise_equals_our_loop_and_decode(tiny_sd):
    noise = noise_for_seeds([0, 1], tiny_sd.latent_shape())
    images = generate(tiny_sd.pipeline("ddim"), PROMPTS, noise, num_inference_steps=4, guidance_scale=4.0)
    cond, uncond = tiny_sd.encode_prompt(PROMPTS)
    with torch.no_grad():
        expected = tiny_sd.decode(sample_ddim(tiny_sd.denoiser(cond, uncond, 4.0), noise, tiny_sd.ddim_schedule(4)))
    assert images.shape == (2, 3, 64, 64)
    torch.testing.assert_close(images, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scheduler", ["dpm_solver", "euler"])
def test_any_scheduler_is_deterministic_in_the_noise(tiny_sdxl, scheduler):
    noise = noise_for_seeds([0, 1], tiny_sdxl.latent_shape())
    first = generate(tiny_sdxl.pipeline(scheduler), PROMPTS, noise, num_inference_steps=3)
    again = generate(tiny_sdxl.pipeline(scheduler), PROMPTS, noise, num_inference_steps=3)
    other = generate(tiny_sdxl.pipeline(scheduler), PROMPTS, noise_for_seeds([2, 3], noise.shape[1:]),
                     num_inference_steps=3)
    torch.testing.assert_close(first, again)
    assert (first - other).abs().mean() > 1e-3
    assert first.min() >= 0 and first.max() <= 1


def test_euler_scales_unit_noise_itself(tiny_sd):
    pipe = tiny_sd.pipeline("euler")
    assert pipe.scheduler.init_noise_sigma > 10  # SD's schedule: ≈ 14.6
    noise = noise_for_seeds([0], tiny_sd.latent_shape())
    with pytest.raises(ValueError, match="unit-variance"):
        generate(pipe, PROMPTS[:1], noise * pipe.scheduler.init_noise_sigma, num_inference_steps=2)


def test_noise_shape_is_checked(tiny_sd):
    with pytest.raises(ValueError, match=r"noise must have shape \(2, 4, h, w\)"):
        generate(tiny_sd.pipeline(), PROMPTS, torch.randn(1, 4, 32, 32), num_inference_steps=2)


def test_unknown_scheduler_is_named(tiny_sd):
    with pytest.raises(ValueError, match="Unknown scheduler 'heun'"):
        tiny_sd.pipeline("heun")
