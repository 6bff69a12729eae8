"""Named splits of the shapes world and the seeded sampling of scenes in each.

* ``train``, ``validation`` and ``test`` draw from the same distribution over the *seen* color–shape pairs; each
  split has its own seed stream (``numpy.random.default_rng([split_code, seed])``), so scene *i* of one split is
  not scene *i* of another. Prompts recur across them: the world has about 1,500 distinct prompts.
* ``heldout`` holds the compositional test: every scene contains at least one of :data:`HELD_OUT_PAIRS`, color–shape
  bindings that no scene of the other splits contains (each of those colors and shapes is still seen, with other
  partners).

A scene is a pure function of ``(split, seed)`` and the sampling settings; no global random state is read.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from goldennoise.shapes.world import COLORS, POSITIONS, RELATIONS, SHAPES, ObjectSpec, Placement, PromptSpec, Scene

SPLITS: dict[str, int] = {"train": 0, "validation": 1, "test": 2, "heldout": 3}
"""Split name → the code that starts its seed sequence."""

HELD_OUT_PAIRS: frozenset[ObjectSpec] = frozenset({
    ObjectSpec("red", "cross"), ObjectSpec("green", "circle"),
    ObjectSpec("blue", "triangle"), ObjectSpec("yellow", "square"),
})  # fmt: skip
"""Color–shape bindings never rendered outside the ``heldout`` split: each shape once, four different colors."""

ALL_PAIRS: tuple[ObjectSpec, ...] = tuple(ObjectSpec(c, s) for c, s in itertools.product(COLORS, SHAPES))
SEEN_PAIRS: tuple[ObjectSpec, ...] = tuple(p for p in ALL_PAIRS if p not in HELD_OUT_PAIRS)
_HELD_OUT_ORDERED: tuple[ObjectSpec, ...] = tuple(p for p in ALL_PAIRS if p in HELD_OUT_PAIRS)

GRID_CENTERS: tuple[float, float, float] = (0.2, 0.5, 0.8)
"""Object centers of the grid columns (and rows) as fractions of the side; the reader's cells are the thirds."""

_PAIR_ROWS = tuple((a, b) for a in range(3) for b in range(3) if abs(a - b) <= 1)
"""Cross-axis cells of a two-object layout: off by at most one, so the relation's axis dominates by 2×."""


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _sample_objects(rng: np.random.Generator, count: int, held_out: bool) -> tuple[ObjectSpec, ...]:
    if not held_out:
        first = _pick(rng, SEEN_PAIRS)
        partners = [p for p in SEEN_PAIRS if p.color != first.color]
        return (first,) if count == 1 else (first, _pick(rng, partners))
    novel = _pick(rng, _HELD_OUT_ORDERED)
    if count == 1:
        return (novel,)
    partner = _pick(rng, [p for p in ALL_PAIRS if p.color != novel.color])
    return (novel, partner) if rng.random() < 0.5 else (partner, novel)


def _pair_cells(relation: str, rng: np.random.Generator) -> tuple[tuple[int, int], tuple[int, int]]:
    # (row, col) of the first and second object: the relation's axis spans the grid (cells 0 and 2).
    along = (0, 2) if relation in ("left of", "above") else (2, 0)
    across = _pick(rng, _PAIR_ROWS)
    if relation in ("left of", "right of"):
        return (across[0], along[0]), (across[1], along[1])
    return (along[0], across[0]), (along[1], across[1])


def _place(rng: np.random.Generator, row: int, col: int, size_range: tuple[float, float], jitter: float) -> Placement:
    dx, dy = rng.uniform(-jitter, jitter, size=2)
    return Placement(x=GRID_CENTERS[col] + float(dx), y=GRID_CENTERS[row] + float(dy),
                     size=float(rng.uniform(*size_range)))


def sample_scene(
    seed: int,
    split: str = "train",
    two_object_prob: float = 0.5,
    size_range: tuple[float, float] = (0.25, 0.3125),
    jitter: float = 1.0 / 32.0,
) -> Scene:
    """The scene of ``seed`` in ``split``.

    Args:
        seed: non-negative integer; with ``split`` it fixes the scene.
        split: one of :data:`SPLITS`.
        two_object_prob: chance of a two-object scene.
        size_range: bounding-box side range, fractions of the image side (8–10 px at 32 px).
        jitter: largest shift of an object's center from its grid cell center, fraction of the side (1 px at 32).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {list(SPLITS)}.")
    if seed < 0:
        raise ValueError(f"Scene seeds are non-negative integers, got {seed}.")
    rng = np.random.default_rng([SPLITS[split], int(seed)])
    count = 2 if rng.random() < two_object_prob else 1
    objects = _sample_objects(rng, count, held_out=split == "heldout")
    if count == 1:
        position = int(rng.integers(len(POSITIONS)))
        spec = PromptSpec(objects, position=POSITIONS[position])
        return Scene(spec, (_place(rng, position // 3, position % 3, size_range, jitter),))
    relation = _pick(rng, RELATIONS)
    cells = _pair_cells(relation, rng)
    return Scene(PromptSpec(objects, relation=relation), tuple(_place(rng, *c, size_range, jitter) for c in cells))


def sample_scenes(seeds: Sequence[int], split: str = "train", **settings: Any) -> list[Scene]:
    """The scenes of several seeds in one split (``settings`` as in :func:`sample_scene`)."""
    return [sample_scene(seed, split, **settings) for seed in seeds]


def has_held_out_pair(spec: PromptSpec) -> bool:
    """Whether any object of ``spec`` is one of :data:`HELD_OUT_PAIRS`."""
    return any(obj in HELD_OUT_PAIRS for obj in spec.objects)
