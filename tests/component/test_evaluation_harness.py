"""The evaluation step on tiny backbones: every method's denoiser evaluations match the formula, pairs share noise."""

import pytest
import torch

from goldennoise.evaluation.harness import MethodSpec, check_method_output, evaluate_batch
from goldennoise.metrics.registry import build_metric
from goldennoise.noise.base import Compose, Gaussian, NoiseMethod, SamplerSettings
from goldennoise.noise.plugin import NPNetNoise
from goldennoise.noise.redenoise import Redenoise
from goldennoise.noise.selection import BestOfN

STEPS = 3
SHAPES_ITEMS = [(0, "a red circle left of a blue square", 0), (0, "a red circle left of a blue square", 1),
                (1, "a green triangle at the top left", 0)]


def _costs(records):
    return {r["method"]: r["cost"] for r in records}


def test_counted_evaluations_equal_the_formula_for_every_method(tiny_sdxl):
    metric = build_metric("clip_score", model="tiny")
    methods = [MethodSpec("gaussian", Gaussian(), 1.0), MethodSpec("cfg", Gaussian(), 3.0),
               MethodSpec("redenoise", Redenoise(denoise_guidance=5.5, inversion_guidance=1.0), 1.0),
               MethodSpec("best3", BestOfN(metric, n=3), 1.0),
               MethodSpec("chain", Compose([Redenoise(denoise_guidance=2.0, inversion_guidance=0.0),
                                            BestOfN(metric, n=2)]), 4.0)]
    items = [(0, "a fox", 0), (1, "a jay", 5)]
    records, images = evaluate_batch(tiny_sdxl, items, methods, [metric], SamplerSettings(steps=STEPS))
    cost = _costs(records)
    expected = {  # (method evaluations, sampling evaluations) per image
        "gaussian": (0, STEPS), "cfg": (0, 2 * STEPS), "redenoise": (2 + 1, STEPS), "best3": (3 * STEPS, 0),
        "chain": (2 + 1 + 2 * 2 * STEPS, 0)}
    for name, (method_evals, sampling_evals) in expected.items():
        assert cost[name]["method/evaluations"] == method_evals, name
        assert cost[name]["sampling/evaluations"] == sampling_evals, name
        assert cost[name]["method/backward"] == cost[name]["sampling/backward"] == 0
    assert len(records) == len(items) * len(methods)
    assert all(images[name].shape == (2, 3, 64, 64) for name in expected)
    # Gaussian and CFG start from the same seeds' noise, so their images differ only by the guidance
    assert not torch.equal(images["gaussian"], images["cfg"])


def test_npnet_costs_no_denoiser_evaluation_and_changes_the_noise(shapes):
    metric = build_metric("shapes_alignment")
    methods = [MethodSpec("gaussian", Gaussian()), MethodSpec("npnet", NPNetNoise("shapes"))]
    records, images = evaluate_batch(shapes, SHAPES_ITEMS, methods, [metric], SamplerSettings(steps=STEPS))
    cost = _costs(records)
    assert cost["npnet"]["method/evaluations"] == 0 and cost["npnet"]["sampling/evaluations"] == STEPS
    assert not torch.equal(images["gaussian"], images["npnet"])
    keys = set(records[0]["scores"])
    assert keys == {f"shapes_alignment/{key}" for key in ("alignment", "all_correct", "count_correct", "color_correct",
                                                           "shape_correct", "position_correct", "relation_correct")}


def test_best_of_n_keeps_the_best_candidate_and_never_loses_to_its_first(shapes):
    metric = build_metric("shapes_alignment")
    methods = [MethodSpec("gaussian", Gaussian()), MethodSpec("best4", BestOfN(metric, n=4))]
    records, _ = evaluate_batch(shapes, SHAPES_ITEMS, methods, [metric], SamplerSettings(steps=STEPS))
    score = {(r["method"], r["prompt_id"], r["seed"]): r["scores"]["shapes_alignment/alignment"] for r in records}
    for _, prompt_id, seed in [k for k in score if k[0] == "gaussian"]:
        assert score["best4", prompt_id, seed] >= score["gaussian", prompt_id, seed]


def test_budget_sets_best_of_n_from_the_sampling_cost():
    best = BestOfN(build_metric("shapes_alignment"), n=1)
    best.fit_budget(100, SamplerSettings(steps=10, guidance_scale=3.0))  # one sampling costs 20
    assert best.n == 5
    Compose([Gaussian(), best]).fit_budget(35, SamplerSettings(steps=10))
    assert best.n == 3


class _Shrink(NoiseMethod):
    def forward(self, noise, ctx):
        return noise[:, :2]


class _NaN(NoiseMethod):
    def forward(self, noise, ctx):
        return noise * float("nan")


@pytest.mark.parametrize(("method", "message"), [(_Shrink(), "must have shape"), (_NaN(), "NaN")])
def test_a_bad_method_output_is_one_clear_error(method, message):
    noise = torch.randn(2, 4, 8, 8)
    with pytest.raises(ValueError, match=message):
        check_method_output("bad", noise, method(noise, None))
