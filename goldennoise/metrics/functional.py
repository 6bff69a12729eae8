"""Functional twins of the metrics: per-sample scores (B,), differentiable with respect to the images.

Each takes images (B, 3, H, W) in [0, 1], one prompt per image and the same ``model`` argument as its metric class
(``None`` for the real weights, a hub id / URL / path, a built scorer or a factory); the metric value is the mean
(``max(mean, 0)`` for CLIPScore). Loaded scorers are shared per process, so repeated calls do not reload.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from goldennoise.metrics.aesthetic import load_aesthetic
from goldennoise.metrics.base import ScorerSource, resolve_scorer, score_batch
from goldennoise.metrics.clip_score import load_clip_scorer
from goldennoise.metrics.hps import load_hpsv2
from goldennoise.metrics.image_reward import load_image_reward
from goldennoise.metrics.pickscore import load_pickscore


def hpsv2_score(images: torch.Tensor, prompts: str | Sequence[str], version: str = "v2.1",
                model: ScorerSource = None, scale: float = 1.0) -> torch.Tensor:
    """Functional HPSv2: per-sample scores (B,), differentiable w.r.t. ``images``; ``.mean()`` is the metric.

    Args:
        images: (B, 3, H, W) in [0, 1].
        prompts: one non-empty prompt per image.
        version: ``"v2.0"`` or ``"v2.1"``.
        model: as for :class:`HPSv2Score`.
        scale: multiply scores by this (100 gives the papers' tables).
    """
    scorer = resolve_scorer(model, lambda source: load_hpsv2(version, source), "hpsv2_scorer")
    return scale * score_batch(scorer, images, prompts)


def pickscore(images: torch.Tensor, prompts: str | Sequence[str], model: ScorerSource = None,
              scale: float = 1.0) -> torch.Tensor:
    """Functional PickScore: per-sample scores (B,), differentiable w.r.t. ``images``; ``.mean()`` is the metric.

    Args:
        images: (B, 3, H, W) in [0, 1].
        prompts: one non-empty prompt per image.
        model: as for :class:`PickScore`.
        scale: multiply scores by this.
    """
    return scale * score_batch(resolve_scorer(model, load_pickscore, "pickscore_scorer"), images, prompts)


def image_reward(images: torch.Tensor, prompts: str | Sequence[str], model: ScorerSource = None,
                 scale: float = 1.0) -> torch.Tensor:
    """Functional ImageReward: per-sample rewards (B,), differentiable w.r.t. ``images``; ``.mean()`` is the metric.

    Args:
        images: (B, 3, H, W) in [0, 1].
        prompts: one non-empty prompt per image.
        model: as for :class:`ImageReward`.
        scale: multiply rewards by this.
    """
    return scale * score_batch(resolve_scorer(model, load_image_reward, "image_reward_scorer"), images, prompts)


def aesthetic_score(images: torch.Tensor, prompts: str | Sequence[str] | None = None, model: ScorerSource = None,
                    scale: float = 1.0) -> torch.Tensor:
    """Functional AES: per-sample scores (B,), differentiable w.r.t. ``images``; ``.mean()`` is the metric.

    Args:
        images: (B, 3, H, W) in [0, 1].
        prompts: ignored (checked for length if given).
        model: as for :class:`AestheticScore`.
        scale: multiply scores by this.
    """
    scorer = resolve_scorer(model, load_aesthetic, "aesthetic_scorer")
    return scale * score_batch(scorer, images, prompts, needs_prompts=False)


def clip_score(images: torch.Tensor, prompts: str | Sequence[str], model: ScorerSource = None,
               scale: float = 1.0) -> torch.Tensor:
    """Functional CLIPScore: unclamped per-sample ``100 cos`` (B,), differentiable; ``max(mean, 0)`` is the metric.

    Args:
        images: (B, 3, H, W) in [0, 1].
        prompts: one non-empty prompt per image.
        model: as for :class:`CLIPScore`.
        scale: multiply scores by this.
    """
    return scale * score_batch(resolve_scorer(model, load_clip_scorer, "clip_scorer"), images, prompts)
