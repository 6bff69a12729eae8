"""Scorers of an NPD collection: a name → ``score(images, prompts) -> (B,)`` map built once per run.

Each scorer is the registered goldennoise metric (:mod:`goldennoise.metrics.registry`) read through its primary
per-sample score, so a collection scores exactly as an evaluation does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from goldennoise.collection.config import ScorerSpec
from goldennoise.metrics.registry import build_metric, primary_key, sample_scores

ScoreFn = Callable[[torch.Tensor, Sequence[str]], torch.Tensor]


def build_scorer(spec: ScorerSpec) -> ScoreFn:
    """Load ``spec``'s weights now (so a missing file fails before any collection) and return its score function."""
    options = {"version": spec.version} if spec.metric == "hpsv2" else {}
    metric = build_metric(spec.metric, spec.model, **options)
    key = primary_key(metric)
    return lambda images, prompts: sample_scores(metric, images, prompts)[key]


def build_scorers(specs: Sequence[ScorerSpec]) -> dict[str, ScoreFn]:
    """Score functions by column name; column names must be unique."""
    columns = [s.column for s in specs]
    if len(set(columns)) != len(columns):
        raise ValueError(f"Scorer names must be unique, got {columns}.")
    return {spec.column: build_scorer(spec) for spec in specs}
