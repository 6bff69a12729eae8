"""The common shape of every goldennoise score: a frozen scorer network and a torchmetrics ``Metric`` around it.

A *scorer* is an ``nn.Module`` mapping ``(images (B, 3, H, W) in [0, 1], prompts)`` to raw scores ``(B,)``,
differentiable with respect to the images. A :class:`PromptImageMetric` keeps per-sample scores in a ``"cat"`` state
(so DDP gathers them), returns their mean from ``compute()``, and holds its scorer *outside* the module tree: the
frozen weights never reach a LightningModule's ``state_dict`` or checkpoint, and two metrics can share one scorer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from goldennoise.metrics.preprocess import check_images, check_prompts

ScorerSource = str | nn.Module | Callable[[], nn.Module] | None
"""A scorer argument: ``None`` (the real default weights), a hub id / URL / path, ``"tiny"`` (random tiny weights),
a built scorer, or a factory."""


class _Handle:
    """Holds a scorer for a metric without registering it as a submodule; copies of the metric share it."""

    def __init__(self, scorer: nn.Module) -> None:
        self.scorer = scorer

    def __deepcopy__(self, memo: dict) -> _Handle:
        return self


def freeze(scorer: nn.Module) -> nn.Module:
    """Put ``scorer`` in eval mode with gradients off for its weights (gradients still reach the inputs)."""
    return scorer.eval().requires_grad_(False)


def score_batch(scorer: nn.Module, images: torch.Tensor, prompts: str | Sequence[str] | None,
                needs_prompts: bool = True) -> torch.Tensor:
    """Check the inputs, move the scorer to the images' device, return raw per-sample scores (B,)."""
    check_images(images)
    prompt_list = check_prompts(prompts, images.shape[0]) if needs_prompts or prompts is not None else None
    param = next(scorer.parameters(), None)
    if param is not None and param.device != images.device:
        scorer.to(images.device)
    return scorer(images, prompt_list)


class PromptImageMetric(Metric):
    """Mean of a per-sample score over all ``update(images, prompts)`` calls; subclasses pick the scorer.

    Args:
        scorer: a built scorer ``nn.Module`` (``forward(images, prompts) -> (B,)``).
        scale: factor applied to every score (e.g. 100 for the papers' tables); the default 1 keeps the reference
            implementation's raw numbers.
        kwargs: passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = True
    higher_is_better = True
    full_state_update = False
    needs_prompts = True
    name = "score"
    """Key under which the metric is logged: ``"<split>/<name>"`` (see :meth:`log_name`)."""

    scores: list[torch.Tensor]

    def __init__(self, scorer: nn.Module, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handle = _Handle(freeze(scorer))
        self.scale = scale
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    @property
    def scorer(self) -> nn.Module:
        """The frozen scorer network (not a submodule: it stays out of ``state_dict`` and checkpoints)."""
        return self._handle.scorer

    def score(self, images: torch.Tensor, prompts: str | Sequence[str] | None = None) -> torch.Tensor:
        """Scaled per-sample scores (B,) without touching the metric state; differentiable w.r.t. ``images``.

        Args:
            images: (B, 3, H, W) in [0, 1].
            prompts: one non-empty prompt per image.
        """
        return self.scale * score_batch(self.scorer, images, prompts, self.needs_prompts)

    def update(self, images: torch.Tensor, prompts: str | Sequence[str] | None = None) -> None:
        """Score a batch and keep its per-sample scores. ``images`` (B, 3, H, W) in [0, 1], one prompt per image."""
        self.scores.append(self.score(images, prompts))

    def per_sample(self) -> torch.Tensor:
        """All per-sample scores seen so far, in order (B_total,) — after ``compute()`` on DDP, those of this rank."""
        if isinstance(self.scores, torch.Tensor):  # already concatenated by a DDP sync
            return self.scores
        return dim_zero_cat(self.scores) if self.scores else torch.zeros(0, device=self.device)

    def compute(self) -> torch.Tensor:
        """Mean score over every sample seen."""
        return dim_zero_cat(self.scores).mean()

    def log_name(self, split: str) -> str:
        """The logged key, ``"val/hpsv2"``-style."""
        return f"{split}/{self.name}"

    def extra_repr(self) -> str:
        return f"name={self.name!r}, scale={self.scale}, scorer={type(self.scorer).__name__}"


def resolve_scorer(source: ScorerSource, load: Callable[[str | None], nn.Module], tiny: str | None = None) -> nn.Module:
    """A scorer from the model-or-factory argument: a built module, a factory's result, or ``load(source)``.

    ``source="tiny"`` builds the random-weight scorer ``goldennoise.metrics.tiny.<tiny>()`` of the same architecture
    (tests and smoke runs: real code path, meaningless values).
    """
    if isinstance(source, nn.Module):
        return source
    if callable(source):
        return source()
    if source == "tiny" and tiny is not None:
        from goldennoise.metrics import tiny as tiny_scorers

        return getattr(tiny_scorers, tiny)()
    return load(source)
