"""Inversion stability (arXiv 2407.14041) on the embedded shapes backbone: scores against their definition,
selection against brute force, counted evaluations against the formula, gradients against plain autograd."""

import pytest
import torch

from goldennoise.backbones.cost import CostMeter
from goldennoise.evaluation.harness import MethodSpec, evaluate_batch
from goldennoise.evaluation.report import flat_rows
from goldennoise.metrics import ShapesAlignment
from goldennoise.noise import (
    Gaussian,
    NoiseContext,
    SamplerSettings,
    StabilityOptimization,
    StabilityScore,
    StabilitySelection,
)
from goldennoise.noise.selection import candidate_seed
from goldennoise.noise.stability import flat_cosine
from goldennoise.sampling import invert_ddim, noise_for_seeds, sample_ddim

PROMPTS = ["a red circle at the top left", "a blue square at the bottom right"]
SEEDS = [3, 8]


@pytest.fixture
def ctx(shapes):
    return NoiseContext.build(shapes, PROMPTS, SEEDS, SamplerSettings(steps=3))


@pytest.fixture
def ctx2(shapes):
    return NoiseContext.build(shapes, PROMPTS, SEEDS, SamplerSettings(steps=2))


def noise_of(ctx, seeds=SEEDS):
    return noise_for_seeds(list(seeds), ctx.latent_shape())


def test_score_is_the_cosine_of_the_noise_and_its_round_trip(ctx, shapes):
    noise = noise_of(ctx)
    stats = StabilityScore(partial_steps=1).scores(noise, ctx)
    schedule, denoiser = shapes.ddim_schedule(3), shapes.denoiser(ctx.cond)
    with torch.no_grad():
        x0, down = sample_ddim(denoiser, noise, schedule, return_trajectory=True)
        back, up = invert_ddim(denoiser, x0, schedule, return_trajectory=True)
        partial = invert_ddim(denoiser, sample_ddim(denoiser, noise, schedule, num_steps=1), schedule, num_steps=1)
    cos = torch.nn.functional.cosine_similarity
    torch.testing.assert_close(stats["stability/s"], cos(noise.flatten(1), back.flatten(1)))
    per_level = [cos(down[i].flatten(1), up[3 - i].flatten(1)) for i in range(3)]
    torch.testing.assert_close(stats["stability/s_traj"], torch.stack(per_level).mean(0))
    torch.testing.assert_close(stats["stability/s_partial"], cos(noise.flatten(1), partial.flatten(1)))
    assert (stats["stability/s"] < 1).all()


def test_fixed_point_inversion_makes_the_round_trip_more_stable(ctx2):
    noise = noise_of(ctx2)
    textbook = StabilityScore().scores(noise, ctx2)["stability/s"]
    refined = StabilityScore(inverter="fixed-point", inversion_iterations=1).scores(noise, ctx2)["stability/s"]
    assert (refined > textbook).all()


def test_selection_is_the_brute_force_pick_and_costs_2tk_evaluations(ctx2, shapes):
    k, steps = 2, ctx2.sampler.steps
    noise = noise_of(ctx2)
    pool = torch.stack([torch.stack([noise[b]] + [noise_for_seeds([candidate_seed(seed, j)], ctx2.latent_shape())[0]
                                                  for j in range(1, k)]) for b, seed in enumerate(SEEDS)])
    owners = [b for b in range(len(SEEDS)) for _ in range(k)]
    brute = StabilityScore().scores(pool.flatten(0, 1), ctx2.rows(owners))["stability/s"].view(len(SEEDS), k)
    for pick in ("most", "least", "random"):
        method = StabilitySelection(k=k, pick=pick, memory_limit_mib=0.015, activation_factor=1.0,  # 2-row chunks
                                    record_candidates=True)
        with CostMeter(shapes.unet) as meter, meter.phase("method", len(ctx2)):
            out = method(noise, ctx2)
        assert meter.phases["method"].evaluations == 2 * steps * k * len(ctx2)
        stats = method.sample_stats()
        index = {"most": brute.argmax(1), "least": brute.argmin(1)}.get(pick, stats["stability/pick"].long())
        for b in range(len(SEEDS)):
            torch.testing.assert_close(out[b], pool[b, index[b]])
            torch.testing.assert_close(stats["stability/s"][b], brute[b, index[b]], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats["stability/s_input"], brute[:, 0], rtol=1e-5, atol=1e-6)
        recorded = torch.stack([stats[f"stability/candidate{j}/s"] for j in range(k)], dim=1)  # (B, k)
        torch.testing.assert_close(recorded, brute, rtol=1e-5, atol=1e-6)
        assert torch.equal(stats[f"stability/pick_{pick}"], stats["stability/pick"])


