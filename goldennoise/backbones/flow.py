"""Flow-matching backbones (SD3 / SD3.5, FLUX.1): a transformer predicting the rectified-flow velocity on a σ grid.

The grid is the diffusers ``FlowMatchEulerDiscreteScheduler``'s, shift included: a static shift
``σ' = sσ/(1 + (s−1)σ)`` (SD3.5: s = 3, FLUX-schnell: s = 1) or, with ``use_dynamic_shifting``, the resolution-dependent
``σ' = e^μ/(e^μ + (1/σ − 1))`` with μ linear in the image's token count (FLUX-dev; Esser et al., 2024, Sec. 5.3.2).
:meth:`FlowBackbone.schedule` asks the scheduler, so the levels are the pipeline's. Noise methods see unpacked
unit-variance latents (B, C, h, w); the denoiser returns the velocity ``u = ε − x₀`` that
:func:`goldennoise.sampling.sample_flow` integrates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SchedulerMixin
from diffusers.pipelines.flux.pipeline_flux import calculate_shift
from torch import nn

from goldennoise.backbones.base import Backbone
from goldennoise.checks import check_int
from goldennoise.sampling import DDIMSchedule, FlowSchedule
from goldennoise.sampling.predictions import to_velocity

FLOW_SCHEDULERS = ("flow_euler",)
"""Scheduler names a flow backbone accepts (``ddim`` also selects goldennoise's own loop, here flow Euler)."""


class FlowBackbone(Backbone):
    """A flow-matching transformer backbone; families implement text encoding, the network call and the σ inputs."""

    network_name = "transformer"
    schedule_kind = "flow"

    @property
    def unet(self) -> nn.Module:
        """The denoiser network under its UNet-era name, so ``CostMeter(backbone.unet)`` call sites keep counting."""
        return self.transformer

    @property
    def prediction_type(self) -> str:
        """``flow``: the rectified-flow velocity."""
        return "flow"

    def _convert(self, output: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return to_velocity(self.prediction_type, output, x, t / 1000)

    def make_scheduler(self, name: str = "flow_euler", **overrides: Any) -> SchedulerMixin:
        """A fresh ``FlowMatchEulerDiscreteScheduler`` from this model's configuration."""
        if name not in FLOW_SCHEDULERS:
            raise ValueError(f"{type(self).__name__} is a flow-matching model; its scheduler is one of "
                             f"{list(FLOW_SCHEDULERS)}, not {name!r}.")
        return FlowMatchEulerDiscreteScheduler.from_config(self.scheduler_config, **overrides)

    def pipeline(self, scheduler: str = "flow_euler") -> Any:
        """The diffusers pipeline over this backbone's components with a fresh flow-matching scheduler."""
        return super().pipeline(scheduler)

    def ddim_schedule(self, num_steps: int) -> DDIMSchedule:
        """Refused: flow models have no DDPM grid."""
        raise ValueError(f"{type(self).__name__} is a flow-matching model with no DDIM grid; use "
                         "backbone.schedule(num_steps, latent_size) with goldennoise.sampling.sample / invert.")

    def _image_seq_len(self, h: int, w: int) -> int:
        """Image tokens of latents (h, w), the input of the dynamic shift."""
        patch = self.network.config.patch_size
        return (h // patch) * (w // patch)

    def _input_sigmas(self, num_steps: int) -> np.ndarray | None:
        """Unshifted σ the pipeline hands the scheduler (``None``: the scheduler's own spacing)."""
        return None

    def schedule(self, num_steps: int, latent_size: tuple[int, int] | None = None) -> FlowSchedule:
        """The pipeline's σ grid for ``num_steps`` steps at latents of ``latent_size`` ``(h, w)`` (default native).

        Raises:
            ValueError: ``num_steps`` is not a positive integer.
        """
        check_int("num_steps", num_steps, minimum=1)
        h, w = latent_size if latent_size is not None else self.latent_shape()[1:]
        scheduler = self.make_scheduler()
        config = scheduler.config
        mu = None
        if config.get("use_dynamic_shifting", False):
            mu = calculate_shift(self._image_seq_len(int(h), int(w)), config.base_image_seq_len,
                                 config.max_image_seq_len, config.base_shift, config.max_shift)
        scheduler.set_timesteps(num_steps, sigmas=self._input_sigmas(num_steps), mu=mu)
        return FlowSchedule(sigmas=scheduler.sigmas.float(), timesteps=scheduler.timesteps.float())
