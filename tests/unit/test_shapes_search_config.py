"""configs/eval/shapes_search.yaml builds its methods, and a BestOfN ensemble and a bad reward parse as expected."""

from pathlib import Path

import pytest

from goldennoise.evaluation.cli import parse_config
from goldennoise.metrics import ShapesAlignment, SoftShapesAlignment
from goldennoise.noise import BestOfN, Gaussian, RewardOptimization

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "eval" / "shapes_search.yaml")
SOFT = '{"class_path": "goldennoise.metrics.SoftShapesAlignment"}'
EXACT = '{"class_path": "goldennoise.metrics.ShapesAlignment"}'


def test_the_config_builds_every_method_at_its_budget():
    config, _ = parse_config(["--config", CONFIG])
    methods = {spec.name: spec.method for spec in config.methods}
    assert isinstance(methods["gaussian"], Gaussian)
    assert isinstance(methods["best_exact"].metric, ShapesAlignment)
    assert isinstance(methods["best_soft"].metric, SoftShapesAlignment)
    for name, iterations in (("reno_soft", 2), ("reno_soft_5", 5)):
        assert isinstance(methods[name], RewardOptimization) and methods[name].iterations == iterations
        assert isinstance(methods[name].rewards[0], SoftShapesAlignment)
    methods["best_soft"].fit_budget(config.budget, config.sampler)
    assert methods["best_soft"].n == 5  # 50 evaluations / 10 per sampling


def test_an_ensemble_and_a_reward_without_gradient_from_flags():
    ensemble = f'{{"name": "ensemble", "method": {{"class_path": "goldennoise.noise.BestOfN", "init_args": ' \
               f'{{"metric": [{SOFT}, {EXACT}]}}}}}}'
    config, _ = parse_config(["--config", CONFIG, f"--methods=[{ensemble}]"])
    method = config.methods[0].method
    assert isinstance(method, BestOfN) and [type(m) for m in method.metrics] == [SoftShapesAlignment, ShapesAlignment]
    bad = f'{{"name": "bad", "method": {{"class_path": "goldennoise.noise.RewardOptimization", "init_args": ' \
          f'{{"rewards": [{EXACT}]}}}}}}'
    with pytest.raises(ValueError, match="no differentiable score"):  # when the config is read, before sampling
        parse_config(["--config", CONFIG, f"--methods=[{bad}]"])
