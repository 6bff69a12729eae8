"""Exact prompt alignment of shapes-world images, as a torchmetrics ``Metric`` and its functional twin.

The facts, matching and scores are defined in :mod:`goldennoise.shapes.alignment`; this module only keeps state.
The objects are read back by rule, except each object's shape, which a small shipped classifier (6 kB, fitted to
renders and to the embedded backbone's VAE round-trips of them) decides by default; the metric is not differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from goldennoise.shapes.alignment import FACT_KINDS, alignment_scores, summarize
from goldennoise.shapes.reader import ReaderSettings
from goldennoise.shapes.world import PromptSpec


class ShapesAlignment(Metric):
    """Mean alignment, all-correct rate and per-fact accuracy over every ``update(images, prompts)``.

    ``compute()`` returns a dict of scalar tensors: ``alignment`` (mean fraction of prompt facts satisfied),
    ``all_correct`` (GenEval-style success rate), ``count`` (share of images with as many objects as stated) and
    ``color``, ``shape``, ``position``, ``relation`` (accuracy over the facts of that kind; NaN if none were stated).

    Accuracy of the reader per fact on the true prompts of 1,000 scenes per split (scenes 10,000–10,999;
    ``benchmarks/shapes_metric_accuracy.py``): renders clean, corrupted (the ``combined`` blur + noise + color jitter;
    every single corruption reads at least as well) and VAE round-trips of them through the embedded backbone
    (``encode_images`` → ``decode``: what generated images look like):

    | split | condition | color | shape | position | relation | count | images read exactly |
    |---|---|---|---|---|---|---|---|
    | test | clean | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |
    | test | corrupted | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |
    | test | VAE round-trip | 1.000 | **0.979** (before: 0.594) | 1.000 | 1.000 | 0.982 | 0.952 (before: 0.473) |
    | held-out | clean | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |
    | held-out | corrupted | 1.000 | 0.999 | 1.000 | 1.000 | 1.000 | 0.998 |
    | held-out | VAE round-trip | 0.998 | **0.807** (before: 0.532) | 1.000 | 1.000 | 0.992 | 0.709 (before: 0.397) |

    "before": ``ReaderSettings(shape_classifier=None)``, the reader before the calibration. On the held-out split the
    round-trip shape accuracy is 0.982 on objects of seen color–shape bindings and 0.735 on the split's new bindings,
    which the VAE, trained without them, draws worse (yellow squares as circles, red crosses as blobs); the
    calibration is fitted on the train split only and cannot know them (``experiments/shapes_metric/README.md``).

    Args:
        settings: thresholds and shape decision of the reader; defaults to :class:`ReaderSettings()` (the calibrated
            reader); ``ReaderSettings(shape_classifier=None)`` is the weight-free reader of earlier results.
        kwargs: passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    name = "shapes_alignment"
    """Logged keys are ``"<split>/shapes_alignment/<key>"`` (see :meth:`log_name`)."""

    alignment: list[torch.Tensor]
    all_correct: list[torch.Tensor]
    count_correct: list[torch.Tensor]
    correct: torch.Tensor
    total: torch.Tensor

    def __init__(self, settings: ReaderSettings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings or ReaderSettings()
        self.add_state("alignment", default=[], dist_reduce_fx="cat")
        self.add_state("all_correct", default=[], dist_reduce_fx="cat")
        self.add_state("count_correct", default=[], dist_reduce_fx="cat")
        self.add_state("correct", default=torch.zeros(len(FACT_KINDS), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(len(FACT_KINDS), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, images: torch.Tensor, prompts: Sequence[str | PromptSpec]) -> None:
        """Score a batch: ``images`` (B, 3, H, W) in [0, 1] and one shapes prompt (or spec) per image."""
        scores = {k: v.to(self.device) for k, v in alignment_scores(images, prompts, self.settings).items()}
        self.alignment.append(scores["alignment"])
        self.all_correct.append(scores["all_correct"])
        self.count_correct.append(scores["count_correct"])
        self.correct += scores["correct"].sum(dim=0)
        self.total += scores["total"].sum(dim=0)

    def sample_scores(self, images: torch.Tensor, prompts: Sequence[str | PromptSpec]) -> dict[str, torch.Tensor]:
        """Per-image scores (B,) of one batch; the state is untouched.

        ``alignment``, ``all_correct``, ``count_correct`` and, per kind of :data:`FACT_KINDS`, ``<kind>_correct``: how
        many of the prompt's facts of that kind the image satisfies (a count, so that paired differences between two
        images of one prompt break an alignment difference down by kind).
        """
        scores = alignment_scores(images, prompts, self.settings)
        per_image = {key: scores[key].float().cpu() for key in ("alignment", "all_correct", "count_correct")}
        correct = scores["correct"].float().cpu()  # (B, 4)
        return {**per_image, **{f"{kind}_correct": correct[:, i] for i, kind in enumerate(FACT_KINDS)}}

    def per_sample(self) -> torch.Tensor:
        """Per-image alignment seen so far, in order (B_total,) — after ``compute()`` on DDP, those of this rank."""
        return dim_zero_cat(self.alignment) if self.alignment else torch.zeros(0, device=self.device)

    def compute(self) -> dict[str, torch.Tensor]:
        """Means over every image seen (see the class docstring)."""
        if not self.alignment:
            raise RuntimeError("ShapesAlignment.compute() was called before any update().")
        return summarize(dim_zero_cat(self.alignment), dim_zero_cat(self.all_correct),
                         dim_zero_cat(self.count_correct), self.correct, self.total)

    def log_name(self, split: str) -> str:
        """The logged key prefix, ``"val/shapes_alignment"``-style."""
        return f"{split}/{self.name}"


def shapes_alignment(
    images: torch.Tensor,
    prompts: Sequence[str | PromptSpec],
    settings: ReaderSettings | None = None,
    reduction: str = "mean",
) -> dict[str, torch.Tensor]:
    """Functional :class:`ShapesAlignment`.

    Args:
        images: (B, 3, H, W) in [0, 1].
        prompts: one shapes prompt (or :class:`PromptSpec`) per image.
        settings: reader thresholds.
        reduction: ``"mean"`` for ``compute()``'s dict of means; ``"none"`` for per-image ``alignment``,
            ``all_correct``, ``count_correct`` (B,) and per-kind ``correct`` / ``total`` (B, 4).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
    scores = alignment_scores(images, prompts, settings)
    return scores if reduction == "none" else summarize(**scores)
