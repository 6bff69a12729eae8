"""Partial DDIM loops and the fixed-point inverter against closed forms, with a dummy denoiser and no network."""

import pytest
import torch

from goldennoise.sampling import (
    DDIMSchedule,
    FlowSchedule,
    invert,
    invert_ddim,
    invert_fixed_point,
    make_inverter,
    sample_ddim,
)


def sd_schedule(num_steps: int) -> DDIMSchedule:
    """SD's scaled-linear schedule with 'leading' spacing and steps_offset=1."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0).float()
    timesteps = torch.arange(num_steps - 1, -1, -1) * (1000 // num_steps) + 1
    return DDIMSchedule(alphas_cumprod, timesteps, float(alphas_cumprod[0]))


def curved(x, t):
    """An ε that depends on the latent nonlinearly, so textbook inversion is not exact."""
    return torch.tanh(0.8 * x) + 0.2 * x * (int(t) / 1000)


def test_partial_loops_are_prefixes_and_invert_back_to_x_t():
    schedule, noise = sd_schedule(6), torch.randn(2, 4, 8, 8)
    full, down = sample_ddim(curved, noise, schedule, return_trajectory=True)
    partial, part_down = sample_ddim(curved, noise, schedule, return_trajectory=True, num_steps=2)
    torch.testing.assert_close(partial, down[2])
    assert len(part_down) == 3
    torch.testing.assert_close(sample_ddim(curved, noise, schedule, num_steps=6), full)
    back, up = invert_ddim(curved, partial, schedule, return_trajectory=True, num_steps=2)
    assert len(up) == 3  # two inversion steps, up to x_T
    exact = invert_fixed_point(curved, partial, schedule, num_steps=2, iterations=30)
    torch.testing.assert_close(exact, noise, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="num_steps"):
        sample_ddim(curved, noise, schedule, num_steps=7)


def test_fixed_point_with_no_iteration_is_textbook_and_more_iterations_reconstruct_better():
    schedule, noise = sd_schedule(5), torch.randn(2, 4, 8, 8)
    x0 = sample_ddim(curved, noise, schedule)
    textbook = invert_ddim(curved, x0, schedule)
    torch.testing.assert_close(invert_fixed_point(curved, x0, schedule, iterations=0), textbook)
    errors = [(invert_fixed_point(curved, x0, schedule, iterations=n) - noise).norm().item() for n in (0, 1, 3, 10)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3 * errors[0]


def test_make_inverter_names_and_calls():
    calls = []

    def counting(x, t):
        calls.append(int(t))
        return 0.1 * x

    schedule, x0 = sd_schedule(4), torch.randn(1, 1, 2, 2)
    make_inverter("fixed-point", 2)(counting, x0, schedule)
    assert len(calls) == 4 * 3
    assert make_inverter("ddim") is invert  # the textbook inversion of whichever grid it is given
    flow = FlowSchedule(sigmas=torch.linspace(1, 0, 5), timesteps=torch.linspace(1000, 250, 4))
    with pytest.raises(ValueError, match="fixed-point inverter is implemented for DDIM grids"):
        make_inverter("fixed-point", 2)(counting, x0, flow)
    with pytest.raises(ValueError, match="Unknown inverter"):
        make_inverter("renoise")
