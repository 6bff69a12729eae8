"""The prompt grammar of the shapes world: spec → prompt and back, exactly.

Two forms::

    a <color> <shape> at the <position>        "a red circle at the top left"
    a <color> <shape> <relation> a <color> <shape>   "a red circle left of a blue square"

Parsing ignores case, surrounding and repeated whitespace and one trailing period; anything else is an error.
"""

from __future__ import annotations

import re

from goldennoise.shapes.world import COLORS, POSITIONS, RELATIONS, SHAPES, ObjectSpec, PromptSpec


def _alternatives(words: tuple[str, ...] | list[str]) -> str:
    # Longest first, so "top left" wins over a shorter alternative sharing its start.
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_OBJECT = rf"a (?P<color{{i}}>{_alternatives(list(COLORS))}) (?P<shape{{i}}>{_alternatives(SHAPES)})"
_SINGLE = re.compile(rf"{_OBJECT.format(i=0)} at the (?P<position>{_alternatives(POSITIONS)})")
_PAIR = re.compile(rf"{_OBJECT.format(i=0)} (?P<relation>{_alternatives(RELATIONS)}) {_OBJECT.format(i=1)}")


def to_prompt(spec: PromptSpec) -> str:
    """The prompt that states ``spec``, e.g. ``"a red circle left of a blue square"``."""
    first = f"a {spec.objects[0].color} {spec.objects[0].shape}"
    if spec.relation is None:
        return f"{first} at the {spec.position}"
    return f"{first} {spec.relation} a {spec.objects[1].color} {spec.objects[1].shape}"


def _normalise(prompt: str) -> str:
    text = " ".join(prompt.lower().split())
    return text[:-1].rstrip() if text.endswith(".") else text


def parse_prompt(prompt: str) -> PromptSpec:
    """The spec a shapes prompt states; inverse of :func:`to_prompt`.

    Raises:
        ValueError: the prompt does not follow the grammar (the message quotes it and shows both forms).
    """
    if not isinstance(prompt, str):
        raise TypeError(f"A shapes prompt is a string, got {type(prompt).__name__}.")
    text = _normalise(prompt)
    if match := _SINGLE.fullmatch(text):
        return PromptSpec((ObjectSpec(match["color0"], match["shape0"]),), position=match["position"])
    if match := _PAIR.fullmatch(text):
        objects = (ObjectSpec(match["color0"], match["shape0"]), ObjectSpec(match["color1"], match["shape1"]))
        return PromptSpec(objects, relation=match["relation"])
    raise ValueError(f"{prompt!r} is not a shapes prompt; write 'a <color> <shape> at the <position>' or "
                     f"'a <color> <shape> <relation> a <color> <shape>' with colors {list(COLORS)}, shapes "
                     f"{list(SHAPES)}, positions {list(POSITIONS)} and relations {list(RELATIONS)}.")
