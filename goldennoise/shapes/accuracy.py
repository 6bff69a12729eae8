"""How exact the alignment metric is on renders: the check behind the ≥ 98 % clean / ≥ 95 % corrupted bar.

An image counts as read exactly when the metric judges its own prompt fully satisfied (every fact, right object
count) *and* judges a copy of the prompt with one fact changed at exactly (n - 1) / n with that fact failing, so
both missed and invented facts count as errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from goldennoise.shapes.alignment import alignment_scores
from goldennoise.shapes.augment import CORRUPTIONS
from goldennoise.shapes.reader import ReaderSettings
from goldennoise.shapes.render import render_scenes
from goldennoise.shapes.world import COLORS, POSITIONS, RELATIONS, SHAPES, ObjectSpec, PromptSpec, Scene


def _other(options: Sequence[str], current: str, rng: np.random.Generator, avoid: str | None = None) -> str:
    choices = [o for o in options if o not in (current, avoid)]
    return choices[int(rng.integers(len(choices)))]


def perturb_one_fact(spec: PromptSpec, rng: np.random.Generator) -> tuple[PromptSpec, int]:
    """``spec`` with one fact changed at random, and that fact's index in ``spec.facts``."""
    index = int(rng.integers(len(spec.facts)))
    kind = spec.facts[index]
    if kind == "position":
        return replace(spec, position=_other(POSITIONS, spec.position, rng)), index
    if kind == "relation":
        return replace(spec, relation=_other(RELATIONS, spec.relation, rng)), index
    objects = list(spec.objects)
    obj = objects[index // 2]
    other_color = objects[1 - index // 2].color if len(objects) == 2 else None
    objects[index // 2] = (ObjectSpec(_other(list(COLORS), obj.color, rng, avoid=other_color), obj.shape)
                           if kind == "color" else ObjectSpec(obj.color, _other(SHAPES, obj.shape, rng)))
    return replace(spec, objects=tuple(objects)), index


def exact_reads(images: torch.Tensor, scenes: Sequence[Scene], seed: int = 0,
                settings: ReaderSettings | None = None) -> torch.Tensor:
    """Whether each image is read exactly (see the module docstring), ``(B,)`` bool."""
    rng = np.random.default_rng(seed)
    specs = [s.spec for s in scenes]
    perturbed = [perturb_one_fact(spec, rng)[0] for spec in specs]
    true = alignment_scores(images, specs, settings)
    false = alignment_scores(images, perturbed, settings)
    stated = true["total"].sum(dim=1)
    one_off = (false["alignment"] - (stated - 1) / stated).abs() < 1e-6
    return (true["all_correct"] == 1) & one_off


def reader_accuracy(scenes: Sequence[Scene], size: int = 32, corruptions: Sequence[str] = tuple(CORRUPTIONS),
                    seed: int = 0, settings: ReaderSettings | None = None) -> dict[str, float]:
    """Share of ``scenes`` read exactly after each named corruption of :data:`CORRUPTIONS`.

    Args:
        scenes: the scenes to render.
        size: image side in pixels.
        corruptions: names of the conditions to measure.
        seed: seed of the corruptions and of the fact perturbations.
        settings: reader thresholds.
    """
    unknown = set(corruptions) - set(CORRUPTIONS)
    if unknown:
        raise ValueError(f"Unknown corruptions {sorted(unknown)}; choose from {list(CORRUPTIONS)}.")
    clean = render_scenes(scenes, size)
    accuracy = {}
    for name in corruptions:
        images = CORRUPTIONS[name](clean, generator=torch.Generator().manual_seed(seed))
        accuracy[name] = float(exact_reads(images, scenes, seed, settings).float().mean())
    return accuracy
