"""Every scorer at its real architecture size (random weights): builds, scores, keeps gradients. Opt in: -m slow."""

import gc

import pytest
import torch

from goldennoise.metrics import tiny as tiny_metrics

BUILDERS = {  # name -> (builder, parameter count of the real architecture, about)
    "hpsv2": (tiny_metrics.hpsv2_scorer, 986e6),
    "pickscore": (tiny_metrics.pickscore_scorer, 986e6),
    "image_reward": (tiny_metrics.image_reward_scorer, 447e6),
    "aesthetic": (tiny_metrics.aesthetic_scorer, 428e6),
    "clip_score": (tiny_metrics.clip_scorer, 428e6),
}


@pytest.mark.slow
def test_real_size_scorers_score_and_backpropagate():
    images = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)).requires_grad_()
    for name, (build, params) in BUILDERS.items():
        scorer = build(real_size=True)
        count = sum(p.numel() for p in scorer.parameters())
        assert abs(count - params) / params < 0.02, (name, count)
        score = scorer(images, ["a photo of a cat"])
        assert score.shape == (1,) and torch.isfinite(score).all(), name
        (grad,) = torch.autograd.grad(score.sum(), images)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
        del scorer, score, grad
        gc.collect()
