"""How exact the alignment metric is on renders: the check behind the ≥ 98 % clean / ≥ 95 % corrupted bar.

An image counts as read exactly when the metric judges its own prompt fully satisfied (every fact, right object
count) *and* judges a copy of the prompt with one fact changed at exactly (n - 1) / n with that fact failing, so
both missed and invented facts count as errors.

:func:`reader_report` also gives each condition's per-fact accuracy (the metric's own ``color``, ``shape``,
``position``, ``relation`` and ``count`` on the true prompts) and a confusion matrix of shapes; a condition is any
``corrupt(images, generator)``, e.g. :func:`~goldennoise.shapes.augment.vae_roundtrip` of a backbone, which is what
generated images look like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from goldennoise.shapes.alignment import scores_of_objects, summarize
from goldennoise.shapes.augment import CORRUPTIONS, Corruption
from goldennoise.shapes.reader import DetectedObject, ReaderSettings, read_objects
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
    return _exact(read_objects(images, settings), [s.spec for s in scenes], seed)


def _exact(objects: Sequence[Sequence[DetectedObject]], specs: Sequence[PromptSpec], seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    perturbed = [perturb_one_fact(spec, rng)[0] for spec in specs]
    true, false = scores_of_objects(objects, specs), scores_of_objects(objects, perturbed)
    stated = true["total"].sum(dim=1)
    one_off = (false["alignment"] - (stated - 1) / stated).abs() < 1e-6
    return (true["all_correct"] == 1) & one_off


def shape_confusion(objects: Sequence[Sequence[DetectedObject]], scenes: Sequence[Scene]) -> torch.Tensor:
    """Counts of (color, true shape, shape read) over the scenes' objects: ``(colors, shapes, shapes + 1)`` int64.

    Sum over the first axis for the confusion of shapes; per color, bindings (e.g. the held-out pairs) can be told
    apart. Each object is paired with the largest object read in its color (the objects of a scene differ in
    color); the last column counts objects whose color was not found.
    """
    confusion = torch.zeros(len(COLORS), len(SHAPES), len(SHAPES) + 1, dtype=torch.long)
    for read, scene in zip(objects, scenes, strict=True):
        for obj in scene.spec.objects:
            same_color = [o.shape for o in read if o.color == obj.color]  # largest first
            column = SHAPES.index(same_color[0]) if same_color else len(SHAPES)
            confusion[list(COLORS).index(obj.color), SHAPES.index(obj.shape), column] += 1
    return confusion


@dataclass(frozen=True)
class ConditionReport:
    """How the reader does on one condition.

    Args:
        exact: share of images read exactly (module docstring).
        facts: the metric's means on the true prompts: ``alignment``, ``all_correct``, ``count`` and the per-fact
            accuracies ``color``, ``shape``, ``position``, ``relation``.
        confusion: :func:`shape_confusion`.
    """

    exact: float
    facts: dict[str, float]
    confusion: torch.Tensor


def reader_report(scenes: Sequence[Scene], conditions: Mapping[str, Corruption], size: int = 32, seed: int = 0,
                  settings: ReaderSettings | None = None) -> dict[str, ConditionReport]:
    """Read ``scenes`` rendered under each condition: exact reads, per-fact accuracy and the shape confusion.

    Args:
        scenes: the scenes to render.
        conditions: name → ``corrupt(images, generator)`` (e.g. :data:`CORRUPTIONS`, a ``vae_roundtrip``).
        size: image side in pixels.
        seed: seed of the corruptions and of the fact perturbations.
        settings: reader thresholds.
    """
    clean = render_scenes(scenes, size)
    specs = [s.spec for s in scenes]
    reports = {}
    for name, corrupt in conditions.items():
        objects = read_objects(corrupt(clean, generator=torch.Generator().manual_seed(seed)), settings)
        means = summarize(**scores_of_objects(objects, specs))
        reports[name] = ConditionReport(exact=float(_exact(objects, specs, seed).float().mean()),
                                        facts={k: float(v) for k, v in means.items()},
                                        confusion=shape_confusion(objects, scenes))
    return reports


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
    reports = reader_report(scenes, {name: CORRUPTIONS[name] for name in corruptions}, size, seed, settings)
    return {name: report.exact for name, report in reports.items()}