def test_selection_refuses_bad_input_before_any_sampling(ctx, shapes):
    with pytest.raises(ValueError, match="k >= 1"):
        StabilitySelection(k=0)
    with CostMeter(shapes.unet) as meter, meter.phase("method", 2):
        with pytest.raises(ValueError, match="too small for one candidate"):
            StabilitySelection(k=2, memory_limit_mib=1e-3)(noise_of(ctx), ctx)
    assert meter.phases["method"].evaluations == 0


def test_budget_sets_k_from_the_round_trip_cost():
    method, sampler = StabilitySelection(), SamplerSettings(steps=10)
    method.fit_budget(90, sampler)  # 10 for the final sampling, 20 per candidate
    assert method.k == 4
    method.fit_budget(5, sampler)
    assert method.k == 1


def test_full_mode_checkpointed_gradient_equals_plain_autograd(shapes):
    ctx = NoiseContext.build(shapes, PROMPTS, SEEDS, SamplerSettings(steps=2))
    score = StabilityScore()

    def gradient(checkpoint):
        x = noise_of(ctx).requires_grad_(True)
        (1 - flat_cosine(x, score.round_trip(x, ctx, checkpoint=checkpoint)[0])).sum().backward()
        return x.grad

    plain, checkpointed = gradient(False), gradient(True)
    assert ((checkpointed - plain).norm() / plain.norm()).item() < 1e-5


@pytest.mark.parametrize("mode", ["full", pytest.param("truncated", marks=pytest.mark.slow),
                                  pytest.param("partial-roundtrip", marks=pytest.mark.slow), "stopgrad-unet"])
def test_optimisation_raises_stability_even_under_inference_mode(ctx2, shapes, mode):
    method = StabilityOptimization(steps=1, step_size="relative", lr_rel=0.05, gradient_mode=mode, gradient_k=1)
    with CostMeter(shapes.unet) as meter, meter.phase("method", 2), torch.inference_mode():
        out = method(noise_of(ctx2), ctx2)
    stats = method.sample_stats()
    assert (stats["stability/s_final"] > stats["stability/s_initial"]).all()
    assert (method.history[-1] > method.history[0]).all()
    assert out.shape == noise_of(ctx2).shape and not out.requires_grad
    backward = meter.phases["method"].backward  # optimisation steps × differentiated calls × images
    assert backward == {"full": 4 * 2, "truncated": 1 * 2, "partial-roundtrip": 2 * 2,
                        "stopgrad-unet": 0}[mode]


def test_relative_step_is_resolution_independent_and_projection_keeps_the_shell(shapes):
    for size in (32, 64):
        ctx = NoiseContext.build(shapes, PROMPTS, SEEDS, SamplerSettings(steps=1, image_size=size))
        noise = noise_of(ctx)
        out = StabilityOptimization(steps=1, momentum=0.0, step_size="relative", lr_rel=0.01,
                                    gradient_mode="stopgrad-unet", project=size == 64)(noise, ctx)
        if size == 32:
            moved = (out - noise).flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1)
            torch.testing.assert_close(moved, torch.full_like(moved, 0.01), rtol=1e-4, atol=0)
        else:
            d = noise[0].numel()
            torch.testing.assert_close(out.flatten(1).norm(dim=1), torch.full((2,), d**0.5), rtol=1e-5, atol=0)


def test_evaluation_records_the_stability_of_each_sample(shapes):
    items = [(0, PROMPTS[0], 3), (1, PROMPTS[1], 8)]
    methods = [MethodSpec("gaussian", Gaussian()), MethodSpec("score", StabilityScore())]
    records, images = evaluate_batch(shapes, items, methods, [ShapesAlignment()], SamplerSettings(steps=2))
    rows = flat_rows(records)
    assert [r["stat/stability/s"] is None for r in rows] == [True, True, False, False]
    torch.testing.assert_close(images["score"], images["gaussian"])  # the score leaves the noise as it is
    assert rows[2]["cost/method/evaluations"] == 4


def test_sdxl_round_trip_uses_the_same_guided_conditioning_both_ways(tiny_sdxl):
    ctx = NoiseContext.build(tiny_sdxl, PROMPTS, SEEDS, SamplerSettings(steps=2, guidance_scale=3.0))
    noise = noise_of(ctx)
    with CostMeter(tiny_sdxl.unet) as meter, meter.phase("method", 2):
        s = StabilityScore().scores(noise, ctx)["stability/s"]
    assert meter.phases["method"].evaluations == 2 * 2 * 2 * 2  # 2T calls, two guidance rows, two images
    assert ctx.cond.pooled is not None
    denoiser, schedule = tiny_sdxl.denoiser(ctx.cond, ctx.uncond, 3.0), tiny_sdxl.ddim_schedule(2)
    with torch.no_grad():
        back = invert_ddim(denoiser, sample_ddim(denoiser, noise, schedule), schedule)
    torch.testing.assert_close(s, flat_cosine(noise, back))
