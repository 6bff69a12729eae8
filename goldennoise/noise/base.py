"""The interface every noise method shares: unit-variance noise in, unit-variance noise out.

Diffusers pipelines multiply ``latents=`` by ``scheduler.init_noise_sigma``, so a method never pre-scales its output
(see :func:`goldennoise.backbones.generate`).
"""

from __future__ import annotations

import torch
from torch import nn


class NoiseMethod(nn.Module):
    """Maps initial noise and the prompt's conditioning to new initial noise of the same shape.

    Subclasses implement :meth:`forward`; its input and output are unit-variance latents ``(B, C, h, w)``.
    """

    def forward(self, noise: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """New noise ``(B, C, h, w)`` from ``noise`` ``(B, C, h, w)`` and token embeddings ``(B, L, D)``."""
        raise NotImplementedError
