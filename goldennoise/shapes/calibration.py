"""Fit the reader's shape classifier to renders and to what a backbone's VAE draws of them.

The data are objects whose shape is known: scenes rendered and corrupted (each scene under one corruption of
:data:`~goldennoise.shapes.augment.CORRUPTIONS`, in turn), class form ``"render"``, and the same renders encoded and
decoded by the VAE, form ``"decoded"``. Fit on one split (``train``) and measure on others (``test``, ``heldout``)
with :mod:`goldennoise.shapes.accuracy`. The shipped ``shapes-vae`` classifier is made by
``experiments/shapes_metric/calibrate.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from goldennoise.shapes.augment import CORRUPTIONS, HasVAE, vae_roundtrip
from goldennoise.shapes.reader import ReaderSettings, object_patches
from goldennoise.shapes.render import render_scenes
from goldennoise.shapes.world import SHAPES, Scene

FORMS: tuple[str, ...] = ("render", "decoded")
"""How an object was made: drawn by the renderer (clean or corrupted) or decoded by a VAE."""

CLASSES: tuple[tuple[str, str], ...] = tuple((shape, form) for form in FORMS for shape in SHAPES)
"""The classifier's (shape, form) classes."""


def labelled_patches(images: torch.Tensor, scenes: Sequence[Scene], form: str, patch_size: int = 24,
                     extent: float = 7.0, settings: ReaderSettings | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches of the scenes' objects found in ``images`` (the largest object of each object's color).

    Args:
        images: ``(B, 3, H, W)`` in [0, 1], image ``i`` drawn from ``scenes[i]``.
        scenes: the scenes (their objects differ in color, so color finds each one).
        form: the form of every object here, one of :data:`FORMS`.
        patch_size: samples per patch side.
        extent: half-width of the patch in pixels of a 32-pixel image.
        settings: reader thresholds.

    Returns:
        Patches ``(N, patch_size, patch_size)`` and their class indices into :data:`CLASSES` ``(N,)``; objects whose
        color is not found are left out.
    """
    if len(images) != len(scenes):
        raise ValueError(f"Got {len(images)} images but {len(scenes)} scenes; pass one scene per image.")
    patches, labels = [], []
    for found, scene in zip(object_patches(images, patch_size, extent, settings), scenes, strict=True):
        for obj in scene.spec.objects:
            if obj.color in found:
                patches.append(found[obj.color])
                labels.append(CLASSES.index((obj.shape, form)))
    return torch.stack(patches), torch.tensor(labels)


def calibration_data(scenes: Sequence[Scene], backbone: HasVAE, size: int = 32, seed: int = 0,
                     patch_size: int = 24, extent: float = 7.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled patches of ``scenes`` rendered (each under one corruption, in turn) and VAE round-tripped.

    Args:
        scenes: the scenes to render.
        backbone: whose VAE draws the ``"decoded"`` form.
        size: image side in pixels.
        seed: seed of the corruptions.
        patch_size: samples per patch side.
        extent: half-width of the patch in pixels of a 32-pixel image.

    Returns:
        Patches ``(N, P, P)`` and class indices into :data:`CLASSES`.
    """
    renders = render_scenes(scenes, size)
    names = list(CORRUPTIONS)
    parts = []
    for i, name in enumerate(names):
        chosen = list(range(i, len(scenes), len(names)))
        corrupted = CORRUPTIONS[name](renders[chosen], generator=torch.Generator().manual_seed(seed + i))
        parts.append(labelled_patches(corrupted, [scenes[j] for j in chosen], "render", patch_size, extent))
    parts.append(labelled_patches(vae_roundtrip(backbone)(renders), scenes, "decoded", patch_size, extent))
    return torch.cat([p for p, _ in parts]), torch.cat([label for _, label in parts])
