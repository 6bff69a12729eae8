"""DDIM sampling and inversion as pure functions (Song, Meng & Ermon, 2021, "Denoising Diffusion Implicit Models").

Everything here works on unit-variance latents and an ε-predicting ``denoiser(x, t) -> ε`` with the conditioning
and guidance already bound (see :meth:`goldennoise.backbones.Backbone.denoiser`). Nothing sets the grad mode: a
caller that differentiates through a loop simply does so, and may pass ``checkpoint=True`` to trade compute for
memory. The NPNet re-denoise step (Zhou et al., 2024, arXiv 2411.09502, Sec. 3.1) lives here too, since it is two
DDIM moves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.utils.checkpoint

from goldennoise.checks import check_int, check_tensor

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``denoiser(x, t) -> ε``: ``x`` of shape (B, C, h, w), ``t`` a 0-d integer tensor; returns ε of ``x``'s shape."""

StepCallback = Callable[[dict[str, Any]], None]
"""Called after every step with ``{"i", "t", "x", "eps", "x0"}`` (``x`` is the state after the step)."""

RedenoiseConvention = Literal["official", "textbook"]


@dataclass(frozen=True)
class DDIMSchedule:
    """A DDIM grid: the descending timesteps a sampler visits and ᾱ at every training timestep.

    Attributes:
        alphas_cumprod: ᾱ_t for every training timestep, shape (T,).
        timesteps: the N visited timesteps, descending, shape (N,).
        final_alpha_cumprod: ᾱ after the last step (1 with ``set_alpha_to_one``, else ᾱ_0).
        clip_sample_range: clamp x̂₀ to ±this value (diffusers' ``clip_sample``); ``None`` disables it.
    """

    alphas_cumprod: torch.Tensor
    timesteps: torch.Tensor
    final_alpha_cumprod: float
    clip_sample_range: float | None = None

    @property
    def step_size(self) -> int:
        """Distance between consecutive levels, ``T // N``, as diffusers' DDIM computes the previous timestep."""
        return len(self.alphas_cumprod) // len(self.timesteps)

    def previous(self, t: torch.Tensor | int) -> int:
        """The level a DDIM step from ``t`` lands on (negative past the last step)."""
        return int(t) - self.step_size

    def alpha(self, t: torch.Tensor | int) -> float:
        """ᾱ at timestep ``t``; ``final_alpha_cumprod`` for the level past the last step (t < 0)."""
        return float(self.alphas_cumprod[int(t)]) if int(t) >= 0 else self.final_alpha_cumprod


