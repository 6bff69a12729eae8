"""Sampler-agnostic entry points: the schedule's type picks DDIM or flow Euler.

A backbone's :meth:`~goldennoise.backbones.Backbone.schedule` returns a :class:`~goldennoise.sampling.DDIMSchedule`
(DDPM models: the denoiser returns ε) or a :class:`~goldennoise.sampling.FlowSchedule` (flow-matching models: the
denoiser returns the velocity), and ``backbone.denoiser(...)`` returns what that schedule's sampler needs, so code
written as ``sample(backbone.denoiser(cond, uncond, w), noise, backbone.schedule(n, noise.shape[-2:]))`` runs on
every backbone. Porting a DDIM-only call site is one line: ``sample_ddim`` → :func:`sample`, ``invert_ddim`` →
:func:`invert`, ``redenoise_step`` → :func:`redenoise`, ``backbone.ddim_schedule(n)`` →
``backbone.schedule(n, latent_size)``.
"""

from __future__ import annotations

import torch

from goldennoise.sampling.ddim import (
    DDIMSchedule,
    Denoiser,
    RedenoiseConvention,
    StepCallback,
    invert_ddim,
    redenoise_step,
    sample_ddim,
)
from goldennoise.sampling.flow import FlowSchedule, flow_redenoise_step, invert_flow, sample_flow

Schedule = DDIMSchedule | FlowSchedule
"""A time grid: DDPM timesteps with ᾱ, or flow-matching σ levels."""

Trajectory = torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]


def _kind(schedule: Schedule) -> str:
    if isinstance(schedule, DDIMSchedule):
        return "ddim"
    if isinstance(schedule, FlowSchedule):
        return "flow"
    raise TypeError(f"Expected a DDIMSchedule or a FlowSchedule, got {type(schedule).__name__}.")


def sample(denoiser: Denoiser, noise: torch.Tensor, schedule: Schedule, callback: StepCallback | None = None,
           return_trajectory: bool = False, checkpoint: bool = False, num_steps: int | None = None) -> Trajectory:
    """:func:`~goldennoise.sampling.sample_ddim` or :func:`~goldennoise.sampling.sample_flow`, by schedule type."""
    fn = sample_ddim if _kind(schedule) == "ddim" else sample_flow
    return fn(denoiser, noise, schedule, callback, return_trajectory, checkpoint, num_steps)


def invert(denoiser: Denoiser, latents: torch.Tensor, schedule: Schedule, callback: StepCallback | None = None,
           return_trajectory: bool = False, checkpoint: bool = False, num_steps: int | None = None) -> Trajectory:
    """:func:`~goldennoise.sampling.invert_ddim` or :func:`~goldennoise.sampling.invert_flow`, by schedule type."""
    fn = invert_ddim if _kind(schedule) == "ddim" else invert_flow
    return fn(denoiser, latents, schedule, callback, return_trajectory, checkpoint, num_steps)


def redenoise(denoise: Denoiser, invert_with: Denoiser, noise: torch.Tensor, schedule: Schedule,
              convention: RedenoiseConvention = "official", repeats: int = 1) -> torch.Tensor:
    """NPNet's re-denoise step on either grid (:func:`redenoise_step` / :func:`flow_redenoise_step`)."""
    fn = redenoise_step if _kind(schedule) == "ddim" else flow_redenoise_step
    return fn(denoise, invert_with, noise, schedule, convention, repeats)
