"""Anti-aliased rendering of shapes scenes: each pixel takes the object's color in proportion to its coverage.

Coverage is the fraction of ``supersample²`` sub-pixel centers inside the shape, so an edge pixel half covered is
half bright; the 50 % level of a rendered (or blurred) object is therefore its true outline, which is what the
reader in :mod:`goldennoise.shapes.reader` thresholds at. Rendering is a pure function of the scene.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from goldennoise.shapes.world import BACKGROUND, COLORS, SHAPES, Placement, Scene

ARM = 1.0 / 3.0
"""Half-width of a cross arm relative to the cross's half-size (arms a third of the cross's width)."""


def inside_shape(shape: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Whether points lie inside a shape whose bounding box is [-1, 1]² (``v`` grows downwards).

    Args:
        shape: one of :data:`~goldennoise.shapes.world.SHAPES`.
        u: horizontal coordinates, any shape.
        v: vertical coordinates, same shape as ``u``.
    """
    if shape == "circle":
        return u.square() + v.square() <= 1.0
    in_box = (u.abs() <= 1.0) & (v.abs() <= 1.0)
    if shape == "square":
        return in_box
    if shape == "triangle":  # apex at the top center, base along the bottom edge
        return in_box & (u.abs() <= (v + 1.0) / 2.0)
    if shape == "cross":
        return in_box & ((u.abs() <= ARM) | (v.abs() <= ARM))
    raise ValueError(f"Unknown shape {shape!r}; the shapes world has {list(SHAPES)}.")


@functools.lru_cache(maxsize=8)
def _subpixel_grid(size: int, supersample: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Sub-pixel centers in pixel units: (size, size, s²) each, x across columns and y down rows.
    offsets = (torch.arange(supersample, dtype=torch.float32) + 0.5) / supersample
    line = (torch.arange(size, dtype=torch.float32)[:, None] + offsets[None, :]).reshape(-1)  # (size * s,)
    y, x = torch.meshgrid(line, line, indexing="ij")  # (size * s, size * s)
    def to_pixels(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(size, supersample, size, supersample).permute(0, 2, 1, 3).reshape(size, size, -1)
    return to_pixels(x), to_pixels(y)


def coverage(shape: str, placement: Placement, size: int, supersample: int = 4) -> torch.Tensor:
    """Fraction of each pixel covered by one placed shape, shape ``(size, size)`` in [0, 1].

    Args:
        shape: the shape name.
        placement: center and side of its bounding box as fractions of the image side.
        size: image side in pixels.
        supersample: sub-pixels per pixel side.
    """
    x, y = _subpixel_grid(size, supersample)
    half = placement.size * size / 2.0
    u, v = (x - placement.x * size) / half, (y - placement.y * size) / half
    return inside_shape(shape, u, v).float().mean(dim=-1)


def render_scene(scene: Scene, size: int = 32, supersample: int = 4) -> torch.Tensor:
    """Render one scene on a black background.

    Args:
        scene: the scene.
        size: image side in pixels (geometry scales with it).
        supersample: sub-pixels per pixel side for anti-aliasing.

    Returns:
        Image ``(3, size, size)`` in [0, 1].
    """
    image = torch.tensor(BACKGROUND).view(3, 1, 1).expand(3, size, size).clone()
    for obj, placement in zip(scene.spec.objects, scene.placements, strict=True):
        alpha = coverage(obj.shape, placement, size, supersample)  # (size, size)
        color = torch.tensor(COLORS[obj.color]).view(3, 1, 1)
        image = image * (1.0 - alpha) + color * alpha
    return image


def render_scenes(scenes: Sequence[Scene], size: int = 32, supersample: int = 4) -> torch.Tensor:
    """Render a batch of scenes: ``(B, 3, size, size)`` in [0, 1]."""
    if len(scenes) == 0:
        raise ValueError("render_scenes needs at least one scene.")
    return torch.stack([render_scene(s, size, supersample) for s in scenes])
