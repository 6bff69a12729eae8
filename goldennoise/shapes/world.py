"""The vocabulary of the shapes world and the records that describe a prompt and a rendered scene.

A *prompt spec* is what a prompt says (colors, shapes, and either a grid position or a relation); a *scene* is one
rendering of it (the spec plus where and how large each object is drawn). Geometry is stored as fractions of the
image side, so one scene renders at any resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "yellow": (1.0, 1.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "blue": (0.0, 0.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
}
"""Color name → RGB in [0, 1]. Fully saturated hues 60° apart, so a hue shift below 30° cannot flip a color."""

COLOR_HUES: dict[str, float] = {name: 60.0 * i for i, name in enumerate(COLORS)}
"""Color name → hue in degrees (red 0°, yellow 60°, …, magenta 300°)."""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
"""Shape names; ``triangle`` points up, ``cross`` is an upright plus sign with arms a third of its width."""

POSITIONS: tuple[str, ...] = (
    "top left", "top center", "top right",
    "center left", "center", "center right",
    "bottom left", "bottom center", "bottom right",
)  # fmt: skip
"""Cells of the 3 × 3 grid in row-major order: ``POSITIONS[3 * row + col]``."""

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
"""Spatial relations of the first object to the second, read along the dominant axis of their displacement."""

BACKGROUND: tuple[float, float, float] = (0.0, 0.0, 0.0)
"""Black: blurring an object into it darkens its pixels but keeps their hue."""


@dataclass(frozen=True)
class ObjectSpec:
    """One object a prompt asks for.

    Args:
        color: a key of :data:`COLORS`.
        shape: one of :data:`SHAPES`.
    """

    color: str
    shape: str

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise ValueError(f"Unknown color {self.color!r}; the shapes world has {list(COLORS)}.")
        if self.shape not in SHAPES:
            raise ValueError(f"Unknown shape {self.shape!r}; the shapes world has {list(SHAPES)}.")


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt says: one object at a grid position, or two objects of different colors and their relation.

    Args:
        objects: one or two objects, in prompt order.
        position: for one object, one of :data:`POSITIONS`; ``None`` for two.
        relation: for two objects, one of :data:`RELATIONS` (first object relative to the second); ``None`` for one.
    """

    objects: tuple[ObjectSpec, ...]
    position: str | None = None
    relation: str | None = None

    def __post_init__(self) -> None:
        if len(self.objects) == 1:
            self._check_single()
        elif len(self.objects) == 2:
            self._check_pair()
        else:
            raise ValueError(f"A shapes prompt has one or two objects, got {len(self.objects)}.")

    def _check_single(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"A one-object prompt needs a position in {list(POSITIONS)}, got {self.position!r}.")
        if self.relation is not None:
            raise ValueError(f"A one-object prompt has no relation, got {self.relation!r}.")

    def _check_pair(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"A two-object prompt needs a relation in {list(RELATIONS)}, got {self.relation!r}.")
        if self.position is not None:
            raise ValueError(f"A two-object prompt has no grid position, got {self.position!r}.")
        if self.objects[0].color == self.objects[1].color:
            raise ValueError(f"The two objects of a prompt must differ in color, both are {self.objects[0].color}.")

    @property
    def facts(self) -> tuple[str, ...]:
        """The fact kinds this prompt states, one entry per fact: 3 for one object, 5 for two."""
        if len(self.objects) == 1:
            return ("color", "shape", "position")
        return ("color", "shape", "color", "shape", "relation")


@dataclass(frozen=True)
class Placement:
    """Where one object is drawn, as fractions of the image side.

    Args:
        x: horizontal center of the object's bounding box (0 = left edge).
        y: vertical center of the bounding box (0 = top edge).
        size: side of the (square) bounding box.
    """

    x: float
    y: float
    size: float


@dataclass(frozen=True)
class Scene:
    """One rendering of a prompt spec: the spec and one placement per object, in the same order."""

    spec: PromptSpec
    placements: tuple[Placement, ...]

    def __post_init__(self) -> None:
        if len(self.placements) != len(self.spec.objects):
            raise ValueError(f"A scene needs one placement per object: {len(self.spec.objects)} objects, "
                             f"{len(self.placements)} placements.")
