"""Rectified-flow Euler sampling and inversion as pure functions, beside :mod:`goldennoise.sampling.ddim`.

A flow-matching model (SD3, FLUX; Esser et al., 2024, arXiv 2403.03206; Lipman et al., 2023, arXiv 2210.02747)
sees ``x_σ = (1 − σ)·x₀ + σ·ε`` and predicts the velocity ``u = dx_σ/dσ = ε − x₀``. Everything here works on
unit-variance latents (at σ = 1, ``x = ε``) and a ``denoiser(x, t) -> u`` with conditioning and guidance bound;
``t`` is the model's timestep for the level (diffusers' ``σ·1000``), the sampler's arithmetic uses σ.

**DDIM ↔ flow Euler.** With ``σ_t = √(1−ᾱ)/(√ᾱ + √(1−ᾱ))`` and ``x_flow = x_ddpm/(√ᾱ + √(1−ᾱ))``, a deterministic
DDIM step is exactly an Euler step of this ODE, so "one DDIM step" from level ``t_i`` to ``t_{i+1}`` becomes
``x ← x + (σ_{i+1} − σ_i)·u(x, t_i)`` on the flow grid, and a DDIM inversion step the same move backwards with the
velocity taken at the current (less noisy) latent and the *target* level's timestep, as DDIM inversion takes ε.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from goldennoise.checks import check_int, check_tensor
from goldennoise.sampling.ddim import Denoiser, RedenoiseConvention, StepCallback, _predict


@dataclass(frozen=True)
class FlowSchedule:
    """A flow-matching grid: the N timesteps the sampler visits and the N + 1 noise levels σ (descending, last 0).

    Built by a flow backbone from its diffusers ``FlowMatchEulerDiscreteScheduler`` (shift, static or
    resolution-dependent, already applied), so the levels equal the pipeline's.

    Attributes:
        sigmas: σ_0 > σ_1 > ... > σ_N = 0, shape (N + 1,).
        timesteps: the model's timestep at σ_0 ... σ_{N-1}, shape (N,).
    """

    sigmas: torch.Tensor
    timesteps: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.sigmas) != len(self.timesteps) + 1:
            raise ValueError(f"A flow schedule needs N + 1 sigmas for N timesteps, got {len(self.sigmas)} sigmas "
                             f"and {len(self.timesteps)} timesteps.")

    def __len__(self) -> int:
        return len(self.timesteps)

    def sigma(self, i: int) -> float:
        """σ_i as a float (i = N is the clean level, 0)."""
        return float(self.sigmas[i])


def flow_move(x: torch.Tensor, velocity: torch.Tensor, sigma_src: float, sigma_tgt: float) -> torch.Tensor:
    r"""Move ``x`` from level σ_src to σ_tgt along the velocity: :math:`x' = x + (\sigma_t - \sigma_s)\,u`.

    The same equation denoises (σ_tgt < σ_src) and inverts (σ_tgt > σ_src); it is affine in ``x`` and ``u``.
    """
    return x + (sigma_tgt - sigma_src) * velocity


def flow_estimates(x: torch.Tensor, velocity: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(ε̂, x̂₀)`` of ``x`` at level σ: :math:`\hat x_0 = x - \sigma u`, :math:`\hat\epsilon = x + (1-\sigma) u`."""
    return x + (1 - sigma) * velocity, x - sigma * velocity


def _record(x_new: torch.Tensor, x: torch.Tensor, velocity: torch.Tensor, sigma: float) -> dict[str, torch.Tensor]:
    eps, x0 = flow_estimates(x, velocity, sigma)
    return {"x": x_new, "velocity": velocity, "eps": eps, "x0": x0}


def flow_step(denoiser: Denoiser, x: torch.Tensor, i: int, schedule: FlowSchedule,
              checkpoint: bool = False) -> dict[str, torch.Tensor]:
    """One Euler step from σ_i to σ_{i+1}; returns ``{"x", "velocity", "eps", "x0"}`` (estimates at σ_i)."""
    velocity = _predict(denoiser, x, schedule.timesteps[i], checkpoint)
    x_next = flow_move(x, velocity, schedule.sigma(i), schedule.sigma(i + 1))
    return _record(x_next, x, velocity, schedule.sigma(i))


def flow_inversion_step(denoiser: Denoiser, x: torch.Tensor, i: int, schedule: FlowSchedule,
                        checkpoint: bool = False) -> dict[str, torch.Tensor]:
    """One Euler inversion step from σ_{i+1} up to σ_i, the velocity taken at ``x`` with the target timestep t_i.

    The explicit counterpart of the implicit reverse of :func:`flow_step` (``u(x_i, t_i) ≈ u(x_{i+1}, t_i)``), the
    flow analogue of DDIM inversion's ``ε(x_{t-Δ}, t) ≈ ε(x_{t-Δ}, t-Δ)``.
    """
    velocity = _predict(denoiser, x, schedule.timesteps[i], checkpoint)
    x_prev = flow_move(x, velocity, schedule.sigma(i + 1), schedule.sigma(i))
    return _record(x_prev, x, velocity, schedule.sigma(i + 1))


