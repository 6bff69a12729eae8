"""One registry of metric names: ``"hpsv2"`` → :class:`HPSv2Score` and so on, used by every config that names a metric.

Configs either name a metric (``{"metric": "hpsv2", "model": "tiny"}`` in an NPD collection) or give the configured
``Metric`` object itself (``class_path: goldennoise.metrics.HPSv2Score``); both end in the same classes, and
:func:`sample_scores` reads per-sample scores from either kind the same way.

``model="tiny"`` builds the random-weight scorer of :mod:`goldennoise.metrics.tiny` (tests, smoke runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric

from goldennoise.metrics.aesthetic import AestheticScore
from goldennoise.metrics.base import PromptImageMetric
from goldennoise.metrics.clip_score import CLIPScore
from goldennoise.metrics.hps import HPSv2Score
from goldennoise.metrics.image_reward import ImageReward
from goldennoise.metrics.pickscore import PickScore
from goldennoise.metrics.shapes_alignment import ShapesAlignment
from goldennoise.metrics.soft_shapes_alignment import SoftShapesAlignment

METRICS: dict[str, type[Metric]] = {
    "hpsv2": HPSv2Score,
    "pickscore": PickScore,
    "image_reward": ImageReward,
    "aesthetic": AestheticScore,
    "clip_score": CLIPScore,
    "shapes_alignment": ShapesAlignment,
    "soft_shapes_alignment": SoftShapesAlignment,
}
"""Metric classes by registry name."""

WEIGHTLESS = ("shapes_alignment", "soft_shapes_alignment")
"""Metrics without a scorer network (no ``model`` argument)."""


def build_metric(name: str, model: str | None = None, **kwargs: Any) -> Metric:
    """The metric registered as ``name``; its weights load now, so a missing file fails before any sampling.

    Args:
        name: a key of :data:`METRICS`.
        model: scorer weights (hub id, URL or path; ``None`` the official ones; ``"tiny"`` random tiny weights).
        kwargs: further constructor arguments (e.g. ``version="v2.0"`` for HPSv2).
    """
    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}; choose one of {sorted(METRICS)}.")
    if name in WEIGHTLESS:
        if model is not None:
            raise ValueError(f"Metric {name!r} has no weights; drop model={model!r}.")
        return METRICS[name](**kwargs)
    return METRICS[name](model=model, **kwargs)


def metric_name(metric: Metric) -> str:
    """The name a metric is logged and stored under (``hpsv2.1``, ``shapes_alignment``, ...)."""
    return getattr(metric, "name", type(metric).__name__)


def primary_key(metric: Metric) -> str:
    """The key of a metric's primary per-sample score in :func:`sample_scores` (what tables and selections read)."""
    name = metric_name(metric)
    return f"{name}/alignment" if isinstance(metric, ShapesAlignment) else name


def sample_scores(metric: Metric, images: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Per-sample scores (B,) of one batch by key, without touching the metric's state.

    A :class:`PromptImageMetric` gives ``{name: scores}``; :class:`ShapesAlignment` gives ``alignment``,
    ``all_correct`` and ``count_correct`` under ``shapes_alignment/<key>``; :func:`primary_key` names the main one.
    """
    name = metric_name(metric)
    if isinstance(metric, PromptImageMetric):
        with torch.no_grad():  # the scorer follows the images' device
            return {name: metric.score(images, list(prompts)).float().cpu()}
    if isinstance(metric, ShapesAlignment):
        scores = metric.sample_scores(images, prompts)
        return {f"{name}/{key}": value for key, value in scores.items()}
    raise TypeError(f"Metric {type(metric).__name__} gives no per-sample scores; use a goldennoise metric "
                    f"({', '.join(sorted(METRICS))}).")
