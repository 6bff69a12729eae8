"""The exact alignment metric: the reader's accuracy, the fact logic, and the torchmetrics wrapper."""

import math

import numpy as np
import pytest
import torch

from goldennoise.metrics.shapes_alignment import ShapesAlignment, shapes_alignment
from goldennoise.shapes import (
    ObjectSpec,
    Placement,
    PromptSpec,
    Scene,
    alignment_scores,
    parse_prompt,
    read_objects,
    render_scene,
    render_scenes,
    sample_scenes,
    to_prompt,
)
from goldennoise.shapes.accuracy import perturb_one_fact, reader_accuracy
from goldennoise.shapes.augment import CORRUPTIONS


def scene(*objects, position=None, relation=None, placements):
    spec = PromptSpec(tuple(ObjectSpec(c, s) for c, s in objects), position=position, relation=relation)
    return Scene(spec, tuple(Placement(*p) for p in placements))


RED_CIRCLE_TOP_LEFT = scene(("red", "circle"), position="top left", placements=[(0.2, 0.2, 0.3)])
RED_LEFT_OF_BLUE = scene(("red", "triangle"), ("blue", "cross"), relation="left of",
                         placements=[(0.2, 0.5, 0.3), (0.8, 0.5, 0.3)])


@pytest.fixture(scope="module")
def batch():
    scenes = sample_scenes(range(24), "test") + sample_scenes(range(8), "heldout")
    return render_scenes(scenes), [to_prompt(s.spec) for s in scenes]


# Measured with benchmarks/shapes_metric_accuracy.py on 2,000 test and 2,000 heldout scenes at 32 px: 1.000 exact
# reads in every condition (clean, blur σ=1 px, noise σ=0.05, color jitter 0.3/0.3/0.3/0.05, all three combined).
# Here a fast subset, held to the bars.
@pytest.mark.parametrize("split, count", [("test", 200), ("heldout", 100)])
def test_reader_is_exact_on_clean_held_out_renders(split, count):
    accuracy = reader_accuracy(sample_scenes(range(10_000, 10_000 + count), split), corruptions=["clean"])
    assert accuracy["clean"] >= 0.98


@pytest.mark.parametrize("corruption", [c for c in CORRUPTIONS if c != "clean"])
def test_reader_is_robust_to_corruptions(corruption):
    accuracy = reader_accuracy(sample_scenes(range(20_000, 20_100), "test"), corruptions=[corruption], seed=1)
    assert accuracy[corruption] >= 0.95


def test_reader_reads_a_64px_render():
    (obj,) = read_objects(render_scene(RED_CIRCLE_TOP_LEFT, size=64)[None])[0]
    assert (obj.color, obj.shape) == ("red", "circle")
    assert obj.x == pytest.approx(0.2, abs=0.01) and obj.width == pytest.approx(0.3, abs=0.02)


def test_reader_finds_nothing_on_a_blank_image():
    assert read_objects(torch.zeros(1, 3, 32, 32)) == [[]]


@pytest.mark.parametrize("prompt, expected", [
    ("a red circle at the top left", [1, 1, 1, 0]),
    ("a red square at the top left", [1, 0, 1, 0]),
    ("a blue circle at the center", [0, 1, 0, 0]),
])
def test_each_fact_is_checked_on_its_own(prompt, expected):
    scores = alignment_scores(render_scene(RED_CIRCLE_TOP_LEFT)[None], [prompt])
    assert scores["correct"][0].tolist() == expected
    assert scores["total"][0].tolist() == [1, 1, 1, 0]
    assert scores["alignment"][0].item() == pytest.approx(sum(expected) / 3)


@pytest.mark.parametrize("prompt, alignment", [
    ("a red triangle left of a blue cross", 1.0),
    ("a red triangle right of a blue cross", 4 / 5),
    ("a blue cross right of a red triangle", 1.0),
    ("a blue cross left of a red triangle", 4 / 5),
    ("a red triangle left of a green cross", 4 / 5),  # the blue cross still satisfies "cross" and the relation
    ("a red triangle left of a green circle", 3 / 5),
])
def test_relations_follow_the_object_order(prompt, alignment):
    scores = alignment_scores(render_scene(RED_LEFT_OF_BLUE)[None], [prompt])
    assert scores["alignment"][0].item() == pytest.approx(alignment)


def test_an_extra_object_fails_all_correct_but_not_alignment():
    image = render_scene(RED_LEFT_OF_BLUE)[None]
    scores = alignment_scores(image, ["a red triangle at the center left"])
    assert scores["alignment"].item() == 1.0
    assert scores["count_correct"].item() == 0.0 and scores["all_correct"].item() == 0.0


