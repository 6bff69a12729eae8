"""Seeded image corruptions the alignment reader must survive: blur, noise, color jitter and a VAE round-trip.

Each takes and returns ``(B, 3, H, W)`` in [0, 1]; random ones draw from a ``torch.Generator`` argument only. The
defaults are the levels the reader's accuracy is measured at (``tests/unit/test_shapes_metric.py``).
:func:`vae_roundtrip` makes the condition of generated images: what a backbone's VAE draws of a render.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torchvision.transforms.v2.functional as TF

Corruption = Callable[..., torch.Tensor]
"""``corrupt(images, generator=None) -> images``, both ``(B, 3, H, W)`` in [0, 1]."""


class HasVAE(Protocol):
    """What :func:`vae_roundtrip` needs of a backbone (:class:`~goldennoise.backbones.base.Backbone` has it)."""

    @property
    def device(self) -> torch.device: ...

    def encode_images(self, images: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


def gaussian_blur(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur of standard deviation ``sigma`` pixels (kernel 2⌈2σ⌉ + 1, reflected borders)."""
    if sigma <= 0:
        raise ValueError(f"Blur sigma must be positive, got {sigma}.")
    kernel = 2 * int(torch.ceil(torch.tensor(2.0 * sigma))) + 1
    return TF.gaussian_blur(images, kernel_size=[kernel, kernel], sigma=[sigma, sigma])


def gaussian_noise(images: torch.Tensor, std: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add i.i.d. Gaussian noise of standard deviation ``std`` and clip to [0, 1]."""
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
    return (images + std * noise).clamp(0.0, 1.0)


def _factor(spread: float, generator: torch.Generator | None) -> float:
    # Uniform in [1 - spread, 1 + spread], as torchvision's ColorJitter draws it.
    return 1.0 + spread * (2.0 * float(torch.rand((), generator=generator)) - 1.0)


def color_jitter(
    images: torch.Tensor,
    brightness: float = 0.3,
    contrast: float = 0.3,
    saturation: float = 0.3,
    hue: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image random brightness, contrast, saturation and hue changes, after torchvision's ``ColorJitter``.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1].
        brightness: factors drawn from [1 - brightness, 1 + brightness].
        contrast: factors drawn from [1 - contrast, 1 + contrast].
        saturation: factors drawn from [1 - saturation, 1 + saturation].
        hue: shifts drawn from [-hue, hue] in turns (0.05 = ±18°).
        generator: source of the random factors.
    """
    out = []
    for image in images:
        image = TF.adjust_brightness(image, _factor(brightness, generator))
        image = TF.adjust_contrast(image, _factor(contrast, generator))
        image = TF.adjust_saturation(image, _factor(saturation, generator))
        image = TF.adjust_hue(image, hue * (2.0 * float(torch.rand((), generator=generator)) - 1.0))
        out.append(image.clamp(0.0, 1.0))
    return torch.stack(out)


def _identity(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return images


def _blur(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return gaussian_blur(images)


def _combined(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return color_jitter(gaussian_noise(gaussian_blur(images), generator=generator), generator=generator)


def vae_roundtrip(backbone: HasVAE, batch_size: int = 256) -> Corruption:
    """The condition "encoded and decoded by ``backbone``'s VAE" (posterior mean, so deterministic).

    Args:
        backbone: has ``device``, ``encode_images`` (images in [0, 1] to latents) and ``decode`` (latents to
            images in [0, 1]); images come back on the input's device and dtype.
        batch_size: images per VAE call.
    """

    @torch.inference_mode()
    def roundtrip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        chunks = [backbone.decode(backbone.encode_images(chunk.to(backbone.device))).to(images)
                  for chunk in images.split(batch_size)]
        return torch.cat(chunks).clamp(0.0, 1.0)

    return roundtrip


CORRUPTIONS = {"clean": _identity, "blur": _blur, "noise": gaussian_noise, "color_jitter": color_jitter,
               "combined": _combined}
"""Name → ``corrupt(images, generator)`` at the default levels (``combined``: blur, then noise, then jitter): the
conditions the reader's accuracy is stated for."""