def ddim_move(
    x: torch.Tensor, eps: torch.Tensor, alpha_src: float, alpha_tgt: float, clip_sample_range: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Move ``x`` from noise level ᾱ_src to ᾱ_tgt along ε, Eq. 12 of Song et al. (2021) with σ = 0.

    .. math:: \hat x_0 = (x - \sqrt{1-\bar\alpha_s}\,\epsilon)/\sqrt{\bar\alpha_s},\quad
              x' = \sqrt{\bar\alpha_t}\,\hat x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon

    The same equation denoises (ᾱ_tgt > ᾱ_src) and inverts (ᾱ_tgt < ᾱ_src).

    Returns:
        ``(x', x̂₀)``, both of ``x``'s shape.
    """
    x0 = (x - (1 - alpha_src) ** 0.5 * eps) / alpha_src**0.5
    if clip_sample_range is not None:
        x0 = x0.clamp(-clip_sample_range, clip_sample_range)
        eps = (x - alpha_src**0.5 * x0) / (1 - alpha_src) ** 0.5
    return alpha_tgt**0.5 * x0 + (1 - alpha_tgt) ** 0.5 * eps, x0


def _predict(denoiser: Denoiser, x: torch.Tensor, t: torch.Tensor, checkpoint: bool) -> torch.Tensor:
    """One denoiser call; with ``checkpoint``, recomputed whole in the backward pass.

    PyTorch's checkpoint stops a recompute early by default, as soon as the saved tensors are rebuilt, before the
    network returns: a forward hook (the cost meter's) would never see it. Early stop is off here, so every recompute
    is a complete, counted denoiser call.
    """
    if checkpoint:
        with torch.utils.checkpoint.set_checkpoint_early_stop(False):
            return torch.utils.checkpoint.checkpoint(denoiser, x, t, use_reentrant=False)
    return denoiser(x, t)


def ddim_step(
    denoiser: Denoiser, x: torch.Tensor, t: torch.Tensor, schedule: DDIMSchedule, checkpoint: bool = False
) -> dict[str, torch.Tensor]:
    """One DDIM denoising step from level ``t`` to ``schedule.previous(t)``; returns ``{"x", "eps", "x0"}``."""
    eps = _predict(denoiser, x, t, checkpoint)
    alpha_src, alpha_tgt = schedule.alpha(t), schedule.alpha(schedule.previous(t))
    x_prev, x0 = ddim_move(x, eps, alpha_src, alpha_tgt, schedule.clip_sample_range)
    return {"x": x_prev, "eps": eps, "x0": x0}


def ddim_inversion_step(
    denoiser: Denoiser, x: torch.Tensor, t: torch.Tensor, schedule: DDIMSchedule, checkpoint: bool = False
) -> dict[str, torch.Tensor]:
    """One textbook DDIM inversion step from ``schedule.previous(t)`` up to ``t``; returns ``{"x", "eps", "x0"}``.

    ε is predicted at the *target* timestep ``t`` from the current (less noisy) latent, the approximation
    ε(x_{t-Δ}, t-Δ) ≈ ε(x_{t-Δ}, t) used by Mokady et al. (2023) and diffusers' ``DDIMInverseScheduler``.
    """
    eps = _predict(denoiser, x, t, checkpoint)
    x_next, x0 = ddim_move(x, eps, schedule.alpha(schedule.previous(t)), schedule.alpha(t))
    return {"x": x_next, "eps": eps, "x0": x0}


def _partial_steps(schedule: DDIMSchedule, num_steps: int | None) -> int:
    """The number of grid steps a (partial) loop runs: all of them unless ``num_steps`` is given."""
    if num_steps is None:
        return len(schedule.timesteps)
    return check_int("num_steps", num_steps, 1, len(schedule.timesteps))


def _run_loop(
    step: Callable[..., dict[str, torch.Tensor]],
    denoiser: Denoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    schedule: DDIMSchedule,
    callback: StepCallback | None,
    return_trajectory: bool,
    checkpoint: bool,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    trajectory = [x]
    for i, t in enumerate(timesteps):
        out = step(denoiser, x, t, schedule, checkpoint)
        x = out["x"]
        trajectory.append(x)
        if callback is not None:
            callback({"i": i, "t": t, **out})
    return (x, trajectory) if return_trajectory else x


def sample_ddim(
    denoiser: Denoiser,
    noise: torch.Tensor,
    schedule: DDIMSchedule,
    callback: StepCallback | None = None,
    return_trajectory: bool = False,
    checkpoint: bool = False,
    num_steps: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """Deterministic DDIM sampling (Song et al., 2021, Eq. 12, η = 0) from unit-variance ``noise``.

    Args:
        denoiser: ``denoiser(x, t) -> ε`` with conditioning and guidance bound.
        noise: initial latents x_T, shape (B, C, h, w). DDIM's ``init_noise_sigma`` is 1, so no scaling.
        schedule: the timestep grid.
        callback: called after each step with ``{"i", "t", "x", "eps", "x0"}``.
        return_trajectory: also return ``[x_T, ..., x_0]`` (N + 1 tensors).
        checkpoint: recompute each denoiser call in the backward pass instead of storing its activations.
        num_steps: run only the first ``num_steps`` steps of the grid (a partial denoise, stopping at the level
            ``schedule.timesteps[num_steps]``); ``None`` runs them all.

    Returns:
        The clean latents x_0 of shape (B, C, h, w) (the partial latents with ``num_steps``), or
        ``(x_0, trajectory)``.

    Raises:
        TypeError: ``noise`` is not a floating-point tensor.
        ValueError: ``noise`` holds NaN or infinite values, or ``num_steps`` is not between 1 and the grid's length.
    """
    check_tensor("noise", noise)
    timesteps = schedule.timesteps[:_partial_steps(schedule, num_steps)]
    return _run_loop(ddim_step, denoiser, noise, timesteps, schedule, callback, return_trajectory, checkpoint)


def invert_ddim(
    denoiser: Denoiser,
    latents: torch.Tensor,
    schedule: DDIMSchedule,
    callback: StepCallback | None = None,
    return_trajectory: bool = False,
    checkpoint: bool = False,
    num_steps: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """Textbook DDIM inversion: walk the sampler's levels in reverse, from clean ``latents`` up to x_T.

    Each step is :func:`ddim_inversion_step`; the levels visited are exactly those of :func:`sample_ddim` on the
    same schedule, so sampling the result retraces them. Arguments, returns and checks mirror :func:`sample_ddim`;
    with ``num_steps`` the latents are at the level a partial :func:`sample_ddim` of as many steps stops at, and
    only those steps are inverted (back up to x_T).
    """
    check_tensor("latents", latents)
    timesteps = schedule.timesteps[:_partial_steps(schedule, num_steps)].flip(0)  # ascending, up to x_T
    return _run_loop(
        ddim_inversion_step, denoiser, latents, timesteps, schedule, callback, return_trajectory, checkpoint
    )


def redenoise_step(
    denoise: Denoiser,
    invert: Denoiser,
    noise: torch.Tensor,
    schedule: DDIMSchedule,
    convention: RedenoiseConvention = "official",
    repeats: int = 1,
) -> torch.Tensor:
    """NPNet's re-denoise sampling: one guided DDIM step, then one weakly guided inversion back (the golden noise).

    Zhou et al. (2024), Sec. 3.1: ``x'_T = DDIM-Inversion(DDIM(x_T))`` with the denoising guidance ω_l bound in
    ``denoise`` and the inversion guidance ω_w (< ω_l) in ``invert``. With t0 > t1 the first two timesteps:

    1. ``x_{t1} = ddim_move(x_T, ε̂^{ω_l}(x_T, t0), ᾱ[t0], ᾱ[t1])``;
    2. ``ε2 = ε̂^{ω_w}(x_{t1}, t0)`` — the model is given ``t0`` in both conventions, as in the official code;
    3. ``convention="official"`` moves ᾱ[t1 − Δ] → ᾱ[t1], reproducing how the official collection calls
       ``DDIMInverseScheduler.step(ε2, t1, x_{t1})`` (it treats its timestep as the target level), which the NPD
       data were made with; ``"textbook"`` moves ᾱ[t1] → ᾱ[t0], the exact reverse of step 1.

    The official collection uses ``T_max = 1``; ``repeats`` applies the whole step that many times.

    Args:
        denoise: ε̂ with guidance ω_l.
        invert: ε̂ with guidance ω_w.
        noise: x_T, shape (B, C, h, w).
        schedule: the sampling grid; it needs at least two timesteps.
        convention: ``"official"`` (default, NPD parity) or ``"textbook"``.
        repeats: how many times to apply the step (T_max).

    Returns:
        The golden noise x'_T, shape (B, C, h, w).

    Raises:
        TypeError: ``noise`` is not a floating-point tensor.
        ValueError: ``noise`` holds NaN or infinite values, ``repeats`` < 1, or the schedule is too short.
    """
    check_tensor("noise", noise)
    check_int("repeats", repeats, minimum=1)
    if len(schedule.timesteps) < 2:
        raise ValueError("redenoise_step needs a schedule with at least two timesteps.")
    if convention not in ("official", "textbook"):
        raise ValueError(f"Unknown re-denoise convention {convention!r}; use 'official' or 'textbook'.")
    t0, t1 = schedule.timesteps[0], schedule.timesteps[1]
    source, target = (schedule.previous(t1), t1) if convention == "official" else (t1, t0)
    x = noise
    for _ in range(repeats):
        x_t1, _ = ddim_move(x, denoise(x, t0), schedule.alpha(t0), schedule.alpha(t1))
        x, _ = ddim_move(x_t1, invert(x_t1, t0), schedule.alpha(source), schedule.alpha(target))
    return x
