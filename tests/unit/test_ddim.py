"""DDIM and re-denoise against closed forms, with dummy denoisers and no network."""

import pytest
import torch

from goldennoise.sampling import DDIMSchedule, ddim_move, invert_ddim, redenoise_step, sample_ddim


def sd_schedule(num_steps: int, set_alpha_to_one: bool = False) -> DDIMSchedule:
    """SD's scaled-linear schedule with 'leading' spacing and steps_offset=1, computed by hand."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0).float()
    step = 1000 // num_steps
    timesteps = torch.arange(num_steps - 1, -1, -1) * step + 1
    final = 1.0 if set_alpha_to_one else float(alphas_cumprod[0])
    return DDIMSchedule(alphas_cumprod, timesteps, final)


def test_ddim_move_with_true_noise_lands_on_the_exact_marginal():
    x0, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    a_src, a_tgt = 0.3, 0.8
    x_src = a_src**0.5 * x0 + (1 - a_src) ** 0.5 * eps
    x_tgt, x0_hat = ddim_move(x_src, eps, a_src, a_tgt)
    torch.testing.assert_close(x0_hat, x0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_tgt, a_tgt**0.5 * x0 + (1 - a_tgt) ** 0.5 * eps, rtol=1e-5, atol=1e-5)


def test_ddim_move_is_affine_with_npnet_coefficients():
    x, eps = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4)
    a_src, a_tgt = 0.2, 0.1
    a = (a_tgt / a_src) ** 0.5
    b = (1 - a_tgt) ** 0.5 - a * (1 - a_src) ** 0.5
    torch.testing.assert_close(ddim_move(x, eps, a_src, a_tgt)[0], a * x + b * eps)


def test_clip_sample_clamps_x0():
    x, eps = 10 * torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    _, x0 = ddim_move(x, eps, 0.5, 0.9, clip_sample_range=1.0)
    assert x0.max().item() == 1.0


def test_sampling_then_inversion_is_exact_when_eps_ignores_x():
    schedule = sd_schedule(10)
    fixed = torch.randn(2, 4, 8, 8)

    def constant_denoiser(x, t):
        return fixed * (1 + int(t) / 1000)

    noise = torch.randn(2, 4, 8, 8)
    x0, trajectory = sample_ddim(constant_denoiser, noise, schedule, return_trajectory=True)
    assert len(trajectory) == 11 and trajectory[0] is noise
    recovered = invert_ddim(constant_denoiser, x0, schedule)
    # both legs evaluate eps at the noisier level of each pair, so every inversion move undoes its sampling move
    torch.testing.assert_close(recovered, noise, rtol=1e-4, atol=1e-4)


def test_callback_sees_every_step_in_order():
    schedule, seen = sd_schedule(5), []
    sample_ddim(lambda x, t: 0.1 * x, torch.randn(1, 1, 2, 2), schedule, callback=lambda d: seen.append(int(d["t"])))
    assert seen == [801, 601, 401, 201, 1]


def test_inversion_visits_levels_in_reverse():
    schedule, seen = sd_schedule(5), []
    invert_ddim(lambda x, t: 0.1 * x, torch.randn(1, 1, 2, 2), schedule, callback=lambda d: seen.append(int(d["t"])))
    assert seen == [1, 201, 401, 601, 801]


def test_checkpointing_gives_the_same_gradient():
    schedule, weight = sd_schedule(3), torch.tensor(0.3, requires_grad=True)

    def denoiser(x, t):
        return torch.tanh(weight * x)

    grads = []
    for checkpoint in (False, True):
        noise = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
        sample_ddim(denoiser, noise, schedule, checkpoint=checkpoint).square().sum().backward()
        grads.append(noise.grad)
    torch.testing.assert_close(grads[0], grads[1])


# Coefficients x' = a·x_{t1} + b·ε2 of docs/npnet.md §2.2 (SDXL's schedule, 'leading' spacing).
@pytest.mark.parametrize(
    ("num_steps", "convention", "a", "b"),
    [(10, "official", 0.668, 0.342), (10, "textbook", 0.619, 0.385),
     (50, "official", 0.894, 0.107), (50, "textbook", 0.891, 0.110)],
)
def test_redenoise_coefficients_match_the_spec_table(num_steps, convention, a, b):
    schedule = sd_schedule(num_steps)
    x_t, eps1, eps2 = torch.randn(3, 1, 4, 4, 4)
    calls = []

    def denoise(x, t):
        calls.append(("denoise", int(t)))
        return eps1

    def invert(x, t):
        calls.append(("invert", int(t)))
        return eps2

    golden = redenoise_step(denoise, invert, x_t, schedule, convention)
    t0, t1 = schedule.timesteps[:2].tolist()
    x_t1, _ = ddim_move(x_t, eps1, schedule.alpha(t0), schedule.alpha(t1))
    torch.testing.assert_close(golden, a * x_t1 + b * eps2, rtol=0, atol=2e-3 * (x_t1.abs().max() + eps2.abs().max()))
    assert calls == [("denoise", t0), ("invert", t0)]  # the inversion model still sees t0, as in the official code


def test_redenoise_repeats_apply_the_step_again():
    schedule = sd_schedule(10)
    x = torch.randn(1, 4, 4, 4)

    def denoise(x, t):
        return 0.5 * x

    def invert(x, t):
        return 0.2 * x

    once = redenoise_step(denoise, invert, x, schedule)
    torch.testing.assert_close(redenoise_step(denoise, invert, x, schedule, repeats=2),
                               redenoise_step(denoise, invert, once, schedule))


def test_redenoise_rejects_bad_arguments():
    x = torch.randn(1, 1, 2, 2)
    with pytest.raises(ValueError, match="two timesteps"):
        redenoise_step(lambda x, t: x, lambda x, t: x, x, sd_schedule(1))
    with pytest.raises(ValueError, match="convention"):
        redenoise_step(lambda x, t: x, lambda x, t: x, x, sd_schedule(10), convention="paper")
