"""Flow-Euler sampling, inversion, re-denoise and the prediction conversions against closed forms, no network."""

import pytest
import torch

from goldennoise.sampling import (
    DDIMSchedule,
    FlowSchedule,
    ddim_move,
    flow_estimates,
    flow_move,
    invert,
    invert_flow,
    redenoise,
    sample,
    sample_flow,
)
from goldennoise.sampling.predictions import to_epsilon, to_velocity


def grid(num_steps: int, shift: float = 3.0) -> FlowSchedule:
    """SD3.5's static shift on a uniform grid, computed by hand."""
    s = torch.linspace(1.0, 1.0 / num_steps, num_steps)
    s = shift * s / (1 + (shift - 1) * s)
    return FlowSchedule(torch.cat([s, torch.zeros(1)]), s * 1000)


def test_flow_move_with_the_true_velocity_lands_on_the_exact_marginal():
    x0, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    x_src = 0.3 * x0 + 0.7 * eps  # σ = 0.7
    x_tgt = flow_move(x_src, eps - x0, 0.7, 0.2)
    torch.testing.assert_close(x_tgt, 0.8 * x0 + 0.2 * eps)
    eps_hat, x0_hat = flow_estimates(x_src, eps - x0, 0.7)
    torch.testing.assert_close(eps_hat, eps, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x0_hat, x0, rtol=1e-5, atol=1e-5)


def test_a_ddim_step_is_a_flow_euler_step_after_reparametrisation():
    # x_flow = x_ddpm / (√ᾱ + √(1−ᾱ)), σ = √(1−ᾱ) / (√ᾱ + √(1−ᾱ)), u = ε − x̂₀ (docs/backbones.md)
    x, eps = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4)
    a_src, a_tgt = 0.2, 0.7
    x_ddim, x0 = ddim_move(x, eps, a_src, a_tgt)

    def norm(a):
        return a**0.5 + (1 - a) ** 0.5

    s_src, s_tgt = (1 - a_src) ** 0.5 / norm(a_src), (1 - a_tgt) ** 0.5 / norm(a_tgt)
    x_flow = flow_move(x / norm(a_src), eps - x0, s_src, s_tgt)
    torch.testing.assert_close(x_flow, x_ddim / norm(a_tgt), rtol=1e-5, atol=1e-5)


def test_sampling_then_inversion_is_exact_when_the_velocity_ignores_x():
    schedule, fixed = grid(6), torch.randn(2, 4, 8, 8)

    def constant(x, t):
        return fixed * (1 + float(t) / 1000)

    noise = torch.randn(2, 4, 8, 8)
    x0, trajectory = sample_flow(constant, noise, schedule, return_trajectory=True)
    assert len(trajectory) == 7 and trajectory[0] is noise
    # both legs take the velocity at the noisier level's timestep of each pair, so each inversion move undoes one
    torch.testing.assert_close(invert_flow(constant, x0, schedule), noise, rtol=1e-5, atol=1e-5)


def test_callbacks_see_every_level_in_order_with_estimates():
    schedule, seen = grid(4), []
    sample_flow(lambda x, t: 0.1 * x, torch.randn(1, 1, 2, 2), schedule, callback=seen.append)
    assert [d["i"] for d in seen] == [0, 1, 2, 3] and {"velocity", "eps", "x0", "sigma"} <= set(seen[0])
    seen.clear()
    invert_flow(lambda x, t: 0.1 * x, torch.randn(1, 1, 2, 2), schedule, callback=seen.append)
    assert [float(d["t"]) for d in seen] == schedule.timesteps.flip(0).tolist()


def test_checkpointed_sampling_gives_the_same_gradient():
    schedule, weight = grid(3), torch.tensor(0.3, requires_grad=True)
    grads = []
    for checkpoint in (False, True):
        noise = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
        sample_flow(lambda x, t: weight * x, noise, schedule, checkpoint=checkpoint).square().sum().backward()
        grads.append(noise.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("convention", ["official", "textbook"])
def test_flow_redenoise_follows_its_equations(convention):
    schedule = grid(4)
    s0, s1, s2 = (schedule.sigma(i) for i in range(3))
    u_l, u_w = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4)
    x = torch.randn(1, 4, 4, 4)
    x1 = x + (s1 - s0) * u_l
    expected = x1 + ((s1 - s2) if convention == "official" else (s0 - s1)) * u_w
    golden = redenoise(lambda x, t: u_l, lambda x, t: u_w, x, schedule, convention)
    torch.testing.assert_close(golden, expected)


def test_textbook_flow_redenoise_is_the_identity_when_both_velocities_agree():
    schedule, u = grid(5), torch.randn(1, 4, 4, 4)
    x = torch.randn(1, 4, 4, 4)
    torch.testing.assert_close(redenoise(lambda x, t: u, lambda x, t: u, x, schedule, "textbook"), x)


def test_generic_entry_points_dispatch_on_the_schedule_type():
    fixed = torch.randn(1, 2, 4, 4)
    ddim = DDIMSchedule(torch.linspace(0.999, 0.01, 1000), torch.tensor([901, 601, 301, 1]), 1.0)
    noise = torch.randn(1, 2, 4, 4)
    for schedule in (ddim, grid(4)):
        torch.testing.assert_close(invert(lambda x, t: fixed, sample(lambda x, t: fixed, noise, schedule), schedule),
                                   noise, rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="DDIMSchedule or a FlowSchedule"):
        sample(lambda x, t: fixed, noise, [1.0, 0.0])
    with pytest.raises(ValueError, match="N \\+ 1 sigmas"):
        FlowSchedule(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="at least two timesteps"):
        redenoise(lambda x, t: x, lambda x, t: x, noise, grid(1))


def test_prediction_conversions_agree_on_one_sample():
    x0, eps = torch.randn(2, 3), torch.randn(2, 3)
    sigma, alpha = 0.4, 0.36
    x_flow = (1 - sigma) * x0 + sigma * eps
    for kind, output in (("flow", eps - x0), ("epsilon", eps), ("sample", x0)):
        torch.testing.assert_close(to_velocity(kind, output, x_flow, sigma), eps - x0, rtol=1e-5, atol=1e-5)
    x_ddpm = alpha**0.5 * x0 + (1 - alpha) ** 0.5 * eps
    v = alpha**0.5 * eps - (1 - alpha) ** 0.5 * x0
    for kind, output in (("epsilon", eps), ("v_prediction", v), ("sample", x0)):
        torch.testing.assert_close(to_epsilon(kind, output, x_ddpm, alpha), eps, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="flow grid"):
        to_velocity("v_prediction", x0, x_flow, sigma)
    with pytest.raises(ValueError, match="DDPM grid"):
        to_epsilon("flow", x0, x_ddpm, alpha)


def test_partial_flow_round_trip_stops_and_restarts_at_sigma_k():
    schedule, fixed = grid(6), torch.randn(2, 4, 8, 8)

    def velocity(x, t):
        return 0.5 * x + fixed * float(t) / 1000

    noise = torch.randn(2, 4, 8, 8)
    _, trajectory = sample(velocity, noise, schedule, return_trajectory=True)
    partial = sample(velocity, noise, schedule, num_steps=2)
    torch.testing.assert_close(partial, trajectory[2])  # two steps land on σ_2
    _, up = invert(velocity, partial, schedule, return_trajectory=True, num_steps=2)
    assert len(up) == 3  # σ_2 → σ_1 → σ_0
    with pytest.raises(ValueError, match="num_steps"):
        sample(velocity, noise, schedule, num_steps=7)
