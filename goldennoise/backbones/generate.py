"""Plug-in generation: any diffusers text-to-image pipeline, any scheduler, started from given noise.

Noise methods emit unit-variance noise; the pipeline multiplies ``latents=`` by its scheduler's
``init_noise_sigma`` (1 for DDIM and DPM-Solver, ≈ 14.6 for Euler on SD's schedule), so noise is never pre-scaled.
"""

from __future__ import annotations

from typing import Any

import torch

from goldennoise.backbones.base import Backbone, PromptEmbeds
from goldennoise.checks import check_int, check_tensor
from goldennoise.sampling import sample

OWN_LOOP = ("ddim", "flow_euler")
"""Scheduler names that select goldennoise's own loop in :func:`sample_images`."""

MAX_UNIT_NOISE_STD = 3.0
"""Noise with a larger standard deviation was almost surely pre-scaled by ``init_noise_sigma``: refuse it."""


def generate(
    pipeline: Any,
    prompts: list[str],
    noise: torch.Tensor,
    num_inference_steps: int = 50,
    guidance_scale: float = 5.0,
    **call_kwargs: Any,
) -> torch.Tensor:
    """Run ``pipeline`` with ``latents=noise`` and return images (B, 3, H, W) in [0, 1].

    Args:
        pipeline: a diffusers text-to-image pipeline (e.g. from :meth:`Backbone.pipeline`) taking unpacked latents:
            UNet pipelines, SD3, Hunyuan-DiT (FLUX's pipeline takes packed latents: use the backbone instead).
        prompts: B prompts.
        noise: unit-variance initial noise, shape (B, C, h, w); the image size follows from it.
        num_inference_steps: sampler steps.
        guidance_scale: classifier-free guidance scale.
        **call_kwargs: passed to the pipeline (``negative_prompt``, ``generator``, ...).

    Raises:
        TypeError: ``noise`` is not a floating-point tensor.
        ValueError: ``noise`` has the wrong shape for the prompts, holds NaN or infinite values or is pre-scaled, or
            ``num_inference_steps`` < 1.
    """
    network = pipeline.unet if hasattr(pipeline, "unet") else pipeline.transformer  # UNet or DiT pipelines
    channels, factor = network.config.in_channels, pipeline.vae_scale_factor
    check_tensor("noise", noise, shape=(len(prompts), channels, "h", "w"))
    check_int("num_inference_steps", num_inference_steps, minimum=1)
    std = noise.float().std().item()
    if std > MAX_UNIT_NOISE_STD:
        raise ValueError(
            f"noise has std {std:.2f}; pass unit-variance noise, the pipeline scales it by init_noise_sigma.")
    height, width = noise.shape[2] * factor, noise.shape[3] * factor
    out = pipeline(prompt=list(prompts), latents=noise.to(pipeline.device, network.dtype), height=height,
                   width=width, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                   output_type="pt", **call_kwargs)
    return out.images


def sample_images(
    backbone: Backbone,
    noise: torch.Tensor,
    cond: PromptEmbeds,
    uncond: PromptEmbeds | None,
    prompts: list[str],
    num_steps: int,
    guidance_scale: float,
    scheduler: str = "ddim",
) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] from unit-variance ``noise`` (B, C, h, w): the one sampler evaluations use.

    ``scheduler="ddim"`` or ``"flow_euler"`` runs goldennoise's own deterministic loop on the given embeddings (no
    prompt is re-encoded) and the backbone's grid: DDIM on DDPM backbones, flow Euler on flow backbones (the same
    first-order step after reparametrisation, docs/backbones.md). Any other scheduler runs the backbone's diffusers
    pipeline on ``prompts`` (:func:`generate`; DDPM backbones only).
    """
    if scheduler not in OWN_LOOP:
        pipeline = backbone.pipeline(scheduler)
        pipeline.set_progress_bar_config(disable=True)
        return generate(pipeline, prompts, noise, num_inference_steps=num_steps, guidance_scale=guidance_scale).float()
    latents = sample(backbone.denoiser(cond, uncond, guidance_scale), noise.to(backbone.device, torch.float32),
                     backbone.schedule(num_steps, tuple(noise.shape[-2:])))
    return backbone.decode(latents).float()
