"""RewardOptimization (ReNO-style): it raises its reward (shapes backbone), its cost is the formula (tiny SDXL)."""

import math

import pytest
import torch
from scipy.stats import chi

from goldennoise.evaluation.harness import MethodSpec, evaluate_batch, initial_noise
from goldennoise.metrics import ShapesAlignment, SoftShapesAlignment
from goldennoise.metrics.registry import build_metric
from goldennoise.noise import RewardOptimization, SamplerSettings
from goldennoise.noise.reward import clip_per_sample, norm_log_likelihood_penalty

ITEMS = [(0, "a blue square left of a green cross", 1), (1, "a cyan cross above a magenta circle", 3)]


def test_counted_evaluations_and_backward_passes_equal_the_formula(tiny_sdxl):
    steps, reward_steps, iterations = 2, 1, 2
    rewards = [build_metric("clip_score", model="tiny"), build_metric("hpsv2", model="tiny")]  # scorer networks
    method = RewardOptimization(rewards, weights=[1.0, 5.0], iterations=iterations, steps=reward_steps)
    records, _ = evaluate_batch(tiny_sdxl, [(0, "a fox", 0)], [MethodSpec("reno", method, 3.0)], rewards[:1],
                                SamplerSettings(steps=steps))
    cost, calls = records[0]["cost"], reward_steps * 2  # guided: 2 denoiser rows per step and image
    # I samplings forward, I - 1 of them recomputed by checkpointing and differentiated
    assert cost["method/evaluations"] == (2 * iterations - 1) * calls
    assert cost["method/backward"] == (iterations - 1) * calls
    assert cost["sampling/evaluations"] == steps * 2  # its reward path is not the evaluation's: sampled again


def test_it_raises_its_reward_under_inference_mode_and_returns_the_best_noise(shapes):
    ctx, noise = initial_noise(shapes, [ITEMS[1][1]], [ITEMS[1][2]], SamplerSettings(steps=4))
    method = RewardOptimization([SoftShapesAlignment()], iterations=3)
    with torch.inference_mode():  # as in a Lightning test loop: the method steps out of it
        out = method(noise, ctx)
    trace = method.reward_trace[:, 0]  # (iterations,)
    assert trace.max() > trace[0] + 0.1  # measured 0.02 → 0.05 → 0.32
    images = ctx.offered_images(out)  # the best noise's images, handed over to the evaluation
    torch.testing.assert_close(method.reward(images, ctx.prompts).cpu(), trace.max()[None], atol=1e-5, rtol=0)
    assert not out.requires_grad and out.shape == noise.shape
    stats = method.sample_stats()
    assert stats["reward/initial"].item() == trace[0].item() and stats["reward/best"].item() == trace.max().item()
    assert stats["noise/norm_input"].item() == pytest.approx(noise.flatten().norm().item(), rel=1e-6)
    assert stats["noise/norm"].item() == pytest.approx(out.flatten().norm().item(), rel=1e-6)


def test_a_reward_without_a_differentiable_path_is_refused_before_any_sampling():
    with pytest.raises(ValueError, match="'shapes_alignment'.*no differentiable score"):
        RewardOptimization([SoftShapesAlignment(), ShapesAlignment()])
    with pytest.raises(ValueError, match="2 rewards but 1 weights"):
        RewardOptimization([SoftShapesAlignment(), SoftShapesAlignment()], weights=[1.0])


def test_the_regulariser_is_minus_the_chi_log_density_of_the_norm():
    d = 4 * 8 * 8
    radii = torch.tensor([10.0, math.sqrt(d - 1), 20.0])
    noise = torch.zeros(3, 4, 8, 8)
    noise[:, 0, 0, 0] = radii
    penalty = norm_log_likelihood_penalty(noise)
    expected = -torch.tensor(chi.logpdf(radii.numpy(), d), dtype=torch.float32)
    torch.testing.assert_close(penalty - penalty[1], expected - expected[1], rtol=1e-5, atol=1e-3)
    assert penalty.argmin() == 1  # least at ‖ε‖ = √(d − 1)


def test_each_sample_is_clipped_on_its_own():
    grad = torch.stack([torch.full((2, 2), 1.0), torch.full((2, 2), 0.01)])  # norms 2 and 0.02
    clipped = clip_per_sample(grad, 0.1)
    torch.testing.assert_close(clipped.flatten(1).norm(dim=1), torch.tensor([0.1, 0.02]), rtol=1e-4, atol=0)
