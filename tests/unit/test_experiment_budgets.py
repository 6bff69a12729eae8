"""The experiment configs' search methods get the candidate counts their READMEs state, from the common budget.

The configs are read as the command line composes them (later files replace top-level keys), with every scorer (judge
or verifier) replaced by one that loads no weights and the methods that load a network file (NPNet, NoiseRefine)
left out; the budget is then applied as the evaluation applies it
(:meth:`~goldennoise.evaluation.config.EvaluateConfig.fit_budgets`), without loading a backbone.
"""

from pathlib import Path

import pytest
import yaml

from goldennoise.evaluation.cli import parse_config

ROOT = Path(__file__).resolve().parents[2]
CHEAP_METRIC = {"class_path": "goldennoise.metrics.ShapesAlignment"}  # no weights; which scorer plays no part here
LOADS_A_FILE = ("goldennoise.noise.NPNetNoise", "goldennoise.noise.NoiseRefineNoise")
CASES = {  # config files → candidates per search method (k of a stability selection, n of a best-of-N)
    ("cross_method/shapes.yaml",): {"stability-most": 4, "bestofn-soft": 9, "bestofn-exact": 9},
    ("cross_method/sdxl.yaml",): {"stability-most": 22, "stability-random": 22, "bestofn-hps": 10,
                                  "bestofn-imagereward": 10},
    ("stability_sdxl/selection.yaml",): {"most-stable": 16, "least-stable": 16, "random-pick": 16, "bestofn-hps": 7},
    ("stability_sdxl/selection.yaml", "stability_sdxl/turbo.yaml"): {
        "most-stable": 100, "least-stable": 100, "random-pick": 100, "bestofn-hps": 201},
}


def _cheap_metrics(value):
    """``value`` with every goldennoise metric (a judge or a method's verifier) replaced by ShapesAlignment."""
    if isinstance(value, dict):
        if str(value.get("class_path", "")).startswith("goldennoise.metrics."):
            return CHEAP_METRIC
        return {key: _cheap_metrics(item) for key, item in value.items()}
    return [_cheap_metrics(item) for item in value] if isinstance(value, list) else value


@pytest.mark.parametrize("files", sorted(CASES), ids=lambda files: "+".join(files))
def test_search_methods_get_the_stated_candidates(files, tmp_path):
    config = {}
    for name in files:
        config.update(yaml.safe_load((ROOT / "experiments" / name).read_text()))
    config["methods"] = [m for m in config["methods"] if m["method"]["class_path"] not in LOADS_A_FILE]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_cheap_metrics(config)))
    evaluation, _ = parse_config(["--config", str(path)])
    evaluation.fit_budgets()
    counts = {spec.name: getattr(spec.method, "k", getattr(spec.method, "n", None)) for spec in evaluation.methods}
    assert {name: counts[name] for name in CASES[files]} == CASES[files]