def test_a_blank_image_satisfies_nothing():
    prompts = ["a red circle at the center", "a red circle above a blue cross"]
    scores = alignment_scores(torch.zeros(2, 3, 32, 32), prompts)
    assert scores["alignment"].tolist() == [0.0, 0.0] and scores["total"].sum(dim=1).tolist() == [3, 5]


def test_perturbing_a_fact_costs_exactly_that_fact(batch):
    images, prompts = batch
    rng = np.random.default_rng(0)
    specs = [parse_prompt(p) for p in prompts]
    perturbed = [perturb_one_fact(spec, rng) for spec in specs]
    scores = alignment_scores(images, [p for p, _ in perturbed])
    for spec, (_, index), alignment in zip(specs, perturbed, scores["alignment"].tolist(), strict=True):
        assert alignment == pytest.approx((len(spec.facts) - 1) / len(spec.facts)), (spec, index)


def test_metric_accumulates_like_the_functional(batch):
    images, prompts = batch
    metric = ShapesAlignment()
    metric.update(images[:10], prompts[:10])
    metric.update(images[10:], prompts[10:])
    result, functional = metric.compute(), shapes_alignment(images, prompts)
    assert result.keys() == functional.keys() == {"alignment", "all_correct", "count", "color", "shape", "position",
                                                  "relation"}
    for key in result:
        assert torch.equal(result[key], functional[key]), key
    assert result["alignment"].item() == 1.0 and result["all_correct"].item() == 1.0
    assert metric.per_sample().shape == (len(prompts),)


def test_metric_scores_mismatched_prompts_low(batch):
    images, prompts = batch
    result = shapes_alignment(images, prompts[1:] + prompts[:1])
    assert result["alignment"] < 0.5 and result["all_correct"] == 0


def test_metric_states_merge_like_ddp_gathering(batch):
    images, prompts = batch
    whole, left, right = ShapesAlignment(), ShapesAlignment(), ShapesAlignment()
    whole.update(images, prompts)
    left.update(images[:13], prompts[:13])
    right.update(images[13:], prompts[13:])
    left.merge_state(right)
    assert {k: v.item() for k, v in left.compute().items()} == {k: v.item() for k, v in whole.compute().items()}
    reductions = {k: f.__name__ for k, f in whole._reductions.items()}
    assert reductions["correct"].endswith("sum") and reductions["alignment"].endswith("cat")


def test_metric_reports_nan_for_fact_kinds_never_stated():
    metric = ShapesAlignment()
    metric.update(render_scene(RED_CIRCLE_TOP_LEFT)[None], ["a red circle at the top left"])
    assert math.isnan(metric.compute()["relation"].item())


def test_functional_reduction_none_gives_per_image_scores(batch):
    images, prompts = batch
    scores = shapes_alignment(images[:3], prompts[:3], reduction="none")
    assert scores["alignment"].shape == (3,) and scores["correct"].shape == (3, 4)
    with pytest.raises(ValueError, match="reduction"):
        shapes_alignment(images[:3], prompts[:3], reduction="sum")


@pytest.mark.parametrize("images, prompts, error, message", [
    (torch.zeros(2, 32, 32), ["a red circle at the center"] * 2, ValueError, r"\(B, 3, H, W\)"),
    (torch.zeros(2, 3, 32, 16), ["a red circle at the center"] * 2, ValueError, "square"),
    (torch.full((2, 3, 32, 32), -1.0), ["a red circle at the center"] * 2, ValueError, r"\[0, 1\]"),
    (torch.zeros(2, 3, 32, 32), ["a red circle at the center"], ValueError, "2 images but 1 prompts"),
    (torch.zeros(1, 3, 32, 32), ["a purple circle at the center"], ValueError, "not a shapes prompt"),
    (torch.zeros(1, 3, 32, 32), "a red circle at the center", TypeError, "sequence of prompts"),
])
def test_bad_input_is_named(images, prompts, error, message):
    with pytest.raises(error, match=message):
        ShapesAlignment().update(images, prompts)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_compute_before_update_is_an_error():
    with pytest.raises(RuntimeError, match="before any update"):
        ShapesAlignment().compute()


def test_per_sample_scores_count_the_facts_satisfied_per_kind():
    image = render_scene(RED_LEFT_OF_BLUE)[None]
    scores = ShapesAlignment().sample_scores(image, ["a red triangle left of a green cross"])  # the cross is blue
    counts = {kind: scores[f"{kind}_correct"].item() for kind in ("color", "shape", "position", "relation")}
    assert counts == {"color": 1.0, "shape": 2.0, "position": 0.0, "relation": 1.0}
    assert scores["alignment"].item() == pytest.approx(sum(counts.values()) / 5)
