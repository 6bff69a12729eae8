"""The shapes world: specs, prompt grammar, renderer and splits."""

import itertools

import pytest
import torch

from goldennoise.shapes import (
    COLORS,
    HELD_OUT_PAIRS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SPLITS,
    ObjectSpec,
    Placement,
    PromptSpec,
    Scene,
    has_held_out_pair,
    parse_prompt,
    render_scene,
    render_scenes,
    sample_scene,
    sample_scenes,
    to_prompt,
)
from goldennoise.shapes.render import coverage


def all_specs():
    pairs = [ObjectSpec(c, s) for c, s in itertools.product(COLORS, SHAPES)]
    singles = [PromptSpec((p,), position=pos) for p in pairs for pos in POSITIONS]
    doubles = [PromptSpec((a, b), relation=r) for a in pairs for b in pairs for r in RELATIONS if a.color != b.color]
    return singles + doubles


def test_vocabulary_meets_the_issue():
    assert len(COLORS) >= 6 and len(SHAPES) >= 4 and len(POSITIONS) == 9 and len(RELATIONS) == 4


def test_every_spec_round_trips_through_its_prompt():
    specs = all_specs()
    assert len(specs) == 6 * 4 * 9 + 24 * 20 * 4
    for spec in specs:
        assert parse_prompt(to_prompt(spec)) == spec


def test_prompts_read_as_english():
    spec = PromptSpec((ObjectSpec("red", "circle"), ObjectSpec("blue", "square")), relation="left of")
    assert to_prompt(spec) == "a red circle left of a blue square"
    single = PromptSpec((ObjectSpec("green", "cross"),), position="top left")
    assert to_prompt(single) == "a green cross at the top left"


def test_parse_tolerates_case_spacing_and_a_period():
    assert parse_prompt("  A Red  circle at the TOP left. ") == parse_prompt("a red circle at the top left")


@pytest.mark.parametrize("prompt", ["a red dog at the top left", "a red circle", "a red circle near a blue square",
                                    "red circle at the center", "a red circle left of a red square", ""])
def test_parse_rejects_prompts_outside_the_grammar(prompt):
    with pytest.raises(ValueError, match="shapes prompt|differ in color"):
        parse_prompt(prompt)


@pytest.mark.parametrize("kwargs, message", [
    ({"objects": (ObjectSpec("red", "circle"),)}, "needs a position"),
    ({"objects": (ObjectSpec("red", "circle"),), "position": "center", "relation": "above"}, "no relation"),
    ({"objects": (ObjectSpec("red", "circle"), ObjectSpec("blue", "cross"))}, "needs a relation"),
    ({"objects": ()}, "one or two objects"),
])
def test_invalid_specs_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PromptSpec(**kwargs)


def test_unknown_color_or_shape_is_named():
    with pytest.raises(ValueError, match="'orange'"):
        ObjectSpec("orange", "circle")
    with pytest.raises(ValueError, match="'star'"):
        ObjectSpec("red", "star")


def test_renderer_is_deterministic_from_the_seed():
    first = render_scenes(sample_scenes(range(16), "train"))
    again = render_scenes(sample_scenes(range(16), "train"))
    other = render_scenes(sample_scenes(range(16, 32), "train"))
    assert torch.equal(first, again)
    assert first.shape == (16, 3, 32, 32) and first.min() >= 0 and first.max() <= 1
    assert not torch.equal(first, other)


def test_render_draws_colors_on_black_with_coverage_edges():
    scene = Scene(PromptSpec((ObjectSpec("blue", "square"),), position="center"), (Placement(0.5, 0.5, 0.25),))
    image = render_scene(scene, size=32)
    assert image[:, 16, 16].tolist() == [0.0, 0.0, 1.0]
    assert image[:, 0, 0].tolist() == [0.0, 0.0, 0.0]
    assert image[2].sum().item() == pytest.approx(8 * 8)  # an 8 × 8 px square, pixel aligned


@pytest.mark.parametrize("shape, area", [("square", 4.0), ("circle", torch.pi), ("triangle", 2.0),
                                         ("cross", 4.0 * 5 / 9)])
def test_coverage_integrates_to_the_shape_area(shape, area):
    half = 10.0  # half-side in pixels of a shape centred in a 64 px image
    alpha = coverage(shape, Placement(0.5, 0.5, 2 * half / 64), size=64, supersample=8)
    assert alpha.sum().item() == pytest.approx(area * half**2, rel=0.01)


def test_render_scales_with_the_image_size():
    scene = sample_scene(3, "test")
    small, large = render_scene(scene, 32), render_scene(scene, 64)
    pooled = torch.nn.functional.avg_pool2d(large[None], 2)[0]
    assert (pooled - small).abs().mean() < 0.02


def test_sample_scene_depends_on_split_and_seed_only():
    assert sample_scene(5, "test") == sample_scene(5, "test")
    assert len({sample_scene(5, split) for split in SPLITS}) == len(SPLITS)


def test_splits_are_disjoint_and_heldout_combinations_never_seen():
    scenes = {split: sample_scenes(range(1500), split) for split in SPLITS}
    for split in ("train", "validation", "test"):
        assert not any(has_held_out_pair(s.spec) for s in scenes[split]), split
    assert all(has_held_out_pair(s.spec) for s in scenes["heldout"])
    assert {obj for s in scenes["heldout"] for obj in s.spec.objects} >= HELD_OUT_PAIRS
    instances = {split: {(s.spec, s.placements) for s in group} for split, group in scenes.items()}
    for a, b in itertools.combinations(SPLITS, 2):
        assert not instances[a] & instances[b], (a, b)


def test_train_split_covers_the_world():
    specs = [s.spec for s in sample_scenes(range(3000), "train")]
    assert {o.color for s in specs for o in s.objects} == set(COLORS)
    assert {o.shape for s in specs for o in s.objects} == set(SHAPES)
    assert {s.position for s in specs} - {None} == set(POSITIONS)
    assert {s.relation for s in specs} - {None} == set(RELATIONS)
    assert 0.4 < sum(len(s.objects) == 2 for s in specs) / len(specs) < 0.6


def test_two_object_layouts_keep_objects_apart_and_the_relation_dominant():
    for scene in sample_scenes(range(300), "train", two_object_prob=1.0):
        a, b = scene.placements
        dx, dy = b.x - a.x, b.y - a.y
        along, across = (dx, dy) if scene.spec.relation in ("left of", "right of") else (dy, dx)
        assert abs(along) > 1.5 * abs(across)
        assert abs(along) - (a.size + b.size) / 2 > 0.15  # at least ~5 px of background between them at 32 px


def test_sample_scene_rejects_unknown_splits_and_negative_seeds():
    with pytest.raises(ValueError, match="Unknown split 'dev'"):
        sample_scene(0, "dev")
    with pytest.raises(ValueError, match="non-negative"):
        sample_scene(-1)
