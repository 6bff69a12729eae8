"""Evaluation settings and reports: bad input is one clear error before any sampling; the summary pairs correctly."""

import pytest
from jsonargparse import ArgumentError

from goldennoise.errors import MissingWeightsError
from goldennoise.evaluation.cli import parse_config
from goldennoise.evaluation.config import EvaluateConfig
from goldennoise.evaluation.harness import MethodSpec
from goldennoise.evaluation.report import flat_rows, format_table, summarize
from goldennoise.evaluation.tracking import flatten, summary_metrics
from goldennoise.metrics import ShapesAlignment
from goldennoise.noise import BestOfN, Gaussian, StabilitySelection

GAUSSIAN = '{"name": "gaussian", "method": {"class_path": "goldennoise.noise.Gaussian"}}'
SHAPES = '[{"class_path": "goldennoise.metrics.ShapesAlignment"}]'


def _config(**changes) -> EvaluateConfig:
    values = {"prompts": ["a red circle at the center"], "methods": [MethodSpec("gaussian", Gaussian())],
              "metrics": [ShapesAlignment()], **changes}
    return EvaluateConfig(**values)


@pytest.mark.parametrize(("changes", "message"), [
    ({"methods": []}, "at least one method"),
    ({"methods": [MethodSpec("a", Gaussian()), MethodSpec("a", Gaussian())]}, "must be unique"),
    ({"methods": [MethodSpec("a'; drop", Gaussian())]}, "letters, digits"),
    ({"baseline": "cfg"}, "baseline 'cfg' is not one of"),
    ({"metrics": []}, "at least one metric"),
    ({"steps": 0}, "steps must be at least 1"),
    ({"scheduler": "heun"}, "Unknown scheduler"),
    ({"budget": -5.0}, "budget must be positive"),
    ({"save_images": "some"}, "save_images"),
])
def test_bad_settings_fail_at_construction(changes, message):
    with pytest.raises(ValueError, match=message):
        _config(**changes)


def test_an_empty_or_blank_prompt_set_fails_before_sampling():
    with pytest.raises(ValueError, match="prompts"):
        _config(prompts=None).items()
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        _config(prompts=["a red circle at the center", "  "]).items()


def test_distinct_seeds_give_every_prompt_its_own_noise():
    items = _config(prompts=["a", "b"], seeds="10-11", distinct_seeds=True).items()
    assert items == [(0, "a", 10), (0, "a", 11), (1, "b", 12), (1, "b", 13)]
    assert [s for *_, s in _config(prompts=["a", "b"], seeds="10-11").items()] == [10, 11, 10, 11]


def test_an_unknown_method_class_is_a_parse_error():
    with pytest.raises(ArgumentError, match="NoSuchMethod"):
        parse_config(["--prompts", '["a"]', "--metrics", SHAPES,
                      "--methods", '[{"name": "x", "method": {"class_path": "goldennoise.noise.NoSuchMethod"}}]'])


def test_a_metric_without_its_weights_fails_when_the_config_is_read(tmp_path):
    missing = str(tmp_path / "HPS_v2.1_compressed.pt")
    with pytest.raises(MissingWeightsError, match="HPS_v2.1_compressed.pt"):
        parse_config(["--prompts", '["a"]', "--methods", f"[{GAUSSIAN}]", "--metrics",
                      f'[{{"class_path": "goldennoise.metrics.HPSv2Score", "init_args": {{"model": "{missing}"}}}}]'])


def _records():
    """Two prompts × two seeds; 'm' beats 'g' on prompt 0 only."""
    scores = {("g", 0): [0.5, 0.5], ("g", 1): [0.2, 0.4], ("m", 0): [1.0, 0.5], ("m", 1): [0.2, 0.4]}
    out = []
    for (method, prompt_id), values in scores.items():
        for seed, value in enumerate(values):
            out.append({"prompt_id": prompt_id, "prompt": f"p{prompt_id}", "seed": seed, "method": method,
                        "guidance_scale": 1.0, "scores": {"s": value},
                        "cost": {"method/evaluations": 0.0, "sampling/evaluations": 10.0 if method == "g" else 20.0}})
    return out


def test_summary_pairs_by_prompt_and_seed_and_reports_costs():
    summaries = summarize(flat_rows(_records()), ["g", "m"], "g", resamples=500)
    g, m = summaries
    assert "delta" not in g["scores"]["s"] and g["scores"]["s"]["mean"] == pytest.approx(0.4)
    stats = m["scores"]["s"]
    assert stats["delta"] == pytest.approx(0.5 / 4)
    assert (stats["wins"], stats["ties"], stats["losses"]) == (0.25, 0.75, 0.0)
    assert m["cost"]["evaluations"] == 20.0 and g["cost"]["sampling/evaluations"] == 10.0
    metrics = summary_metrics(m)
    assert metrics["s/delta"] == pytest.approx(0.125) and metrics["cost/evaluations"] == 20.0
    table = format_table(summaries, "g", "s")
    assert "+0.1250" in table and table.splitlines()[0].split()[0] == "method"


def test_params_are_flattened_with_paths():
    assert flatten({"a": {"b": [1, {"c": "x"}]}, "d": None}) == {"a/b/0": "1", "a/b/1/c": "x", "d": "None"}


def test_the_budget_sizes_each_search_method_at_its_own_guidance():
    plain, guided = BestOfN(ShapesAlignment()), BestOfN(ShapesAlignment())
    selection = StabilitySelection()
    config = _config(steps=10, budget=180, methods=[
        MethodSpec("gaussian", Gaussian()), MethodSpec("plain", plain),
        MethodSpec("guided", guided, guidance_scale=3.0), MethodSpec("select", selection, guidance_scale=3.0)])
    config.fit_budgets()
    assert plain.n == 180 // 10  # one unguided sampling: 10 evaluations
    assert guided.n == 180 // 20  # one guided sampling: 20 evaluations
    assert selection.k == (180 - 20) // 40  # guided round trip both ways: 2 x 20
