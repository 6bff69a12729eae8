"""An evaluation's budget sizes each search method at the guidance its own images are sampled with."""

from goldennoise.evaluation.config import EvaluateConfig
from goldennoise.evaluation.harness import MethodSpec
from goldennoise.evaluation.job import fit_budgets
from goldennoise.metrics import ShapesAlignment
from goldennoise.noise import BestOfN, Gaussian, StabilitySelection

STEPS, BUDGET = 10, 140


def test_guided_candidates_cost_twice_the_evaluations():
    methods = [MethodSpec("gaussian", Gaussian()),
               MethodSpec("best", BestOfN(ShapesAlignment())),
               MethodSpec("best-cfg3", BestOfN(ShapesAlignment()), guidance_scale=3.0),
               MethodSpec("stable", StabilitySelection()),
               MethodSpec("stable-cfg3", StabilitySelection(), guidance_scale=3.0)]
    config = EvaluateConfig(prompts=["a red circle"], methods=methods, metrics=[ShapesAlignment()], steps=STEPS,
                            budget=BUDGET)
    fit_budgets(config)
    n = {spec.name: spec.method.n for spec in methods if isinstance(spec.method, BestOfN)}
    k = {spec.name: spec.method.k for spec in methods if isinstance(spec.method, StabilitySelection)}
    assert n == {"best": BUDGET // STEPS, "best-cfg3": BUDGET // (2 * STEPS)}  # 14 and 7 samplings
    # a round trip is T denoise + T inversion steps, each 2 rows under CFG; the final sampling comes off the budget
    assert k == {"stable": (BUDGET - STEPS) // (2 * STEPS), "stable-cfg3": (BUDGET - 2 * STEPS) // (4 * STEPS)}
