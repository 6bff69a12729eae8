"""Differentiable image preprocessing for the scorers, on tensors, and input checks shared by every metric.

The reference pipelines resize the shorter side with bicubic interpolation, center-crop and normalise:

- HPSv2 (open_clip ``image_transform(..., is_train=False)``) does exactly this on tensors after ``ToTensor()``, and
  transformers' ``CLIPImageProcessor`` (PickScore, CLIPScore, AES here) does it with torchvision too: identical.
- ImageReward and the LAION aesthetic predictor resize PIL images. torchvision's antialiased bicubic follows PIL's
  filter; the two differ by rounding only (PIL works in uint8) — see ``tests/unit/test_metrics_inputs.py``.

Doing it on tensors keeps the gradient from the score to the images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tvF

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImagePreprocess:
    """Resize the shorter side to ``size`` (bicubic, antialiased), center-crop to ``crop``, normalise.

    Args:
        size: target of the shorter side.
        crop: (height, width) of the center crop; ``None`` means (size, size).
        mean: per-channel mean subtracted after the crop.
        std: per-channel standard deviation divided by.
    """

    size: int
    crop: tuple[int, int] | None = None
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B, 3, crop_h, crop_w) normalised, differentiable."""
        crop = list(self.crop or (self.size, self.size))
        if min(images.shape[-2:]) != self.size:
            images = tvF.resize(images, [self.size], interpolation=InterpolationMode.BICUBIC, antialias=True)
        images = tvF.center_crop(images, crop)
        mean = images.new_tensor(self.mean)[:, None, None]
        std = images.new_tensor(self.std)[:, None, None]
        return (images - mean) / std


def check_images(images: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``images`` is a float (B, 3, H, W) batch with values in [0, 1]."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {shape}.")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got dtype {images.dtype}; divide uint8 by 255.")
    if images.numel() == 0:
        raise ValueError("images is an empty batch.")
    low, high = images.detach().aminmax()
    if low < 0 or high > 1:
        hint = " (looks like [-1, 1]: use (x + 1) / 2)" if low >= -1 and high <= 1 else (
            " (looks like [0, 255]: divide by 255)" if high > 1 and low >= 0 else "")
        raise ValueError(f"images must lie in [0, 1], got values in [{low.item():.4g}, {high.item():.4g}]{hint}.")


def check_prompts(prompts: str | Sequence[str] | None, batch_size: int) -> list[str]:
    """The prompts as a list of ``batch_size`` non-empty strings, or a ``ValueError`` naming what is wrong.

    A single string is accepted for a batch of one image.
    """
    if prompts is None:
        raise ValueError(f"got {batch_size} images but no prompts; pass one prompt per image.")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if len(prompts) != batch_size:
        raise ValueError(f"got {batch_size} images but {len(prompts)} prompts; pass one prompt per image.")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise ValueError(f"prompt {i} is a {type(prompt).__name__}, not a string.")
        if not prompt.strip():
            raise ValueError(f"prompt {i} is empty; every image needs a non-empty prompt.")
    return prompts
