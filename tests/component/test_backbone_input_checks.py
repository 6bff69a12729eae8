"""Backbone entry points refuse non-finite or non-float tensors by name, before any network runs."""

import pytest
import torch

from goldennoise.backbones import PromptEmbeds, generate
from goldennoise.sampling import noise_for_seeds, sample_ddim

PROMPTS = ["a red circle", "a blue square"]


def spoil(tensor: torch.Tensor, kind: str) -> torch.Tensor:
    """``tensor`` with one NaN or inf element, or cast to int64 / bool."""
    if kind in ("int64", "bool"):
        return tensor.to(getattr(torch, kind))
    spoilt = tensor.clone()
    spoilt.view(-1)[3] = float(kind)
    return spoilt


KINDS = [
    ("nan", ValueError, "holds non-finite values"), ("inf", ValueError, "holds non-finite values"),
    ("int64", TypeError, "must be a floating-point tensor"), ("bool", TypeError, "must be a floating-point tensor"),
]


@pytest.mark.parametrize(("kind", "error", "message"), KINDS)
def test_decode_and_generate_refuse_bad_latents_by_name(tiny_sd, kind, error, message):
    noise = noise_for_seeds([0, 1], tiny_sd.latent_shape(32, 32))
    with pytest.raises(error, match=f"^latents {message}"):
        tiny_sd.decode(spoil(noise, kind))
    with pytest.raises(error, match=f"^noise {message}"):
        generate(tiny_sd.pipeline(), PROMPTS, spoil(noise, kind), num_inference_steps=2)


def test_decode_names_wrong_channels_and_encode_images_non_finite_pixels(tiny_sd):
    with pytest.raises(ValueError, match=r"latents must have shape \(B, 4, h, w\), got \(1, 3, 4, 4\)"):
        tiny_sd.decode(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="images holds non-finite values"):
        tiny_sd.encode_images(spoil(torch.rand(1, 3, 32, 32), "nan"))


@pytest.mark.parametrize("which", ["cond", "uncond"])
def test_non_finite_prompt_embeddings_are_named_when_the_denoiser_is_bound(tiny_sd, which):
    embeds = dict(zip(("cond", "uncond"), tiny_sd.encode_prompt(PROMPTS), strict=True))
    embeds[which] = PromptEmbeds(spoil(embeds[which].embeds, "inf"))
    with pytest.raises(ValueError, match=rf"^{which}\.embeds holds non-finite values"):
        tiny_sd.denoiser(embeds["cond"], embeds["uncond"], 4.0)
    with pytest.raises(ValueError, match="guidance_scale must be finite"):
        tiny_sd.denoiser(*tiny_sd.encode_prompt(PROMPTS), float("nan"))


def test_pooled_embeddings_are_checked_too(tiny_sdxl):
    cond, uncond = tiny_sdxl.encode_prompt(PROMPTS)
    cond = PromptEmbeds(cond.embeds, spoil(cond.pooled, "nan"))
    with pytest.raises(ValueError, match=r"^cond\.pooled holds non-finite values \(1 NaN"):
        sample_ddim(tiny_sdxl.denoiser(cond, uncond, 3.0), noise_for_seeds([0, 1], tiny_sdxl.latent_shape()),
                    tiny_sdxl.ddim_schedule(2))


@pytest.mark.parametrize(("num_steps", "message"), [
    (0, "between 1 and 1000, got 0"), (-3, "between 1 and 1000, got -3"), (1001, "between 1 and 1000, got 1001"),
    (2.5, "an integer, got 2.5"),
])
def test_ddim_schedule_refuses_step_counts_diffusers_cannot_take(tiny_sd, num_steps, message):
    with pytest.raises(ValueError, match=f"^num_steps must be {message}"):
        tiny_sd.ddim_schedule(num_steps)
    assert len(tiny_sd.ddim_schedule(1).timesteps) == 1
