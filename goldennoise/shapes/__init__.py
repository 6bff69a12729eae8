"""The shapes world: procedural scenes of one or two colored shapes, their prompts, and exact alignment scoring.

The embedded backbone is trained on this world; its images are scored exactly by reading the objects back
(:func:`alignment_scores`), so golden-noise methods can be measured offline.
"""

from goldennoise.shapes.alignment import FACT_KINDS, alignment_scores, summarize
from goldennoise.shapes.grammar import parse_prompt, to_prompt
from goldennoise.shapes.reader import DetectedObject, ReaderSettings, read_objects
from goldennoise.shapes.render import render_scene, render_scenes
from goldennoise.shapes.splits import HELD_OUT_PAIRS, SPLITS, has_held_out_pair, sample_scene, sample_scenes
from goldennoise.shapes.world import COLORS, POSITIONS, RELATIONS, SHAPES, ObjectSpec, Placement, PromptSpec, Scene

__all__ = [
    "COLORS", "FACT_KINDS", "HELD_OUT_PAIRS", "POSITIONS", "RELATIONS", "SHAPES", "SPLITS", "DetectedObject",
    "ObjectSpec", "Placement", "PromptSpec", "ReaderSettings", "Scene", "alignment_scores", "has_held_out_pair",
    "parse_prompt", "read_objects", "render_scene", "render_scenes", "sample_scene", "sample_scenes",
    "summarize", "to_prompt",
]
