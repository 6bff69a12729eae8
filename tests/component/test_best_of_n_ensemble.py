"""BestOfN with a verifier ensemble (mean rank over several metrics, arXiv 2501.09732) on the shapes backbone."""

import pytest
import torch

from goldennoise.backbones.cost import CostMeter
from goldennoise.evaluation.harness import initial_noise
from goldennoise.metrics import ShapesAlignment, SoftShapesAlignment
from goldennoise.metrics.registry import sample_scores
from goldennoise.noise import BestOfN, SamplerSettings
from goldennoise.noise.selection import mean_rank

ITEMS = [(0, "a red circle left of a blue square", 0), (1, "a green triangle at the top left", 3)]
SETTINGS = SamplerSettings(steps=1)


def test_mean_rank_averages_each_metrics_rank_and_shares_ties():
    scores = torch.tensor([[[3.0], [1.0], [2.0]],    # metric 0 ranks candidates 0, 2, 1
                           [[0.0], [5.0], [5.0]]])   # metric 1: candidates 1 and 2 tie first, 0 last
    torch.testing.assert_close(mean_rank(scores)[:, 0], torch.tensor([(0 + 2) / 2, (2 + 0.5) / 2, (1 + 0.5) / 2]))


def test_the_ensemble_picks_the_brute_force_mean_rank_winner_at_n_samplings(shapes):
    metrics = [ShapesAlignment(), SoftShapesAlignment()]
    method = BestOfN(metrics, n=3)
    ctx, noise = initial_noise(shapes, [p for _, p, _ in ITEMS], [s for *_, s in ITEMS], SETTINGS)
    with torch.no_grad():
        candidates = [method._candidate(noise, ctx.seeds, j) for j in range(3)]
        keys = ["shapes_alignment/alignment", "soft_shapes_alignment"]
        scores = torch.stack([torch.stack([sample_scores(m, ctx.sample(c), ctx.prompts)[k]
                                           for m, k in zip(metrics, keys, strict=True)]) for c in candidates], dim=1)
    winners = mean_rank(scores).argmin(dim=0)
    expected = torch.stack([candidates[int(w)][b] for b, w in enumerate(winners)])
    with CostMeter(shapes.unet) as meter, meter.phase("method", len(ITEMS)):
        chosen = method(noise, ctx)
    torch.testing.assert_close(chosen, expected)
    assert meter.per_image()["method/evaluations"] == 3 * SETTINGS.steps  # N samplings, nothing else
    assert ctx.offered_images(chosen) is not None  # the winner's images are handed over, not sampled again


def test_an_ensemble_of_one_chooses_as_the_single_metric_does(shapes):
    ctx, noise = initial_noise(shapes, [p for _, p, _ in ITEMS], [s for *_, s in ITEMS], SETTINGS)
    single, ensemble = BestOfN(ShapesAlignment(), n=3), BestOfN([ShapesAlignment()], n=3)
    torch.testing.assert_close(ensemble(noise, ctx), single(noise, ctx))  # ties (common here) keep the earlier
    assert "keys" not in single.describe() and ensemble.describe()["keys"] == [None]


def test_mismatched_keys_are_refused():
    with pytest.raises(ValueError, match="one key \\(or None\\) per metric"):
        BestOfN([ShapesAlignment(), SoftShapesAlignment()], key=["shapes_alignment/alignment"])
    with pytest.raises(ValueError, match="one key, not a list"):
        BestOfN(ShapesAlignment(), key=["shapes_alignment/alignment"])


def test_recorded_metrics_read_every_candidate_without_changing_the_pick(shapes):
    metrics = [ShapesAlignment(), SoftShapesAlignment()]
    ctx, noise = initial_noise(shapes, [p for _, p, _ in ITEMS], [s for *_, s in ITEMS], SETTINGS)
    plain, recording = BestOfN(metrics[0], n=3), BestOfN(metrics[0], n=3, recorded=[metrics[1]])
    with torch.no_grad():
        images = [ctx.sample(plain._candidate(noise, ctx.seeds, j)) for j in range(3)]
        expected = {f"candidate{j}/{k}": v for j in range(3) for m in metrics
                    for k, v in sample_scores(m, images[j], ctx.prompts).items()}
        torch.testing.assert_close(recording(noise, ctx), plain(noise, ctx))
    stats = recording.sample_stats()
    assert stats.keys() == expected.keys() and not plain.sample_stats()
    for key, value in expected.items():
        torch.testing.assert_close(stats[key], value)
