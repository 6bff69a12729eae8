"""DDIM inverters beside :func:`~goldennoise.sampling.invert_ddim`: a fixed-point inverter and a by-name chooser.

Textbook DDIM inversion (:func:`invert_ddim`) predicts the noise of the step up to level ``t`` at the *lower* level's
latent. The step it undoes, ``x_prev = ddim_move(x_t, ε(x_t, t), ᾱ_t, ᾱ_prev)``, is inverted exactly by the
``x_t`` that solves ``x_t = ddim_move(x_prev, ε(x_t, t), ᾱ_prev, ᾱ_t)``. :func:`invert_fixed_point` solves it by
fixed-point iteration from the textbook guess, the core of ReNoise (Garibi et al., 2024, arXiv 2403.14602, Eq. 6)
and of AIDI (Pan et al., 2023, arXiv 2309.04907); ReNoise's averaging of the last iterates and its noise
regularisation are not implemented. Every function is pure and leaves the grad mode to the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from goldennoise.checks import check_int, check_tensor
from goldennoise.sampling.ddim import DDIMSchedule, Denoiser, _partial_steps, _predict, ddim_move
from goldennoise.sampling.generic import Schedule, invert

InverterName = Literal["ddim", "fixed-point"]
Inverter = Callable[..., torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]]
"""``inverter(denoiser, latents, schedule, return_trajectory=False, checkpoint=False, num_steps=None)``, as
:func:`invert_ddim`."""


def fixed_point_inversion_step(
    denoiser: Denoiser,
    x: torch.Tensor,
    t: torch.Tensor,
    schedule: DDIMSchedule,
    iterations: int,
    checkpoint: bool = False,
) -> torch.Tensor:
    """One inversion step from ``schedule.previous(t)`` up to ``t``, refined by fixed-point iteration.

    ``x_t⁽⁰⁾`` is the textbook step (ε at the lower latent); then ``x_t⁽ⁱ⁺¹⁾ = ddim_move(x, ε(x_t⁽ⁱ⁾, t))``
    (ReNoise, arXiv 2403.14602, Eq. 6). It costs ``1 + iterations`` denoiser calls.

    Args:
        denoiser: ``denoiser(x, t) -> ε`` with conditioning and guidance bound.
        x: the latents at level ``schedule.previous(t)``, shape (B, C, h, w).
        t: the target timestep, a 0-d integer tensor.
        schedule: the grid.
        iterations: fixed-point refinements after the textbook guess (0 is the textbook step).
        checkpoint: recompute each denoiser call in the backward pass.

    Returns:
        The latents at level ``t``, shape (B, C, h, w).
    """
    alpha_src, alpha_tgt = schedule.alpha(schedule.previous(t)), schedule.alpha(t)
    guess = x
    for _ in range(iterations + 1):
        guess, _ = ddim_move(x, _predict(denoiser, guess, t, checkpoint), alpha_src, alpha_tgt)
    return guess


def invert_fixed_point(
    denoiser: Denoiser,
    latents: torch.Tensor,
    schedule: DDIMSchedule,
    return_trajectory: bool = False,
    checkpoint: bool = False,
    num_steps: int | None = None,
    iterations: int = 3,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """DDIM inversion with fixed-point refined steps (:func:`fixed_point_inversion_step`).

    It visits the levels of :func:`~goldennoise.sampling.sample_ddim`, as :func:`invert_ddim` does.

    Args:
        denoiser: ``denoiser(x, t) -> ε`` with conditioning and guidance bound.
        latents: the clean (or, with ``num_steps``, partially denoised) latents, shape (B, C, h, w).
        schedule: the grid.
        return_trajectory: also return ``[latents, ..., x_T]``.
        checkpoint: recompute each denoiser call in the backward pass.
        num_steps: invert only the first ``num_steps`` steps of the grid, as :func:`invert_ddim`.
        iterations: fixed-point refinements per step; ``0`` reproduces :func:`invert_ddim` exactly. Each step costs
            ``1 + iterations`` denoiser calls.

    Raises:
        TypeError: ``latents`` is not a floating-point tensor.
        ValueError: ``latents`` holds NaN or infinite values, ``iterations`` < 0 or ``num_steps`` is off the grid.
    """
    check_tensor("latents", latents)
    check_int("iterations", iterations, minimum=0)
    timesteps = schedule.timesteps[:_partial_steps(schedule, num_steps)].flip(0)  # ascending, up to x_T
    x, trajectory = latents, [latents]
    for t in timesteps:
        x = fixed_point_inversion_step(denoiser, x, t, schedule, iterations, checkpoint)
        trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def make_inverter(name: InverterName = "ddim", iterations: int = 3) -> Inverter:
    """The inverter called ``name``: ``"ddim"`` (textbook) or ``"fixed-point"`` with ``iterations``.

    ``"ddim"`` is the textbook inversion of the grid it is given (:func:`invert_ddim`, or
    :func:`~goldennoise.sampling.invert_flow` on a flow grid); ``"fixed-point"`` works on DDIM grids.

    Raises:
        ValueError: an unknown name or ``iterations`` < 0; the fixed-point inverter given a flow grid (when called).
    """
    check_int("iterations", iterations, minimum=0)
    if name == "ddim":
        return invert
    if name == "fixed-point":
        def invert_by_fixed_point(denoiser: Denoiser, latents: torch.Tensor, schedule: Schedule,
                                  return_trajectory: bool = False, checkpoint: bool = False,
                                  num_steps: int | None = None):
            if not isinstance(schedule, DDIMSchedule):
                raise ValueError("The fixed-point inverter is implemented for DDIM grids; use inverter 'ddim' (the "
                                 "textbook Euler inversion) on a flow-matching backbone.")
            return invert_fixed_point(denoiser, latents, schedule, return_trajectory, checkpoint, num_steps,
                                      iterations)
        return invert_by_fixed_point
    raise ValueError(f"Unknown inverter {name!r}; choose 'ddim' or 'fixed-point'.")


def inverter_calls_per_step(name: InverterName, iterations: int) -> int:
    """Denoiser calls one inversion step of inverter ``name`` makes (per image and guidance branch)."""
    return 1 if name == "ddim" else 1 + iterations
