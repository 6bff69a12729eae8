"""NPNet's re-denoise golden noise as a noise method: the teacher NPNet learns to imitate (arXiv 2411.09502, Sec. 3.1).

``x'_T = DDIM-Inversion(DDIM(x_T))``: one DDIM step at the denoising guidance ω_l, then one inversion step back at
the weaker guidance ω_w (:func:`goldennoise.sampling.redenoise`: DDIM on DDPM backbones, flow Euler on flow
backbones). On FLUX.1-dev ω_l and ω_w are two values of the distilled guidance input (docs/backbones.md).
Scoring it beside NPNet shows how much of its teacher's effect a trained NPNet recovers. It costs
``repeats · (e(ω_l) + e(ω_w))`` denoiser evaluations per image, ``e(ω)`` being 1 for ω ∈ {0, 1} and 2 otherwise
(always 1 on a guidance-distilled model).
"""

from __future__ import annotations

import torch

from goldennoise.noise.base import NoiseContext, NoiseMethod
from goldennoise.sampling import RedenoiseConvention, redenoise


class Redenoise(NoiseMethod):
    """The re-denoise golden noise of the input noise.

    Args:
        denoise_guidance: ω_l of the DDIM step (the NPD collection's 5.5).
        inversion_guidance: ω_w of the inversion step (1.0: conditional branch only).
        steps: the DDIM grid the two timesteps are taken from; ``None`` uses the evaluation's sampler steps (the NPD
            collection uses its own ``num_steps``, 10 by default: set it to match a trained NPNet's data).
        convention: ``official`` (the NPD collection's inversion levels) or ``textbook`` (the exact reverse step).
        repeats: how many times the step is applied (official ``T_max = 1``).
    """

    def __init__(self, denoise_guidance: float = 5.5, inversion_guidance: float = 1.0, steps: int | None = None,
                 convention: RedenoiseConvention = "official", repeats: int = 1) -> None:
        super().__init__()
        if steps is not None and steps < 2:
            raise ValueError(f"Redenoise needs a grid of at least 2 steps, got steps={steps}.")
        if repeats < 1:
            raise ValueError(f"Redenoise repeats must be at least 1, got {repeats}.")
        if convention not in ("official", "textbook"):
            raise ValueError(f"Unknown re-denoise convention {convention!r}; use 'official' or 'textbook'.")
        self.denoise_guidance, self.inversion_guidance = denoise_guidance, inversion_guidance
        self.steps, self.convention, self.repeats = steps, convention, repeats

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        backbone = ctx.backbone
        schedule = backbone.schedule(self.steps or max(ctx.sampler.steps, 2), tuple(noise.shape[-2:]))
        x = noise.to(backbone.device, torch.float32)  # (B, C, h, w); sampler arithmetic in fp32
        golden = redenoise(backbone.denoiser(ctx.cond, ctx.uncond, self.denoise_guidance),
                                backbone.denoiser(ctx.cond, ctx.uncond, self.inversion_guidance),
                                x, schedule, self.convention, self.repeats)
        return golden.to(noise.dtype)
