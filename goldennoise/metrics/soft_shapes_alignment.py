r"""A differentiable surrogate of the shapes alignment: soft colour masses, soft centroids, soft shape templates.

:class:`~goldennoise.metrics.ShapesAlignment` reads objects back by rule (thresholds, connected components, argmax
over shapes), so it is exact but has no gradient. This surrogate scores the same facts with smooth stand-ins, so it
can be optimised (a reward of :class:`~goldennoise.noise.RewardOptimization`) while the exact reader stays the judge:
an optimised reward is never the metric it is judged by. See ``docs/reward.md`` §1.

Per image and palette colour ``k`` (pixel centres ``p`` in fractions of the image side):

1. membership ``m_k(p) = fg(p) · softmax_k(κ cos(h(p) − h_k))``: ``fg`` is a sigmoid on the HSV value and saturation
   thresholds of the reader, ``h`` the hue angle of the pixel's chroma vector (exact for the palette colours);
2. presence ``P_k = σ((Σ_p m_k − n_min)/s)`` with ``n_min`` the reader's least object area in pixels;
3. centroid and variances of ``m_k`` (a mass-weighted mean), as the reader measures them;
4. per shape, the box whose template has those moments (the reader's moment fit), a template with soft edges about
   ``edge`` pixels wide, its soft IoU with ``m_k``, and ``P(shape) = softmax_shape(β · IoU)``;
5. ``P(cell)``: the centroid's soft 3 × 3 cell (sigmoids at 1/3 and 2/3); ``P(relation)``: sigmoids on the centroids'
   displacement along the stated axis and on its dominance over the other axis.

Facts mirror :mod:`goldennoise.shapes.alignment`: one object gives ``[P_c, P_c·P(shape), P_c·P(cell)]``, two give
``[P_c1, P_c1·P(shape1), P_c2, P_c2·P(shape2), P_c1·P_c2·P(relation)]``; the score is their mean, in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from goldennoise.metrics.base import PromptImageMetric
from goldennoise.shapes.alignment import as_specs
from goldennoise.shapes.reader import ReaderSettings, shape_moments
from goldennoise.shapes.render import ARM
from goldennoise.shapes.world import COLOR_HUES, COLORS, POSITIONS, SHAPES, PromptSpec

_EPS = 1e-6


@dataclass(frozen=True)
class SoftShapesSettings:
    """Temperatures of the surrogate (the thresholds themselves are the exact reader's).

    Args:
        hue_sharpness: κ of the colour softmax over ``cos(h − h_k)`` (palette hues are 60° apart).
        threshold_width: width of the value and saturation sigmoids, in the [0, 1] units of HSV.
        presence_width: width of the presence sigmoid, in pixels of a 32-pixel image (scaled with the area).
        edge: template edge width, in pixels.
        shape_sharpness: β of the softmax over the shapes' soft IoUs.
        position_width: width of the cell and relation sigmoids, as a fraction of the image side.
    """

    hue_sharpness: float = 10.0
    threshold_width: float = 0.05
    presence_width: float = 2.0
    edge: float = 0.5
    shape_sharpness: float = 120.0
    position_width: float = 0.03


def soft_inside(shape: str, u: torch.Tensor, v: torch.Tensor, sharpness: torch.Tensor) -> torch.Tensor:
    """A smooth :func:`~goldennoise.shapes.render.inside_shape`: sigmoids of the signed distances to each edge.

    Args:
        shape: one of :data:`~goldennoise.shapes.world.SHAPES`.
        u: horizontal coordinates in units of the box's half-side (any shape).
        v: vertical coordinates, same shape as ``u``.
        sharpness: inverse edge width in the same units (broadcasts with ``u``).
    """
    def edge(distance: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(sharpness * distance)

    if shape == "circle":
        return edge(1.0 - (u.square() + v.square() + _EPS).sqrt())
    box = edge(1.0 - u.abs()) * edge(1.0 - v.abs())
    if shape == "square":
        return box
    if shape == "triangle":  # apex at the top center, base along the bottom edge
        return box * edge((v + 1.0) / 2.0 - u.abs())
    if shape == "cross":
        return box * (1.0 - (1.0 - edge(ARM - u.abs())) * (1.0 - edge(ARM - v.abs())))
    raise ValueError(f"Unknown shape {shape!r}; the shapes world has {list(SHAPES)}.")


@dataclass
class ColourMoments:
    """Per image and palette colour: soft membership, presence, centroid and variances (fractions of the side).

    Attributes:
        membership: ``(B, K, H, W)`` soft membership ``m_k``.
        presence: ``(B, K)`` soft presence ``P_k``.
        centre: ``(B, K, 2)`` mass-weighted (x, y).
        variance: ``(B, K, 2)`` mass-weighted variances of x and y.
    """

    membership: torch.Tensor
    presence: torch.Tensor
    centre: torch.Tensor
    variance: torch.Tensor


class SoftShapesScorer(nn.Module):
    """The surrogate as a weightless scorer: ``forward(images (B, 3, H, W) in [0, 1], prompts) -> (B,)`` in [0, 1].

    Args:
        settings: the surrogate's temperatures.
        reader: the exact reader's thresholds it follows (value, saturation, least area).
    """

    def __init__(self, settings: SoftShapesSettings | None = None, reader: ReaderSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or SoftShapesSettings()
        self.reader = reader or ReaderSettings()

    def forward(self, images: torch.Tensor, prompts: Sequence[str | PromptSpec]) -> torch.Tensor:
        specs = as_specs(prompts)
        if len(specs) != images.shape[0]:
            raise ValueError(f"Got {images.shape[0]} images but {len(specs)} prompts; pass one prompt per image.")
        colours = self.colour_moments(images.float())
        shape_probs = self.shape_probabilities(colours, images.shape[-1])  # (B, K, S)
        return torch.stack([self._image_score(spec, colours, shape_probs, b) for b, spec in enumerate(specs)])

    def membership(self, images: torch.Tensor) -> torch.Tensor:
        """Soft colour membership ``(B, K, H, W)`` of images ``(B, 3, H, W)`` (step 1)."""
        s = self.settings
        r, g, b = images.unbind(dim=1)  # (B, H, W) each
        value = images.amax(dim=1)
        chroma = value - images.amin(dim=1)
        saturation = chroma / value.clamp_min(_EPS)
        foreground = (torch.sigmoid((value - self.reader.min_value) / s.threshold_width)
                      * torch.sigmoid((saturation - self.reader.min_saturation) / s.threshold_width))
        hues = torch.tensor([math.radians(COLOR_HUES[name]) for name in COLORS], device=images.device)
        palette = torch.stack([hues.cos(), hues.sin()], dim=-1).to(images.dtype)  # (K, 2) unit hue vectors
        alpha, beta = r - (g + b) / 2.0, (g - b) * (math.sqrt(3.0) / 2.0)  # chroma plane; hue = atan2(β, α)
        radius = (alpha.square() + beta.square() + _EPS).sqrt()
        cosines = (alpha[:, None] * palette[:, 0, None, None] + beta[:, None] * palette[:, 1, None, None])
        weights = torch.softmax(s.hue_sharpness * cosines / radius[:, None], dim=1)  # (B, K, H, W)
        return foreground[:, None] * weights

    def colour_moments(self, images: torch.Tensor) -> ColourMoments:
        """Steps 1–3 for every palette colour."""
        size = images.shape[-1]
        membership = self.membership(images)  # (B, K, H, W)
        line = (torch.arange(size, device=images.device, dtype=images.dtype) + 0.5) / size
        mass = membership.sum(dim=(-2, -1))  # (B, K) in pixels
        min_pixels = self.reader.min_area * size**2
        width = self.settings.presence_width * (size / 32.0) ** 2
        presence = torch.sigmoid((mass - min_pixels) / width)
        weight = mass.clamp_min(1e-3)
        mx = (membership.sum(dim=-2) * line).sum(dim=-1) / weight  # (B, K)
        my = (membership.sum(dim=-1) * line).sum(dim=-1) / weight
        var_x = (membership.sum(dim=-2) * (line - mx[..., None]).square()).sum(dim=-1) / weight
        var_y = (membership.sum(dim=-1) * (line - my[..., None]).square()).sum(dim=-1) / weight
        return ColourMoments(membership, presence, torch.stack([mx, my], dim=-1), torch.stack([var_x, var_y], -1))

    def shape_probabilities(self, colours: ColourMoments, size: int) -> torch.Tensor:
        """Step 4: ``P(shape)`` per image and colour, ``(B, K, S)``."""
        s = self.settings
        line = (torch.arange(size, device=colours.centre.device, dtype=colours.centre.dtype) + 0.5) / size
        y, x = line[:, None], line[None, :]  # (H, 1), (1, W)
        table = shape_moments().to(colours.centre)  # (S, 3): mean v, var u, var v per shape
        # Box of each shape whose template has the measured moments, in fractions of the side: (B, K, S).
        half_w = (colours.variance[..., 0:1] / table[:, 1]).clamp_min(1.0 / size**2).sqrt()
        half_h = (colours.variance[..., 1:2] / table[:, 2]).clamp_min(1.0 / size**2).sqrt()
        cx = colours.centre[..., 0:1].expand_as(half_w)
        cy = colours.centre[..., 1:2] - table[:, 0] * half_h
        sharpness = (half_w * half_h).sqrt() * size / s.edge  # (B, K, S): inverse edge width in half-side units
        ious = []
        for i, shape in enumerate(SHAPES):
            def at(t: torch.Tensor, k: int = i) -> torch.Tensor:
                return t[..., k, None, None]  # (B, K, 1, 1)
            template = soft_inside(shape, (x - at(cx)) / at(half_w), (y - at(cy)) / at(half_h), at(sharpness))
            overlap = torch.minimum(colours.membership, template).sum(dim=(-2, -1))
            union = torch.maximum(colours.membership, template).sum(dim=(-2, -1)).clamp_min(_EPS)
            ious.append(overlap / union)
        return torch.softmax(s.shape_sharpness * torch.stack(ious, dim=-1), dim=-1)

    def cell_probability(self, centre: torch.Tensor, position: str) -> torch.Tensor:
        """Step 5: soft probability that ``centre`` (2,) lies in the grid cell ``position``."""
        index = POSITIONS.index(position)
        row, col = divmod(index, 3)
        return self._third(centre[0], col) * self._third(centre[1], row)

    def _third(self, t: torch.Tensor, which: int) -> torch.Tensor:
        w = self.settings.position_width
        low, high = torch.sigmoid((1.0 / 3.0 - t) / w), torch.sigmoid((t - 2.0 / 3.0) / w)
        probs = torch.stack([low, (1.0 - low) * (1.0 - high), high])
        return probs[which] / probs.sum()

    def relation_probability(self, first: torch.Tensor, second: torch.Tensor, relation: str) -> torch.Tensor:
        """Step 5: soft probability of ``relation`` of the centre ``first`` (2,) to ``second`` (2,)."""
        w = self.settings.position_width
        dx, dy = (second - first).unbind()
        along, across = (dx, dy) if relation in ("left of", "right of") else (dy, dx)
        sign = -1.0 if relation in ("right of", "below") else 1.0  # y grows downwards: "above" means dy > 0
        return torch.sigmoid(sign * along / w) * torch.sigmoid((along.abs() - across.abs()) / w)

    def _image_score(self, spec: PromptSpec, colours: ColourMoments, shape_probs: torch.Tensor,
                     b: int) -> torch.Tensor:
        ks = [list(COLORS).index(obj.color) for obj in spec.objects]
        present = [colours.presence[b, k] for k in ks]
        shaped = [present[j] * shape_probs[b, k, SHAPES.index(obj.shape)]
                  for j, (k, obj) in enumerate(zip(ks, spec.objects, strict=True))]
        if len(ks) == 1:
            placed = present[0] * self.cell_probability(colours.centre[b, ks[0]], spec.position)
            facts = [present[0], shaped[0], placed]
        else:
            related = present[0] * present[1] * self.relation_probability(
                colours.centre[b, ks[0]], colours.centre[b, ks[1]], spec.relation)
            facts = [present[0], shaped[0], present[1], shaped[1], related]
        return torch.stack(facts).mean()


class SoftShapesAlignment(PromptImageMetric):
    """Mean of the differentiable shapes-alignment surrogate over every ``update(images, prompts)``.

    A reward, not a judge: judge with :class:`~goldennoise.metrics.ShapesAlignment`. ``score(images, prompts)``
    is differentiable with respect to the images (see :class:`PromptImageMetric`).

    Args:
        settings: the surrogate's temperatures.
        reader: the exact reader's thresholds the surrogate follows.
        scale: factor applied to every score.
        kwargs: passed to :class:`torchmetrics.Metric`.
    """

    name = "soft_shapes_alignment"

    def __init__(self, settings: SoftShapesSettings | None = None, reader: ReaderSettings | None = None,
                 scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(SoftShapesScorer(settings, reader), scale=scale, **kwargs)
