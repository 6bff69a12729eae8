"""Scorers of an NPD collection: a name → ``score(images, prompts) -> (B,)`` map built once per run."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from goldennoise.collection.config import ScorerSpec

ScoreFn = Callable[[torch.Tensor, Sequence[str]], torch.Tensor]


def _tiny(metric: str):
    from goldennoise.metrics import tiny

    builders = {"hpsv2": tiny.hpsv2_scorer, "pickscore": tiny.pickscore_scorer, "clip_score": tiny.clip_scorer,
                "aesthetic": tiny.aesthetic_scorer, "image_reward": tiny.image_reward_scorer}
    return builders[metric]()


def _load(spec: ScorerSpec):
    from goldennoise.metrics.aesthetic import load_aesthetic
    from goldennoise.metrics.clip_score import load_clip_scorer
    from goldennoise.metrics.hps import load_hpsv2
    from goldennoise.metrics.image_reward import load_image_reward
    from goldennoise.metrics.pickscore import load_pickscore

    if spec.model == "tiny":
        return _tiny(spec.metric)
    loaders = {"hpsv2": lambda m: load_hpsv2(spec.version, m), "pickscore": load_pickscore,
               "image_reward": load_image_reward, "aesthetic": load_aesthetic, "clip_score": load_clip_scorer}
    return loaders[spec.metric](spec.model)


def _shapes_score(images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
    from goldennoise.metrics.shapes_alignment import shapes_alignment

    return shapes_alignment(images, list(prompts), reduction="none")["alignment"].float()


def build_scorer(spec: ScorerSpec) -> ScoreFn:
    """Load ``spec``'s weights now (so a missing file fails before any collection) and return its score function."""
    from goldennoise.metrics import functional as F

    if spec.metric == "shapes_alignment":
        return _shapes_score
    functions = {"hpsv2": F.hpsv2_score, "pickscore": F.pickscore, "image_reward": F.image_reward,
                 "aesthetic": F.aesthetic_score, "clip_score": F.clip_score}
    scorer = _load(spec)
    return lambda images, prompts: functions[spec.metric](images, list(prompts), model=scorer)


def build_scorers(specs: Sequence[ScorerSpec]) -> dict[str, ScoreFn]:
    """Score functions by column name; column names must be unique."""
    columns = [s.column for s in specs]
    if len(set(columns)) != len(columns):
        raise ValueError(f"Scorer names must be unique, got {columns}.")
    return {spec.column: build_scorer(spec) for spec in specs}
