r"""Exact text–image alignment for the shapes world: which facts of a prompt an image satisfies.

A one-object prompt states 3 facts (color, shape, grid position), a two-object prompt 5 (two colors, two shapes, the
relation). The prompt's objects are matched to the objects read from the image (:func:`read_objects`) by the
assignment that satisfies the most facts (ties: larger objects first); an object left unmatched fails its facts and
the relation. Per image:

.. math::
    \text{alignment} = \frac{\#\text{facts satisfied}}{\#\text{facts stated}}, \qquad
    \text{all\_correct} = [\text{every fact satisfied}] \wedge [\#\text{objects read} = \#\text{objects stated}]

``all_correct`` is GenEval's per-image success (Ghosh et al., 2023), with its counting rule applied to every prompt:
an extra object fails the image but not its alignment score.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from goldennoise.shapes.grammar import parse_prompt
from goldennoise.shapes.reader import DetectedObject, ReaderSettings, read_objects
from goldennoise.shapes.world import POSITIONS, PromptSpec

FACT_KINDS: tuple[str, ...] = ("color", "shape", "position", "relation")
"""Fact kinds, in the order of the per-kind tensors (``correct``/``total`` columns)."""


def grid_position(obj: DetectedObject) -> str:
    """The 3 × 3 cell (:data:`~goldennoise.shapes.world.POSITIONS`) holding the object's box center."""
    col, row = (min(max(int(t * 3.0), 0), 2) for t in (obj.x, obj.y))
    return POSITIONS[3 * row + col]


def relation_between(first: DetectedObject, second: DetectedObject) -> str:
    """The relation of ``first`` to ``second`` along the dominant axis of their displacement."""
    dx, dy = second.x - first.x, second.y - first.y
    if abs(dx) >= abs(dy):
        return "left of" if dx > 0 else "right of"
    return "above" if dy > 0 else "below"


def _single_facts(spec: PromptSpec, obj: DetectedObject | None) -> list[bool]:
    # [color, shape, position]
    if obj is None:
        return [False, False, False]
    want = spec.objects[0]
    return [obj.color == want.color, obj.shape == want.shape, grid_position(obj) == spec.position]


def _pair_facts(spec: PromptSpec, first: DetectedObject | None, second: DetectedObject | None) -> list[bool]:
    # [color 1, shape 1, color 2, shape 2, relation]
    facts = []
    for want, obj in zip(spec.objects, (first, second), strict=True):
        facts += [obj is not None and obj.color == want.color, obj is not None and obj.shape == want.shape]
    related = first is not None and second is not None and relation_between(first, second) == spec.relation
    return facts + [related]


def _best_facts(spec: PromptSpec, objects: Sequence[DetectedObject]) -> list[bool]:
    # The assignment of prompt objects to read objects (or None) satisfying most facts; the first best wins and
    # objects come largest first, so ties go to larger objects.
    candidates: list[DetectedObject | None] = [*objects, None]
    if len(spec.objects) == 1:
        options = (_single_facts(spec, obj) for obj in candidates)
    else:
        pairs = ((a, b) for a, b in itertools.product(candidates, repeat=2) if a is None or a is not b)
        options = (_pair_facts(spec, a, b) for a, b in pairs)
    return max(options, key=sum)


def fact_counts(spec: PromptSpec, objects: Sequence[DetectedObject]) -> tuple[torch.Tensor, torch.Tensor]:
    """Facts satisfied and facts stated per kind of :data:`FACT_KINDS`, each ``(4,)`` int64."""
    satisfied = _best_facts(spec, objects)
    correct, total = torch.zeros(len(FACT_KINDS), dtype=torch.long), torch.zeros(len(FACT_KINDS), dtype=torch.long)
    for kind, ok in zip(spec.facts, satisfied, strict=True):
        correct[FACT_KINDS.index(kind)] += int(ok)
        total[FACT_KINDS.index(kind)] += 1
    return correct, total


def as_specs(prompts: Sequence[str | PromptSpec]) -> list[PromptSpec]:
    """Prompt strings (parsed with :func:`parse_prompt`) or specs, as specs."""
    if isinstance(prompts, (str, PromptSpec)):
        raise TypeError("Pass a sequence of prompts (one per image), not a single prompt.")
    return [p if isinstance(p, PromptSpec) else parse_prompt(p) for p in prompts]


def alignment_scores(
    images: torch.Tensor, prompts: Sequence[str | PromptSpec], settings: ReaderSettings | None = None
) -> dict[str, torch.Tensor]:
    """Per-image fact checks of images against the prompts they were generated from.

    Args:
        images: ``(B, 3, H, W)`` RGB in [0, 1].
        prompts: ``B`` shapes prompts or :class:`PromptSpec` s.
        settings: reader thresholds.

    Returns:
        ``alignment`` ``(B,)`` float in [0, 1]; ``all_correct`` ``(B,)`` float 0/1; ``count_correct`` ``(B,)``
        float 0/1 (as many objects read as stated); ``correct`` and ``total`` ``(B, 4)`` int64 facts satisfied and
        stated per kind of :data:`FACT_KINDS`.
    """
    specs = as_specs(prompts)
    if len(specs) != len(images):
        raise ValueError(f"Got {len(images)} images but {len(specs)} prompts; pass one prompt per image.")
    return scores_of_objects(read_objects(images, settings), specs)


def scores_of_objects(
    objects: Sequence[Sequence[DetectedObject]], specs: Sequence[PromptSpec]
) -> dict[str, torch.Tensor]:
    """:func:`alignment_scores` of objects already read, one list per image, against one spec per image."""
    counts = [fact_counts(spec, objs) for spec, objs in zip(specs, objects, strict=True)]
    correct, total = torch.stack([c for c, _ in counts]), torch.stack([t for _, t in counts])  # (B, 4) each
    count_correct = torch.tensor([len(o) == len(s.objects) for o, s in zip(objects, specs, strict=True)]).float()
    alignment = correct.sum(dim=1) / total.sum(dim=1)
    all_correct = ((correct == total).all(dim=1).float() * count_correct)
    return {"alignment": alignment, "all_correct": all_correct, "count_correct": count_correct,
            "correct": correct, "total": total}


def summarize(
    alignment: torch.Tensor, all_correct: torch.Tensor, count_correct: torch.Tensor, correct: torch.Tensor,
    total: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Means over images: ``alignment``, ``all_correct``, ``count``, and each fact kind's accuracy (NaN if unstated).

    Args:
        alignment: ``(B,)`` per-image alignment.
        all_correct: ``(B,)`` per-image 0/1.
        count_correct: ``(B,)`` per-image 0/1.
        correct: facts satisfied per kind, ``(B, 4)`` or summed ``(4,)``.
        total: facts stated per kind, same shape as ``correct``.
    """
    if correct.dim() == 2:
        correct, total = correct.sum(dim=0), total.sum(dim=0)
    means = {"alignment": alignment.float().mean(), "all_correct": all_correct.float().mean(),
             "count": count_correct.float().mean()}
    for i, kind in enumerate(FACT_KINDS):
        means[kind] = correct[i].float() / total[i] if total[i] > 0 else torch.tensor(float("nan"))
    return means