def _partial_steps(schedule: FlowSchedule, num_steps: int | None) -> int:
    """The number of grid steps a (partial) loop runs: all of them unless ``num_steps`` is given."""
    return len(schedule) if num_steps is None else check_int("num_steps", num_steps, 1, len(schedule))


def _run_loop(step: Callable[..., dict[str, torch.Tensor]], denoiser: Denoiser, x: torch.Tensor, order: list[int],
              schedule: FlowSchedule, callback: StepCallback | None, return_trajectory: bool,
              checkpoint: bool) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    trajectory = [x]
    for i in order:
        out = step(denoiser, x, i, schedule, checkpoint)
        x = out["x"]
        trajectory.append(x)
        if callback is not None:
            callback({"i": i, "t": schedule.timesteps[i], "sigma": schedule.sigma(i), **out})
    return (x, trajectory) if return_trajectory else x


def sample_flow(
    denoiser: Denoiser,
    noise: torch.Tensor,
    schedule: FlowSchedule,
    callback: StepCallback | None = None,
    return_trajectory: bool = False,
    checkpoint: bool = False,
    num_steps: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """Deterministic Euler sampling of the flow ODE from unit-variance ``noise`` (diffusers' FlowMatch Euler).

    Args:
        denoiser: ``denoiser(x, t) -> u`` with conditioning and guidance bound.
        noise: x at σ_0 (= 1 on every grid here), shape (B, C, h, w); never pre-scaled.
        schedule: the σ grid.
        callback: called after each step with ``{"i", "t", "sigma", "x", "velocity", "eps", "x0"}``.
        return_trajectory: also return ``[x_{σ_0}, ..., x_{σ_N}]`` (N + 1 tensors).
        checkpoint: recompute each denoiser call in the backward pass instead of storing its activations.
        num_steps: run only the first ``num_steps`` steps (a partial denoise stopping at σ_{num_steps}); ``None``
            runs them all.

    Returns:
        The clean latents (B, C, h, w) (the partial latents with ``num_steps``), or ``(latents, trajectory)``.

    Raises:
        TypeError: ``noise`` is not a floating-point tensor.
        ValueError: ``noise`` holds NaN or infinite values.
    """
    check_tensor("noise", noise)
    return _run_loop(flow_step, denoiser, noise, list(range(_partial_steps(schedule, num_steps))), schedule,
                     callback, return_trajectory, checkpoint)


def invert_flow(
    denoiser: Denoiser,
    latents: torch.Tensor,
    schedule: FlowSchedule,
    callback: StepCallback | None = None,
    return_trajectory: bool = False,
    checkpoint: bool = False,
    num_steps: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """Euler inversion: walk the sampler's levels in reverse, from clean ``latents`` (σ_N = 0) up to σ_0.

    Each step is :func:`flow_inversion_step`; arguments, returns and checks mirror :func:`sample_flow` (with
    ``num_steps``, ``latents`` are at σ_{num_steps} and only the first ``num_steps`` steps are inverted).
    """
    check_tensor("latents", latents)
    order = list(range(_partial_steps(schedule, num_steps) - 1, -1, -1))
    return _run_loop(flow_inversion_step, denoiser, latents, order, schedule, callback, return_trajectory, checkpoint)


def flow_redenoise_step(
    denoise: Denoiser,
    invert: Denoiser,
    noise: torch.Tensor,
    schedule: FlowSchedule,
    convention: RedenoiseConvention = "official",
    repeats: int = 1,
) -> torch.Tensor:
    """NPNet's re-denoise step (arXiv 2411.09502, Sec. 3.1) on a flow grid: one Euler step, one inversion step back.

    The DDIM version's levels map one to one onto the σ grid (t0 → σ_0, t1 → σ_1, t1 − Δ → σ_2):

    1. ``x_1 = x + (σ_1 − σ_0)·u^{ω_l}(x, t_0)``;
    2. ``u_2 = u^{ω_w}(x_1, t_0)`` — the model is given ``t_0`` again, as in the official code;
    3. ``"official"``: ``x' = x_1 + (σ_1 − σ_2)·u_2`` (the level pair σ_2 → σ_1, as the official collection's
       ``DDIMInverseScheduler.step(ε2, t1, x_{t1})`` moves ᾱ[t1 − Δ] → ᾱ[t1]); ``"textbook"``:
       ``x' = x_1 + (σ_0 − σ_1)·u_2``, the exact reverse of step 1.

    Arguments, returns and errors mirror :func:`goldennoise.sampling.redenoise_step`.
    """
    check_tensor("noise", noise)
    check_int("repeats", repeats, minimum=1)
    if len(schedule) < 2:
        raise ValueError("redenoise_step needs a schedule with at least two timesteps.")
    if convention not in ("official", "textbook"):
        raise ValueError(f"Unknown re-denoise convention {convention!r}; use 'official' or 'textbook'.")
    t0 = schedule.timesteps[0]
    s0, s1, s2 = schedule.sigma(0), schedule.sigma(1), schedule.sigma(2)
    source, target = (s2, s1) if convention == "official" else (s1, s0)
    x = noise
    for _ in range(repeats):
        x1 = flow_move(x, denoise(x, t0), s0, s1)
        x = flow_move(x1, invert(x1, t0), source, target)
    return x
