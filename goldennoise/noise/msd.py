"""Multistep score distillation (MSD), the NoiseRefine training loss (Ahn et al., arXiv 2412.03895, Sec. 3.3).

The student image is an N-step unguided DDIM rollout ``x̂_0 = F_{t_N} ∘ … ∘ F_{t_1}(x̂_T)`` from the refined noise,
and the loss is the latent distance ``‖x̂_0 − x_0^Guide‖²`` to the guided teacher. MSD puts a stop-gradient on the
denoiser's output at every step: ``F_t(x) = step(x, SG(network(x, t, c)))``. A DDIM step (η = 0, no clipping, no
thresholding) is then affine in ``x`` with a *scalar* slope ``s_t`` that depends only on the schedule and the
prediction type (docs/noiserefine.md, "exact surrogate"):

* ε-prediction: ``s_t = √(ᾱ_prev / ᾱ_t)``;
* v-prediction: ``s_t = √(ᾱ_prev·ᾱ_t) + √((1 − ᾱ_prev)(1 − ᾱ_t))`` (the detached v leaves an ``x`` term in ε);
* x₀-prediction: ``s_t = √((1 − ᾱ_prev) / (1 − ᾱ_t))``.

So ``∂x̂_0/∂x̂_T = (∏ s_t)·I`` and MSD's gradient is exactly that of the surrogate

    ``L_sur = K · mean(x̂_T ⊙ SG(x̂_0 − x_0^Guide))``, ``K = 2·∏ s_t``,

with ``x̂_0`` from a **no-grad** rollout: one backward through the refiner plus N gradient-free denoiser calls, no
graph across steps. :func:`msd_literal_loss` keeps the paper's stop-gradient unroll to verify it. ``K`` is computed
from the backbone's own scheduler (SD's scaled-linear schedule and the shapes backbone's cosine one differ widely);
the surrogate's *value* is meaningless, so the module logs the true latent MSE.
"""

from __future__ import annotations

import math

import torch

from goldennoise.backbones import Backbone, PromptEmbeds
from goldennoise.sampling import DDIMSchedule, Schedule, invert, sample_ddim


def check_affine(schedule: DDIMSchedule) -> None:
    """Refuse a schedule whose DDIM step is not affine in ``x`` (clipped x̂₀): the surrogate would be wrong."""
    if schedule.clip_sample_range is not None:
        raise ValueError("Multistep score distillation needs an affine DDIM step: clip_sample must be off in the "
                         "backbone's scheduler configuration (thresholding is refused by ddim_schedule already).")


def step_slope(prediction_type: str, alpha: float, alpha_prev: float) -> float:
    """The scalar slope ``∂F_t(x)/∂x`` of one DDIM step with the network output held fixed (module docstring)."""
    if prediction_type == "epsilon":
        return math.sqrt(alpha_prev / alpha)
    if prediction_type == "v_prediction":
        return math.sqrt(alpha_prev * alpha) + math.sqrt((1 - alpha_prev) * (1 - alpha))
    if prediction_type == "sample":
        return math.sqrt((1 - alpha_prev) / (1 - alpha))
    raise ValueError(f"Unsupported prediction type {prediction_type!r}.")


def msd_constant(backbone: Backbone, schedule: DDIMSchedule) -> float:
    """``K = 2·∏_t s_t`` over the rollout grid, from the backbone's scheduler and prediction type (fp64).

    For ε-prediction the product telescopes to ``√(ᾱ_final / ᾱ_{t_first})``; on the shapes backbone's cosine
    schedule with 10 leading steps that is K ≈ 13.1, on SD's scaled-linear one 16.9.
    """
    check_affine(schedule)
    product = 1.0
    for t in schedule.timesteps:
        product *= step_slope(backbone.prediction_type, schedule.alpha(t), schedule.alpha(schedule.previous(t)))
    return 2.0 * product


def rollout(backbone: Backbone, noise: torch.Tensor, cond: PromptEmbeds, schedule: DDIMSchedule) -> torch.Tensor:
    """The student image ``x̂_0`` (B, C, h, w): unguided DDIM from ``noise``, no gradients, adapter off."""
    with torch.no_grad(), backbone.adapter(False):
        return sample_ddim(backbone.denoiser(cond), noise.detach().float(), schedule)


def inverted_teacher(backbone: Backbone, teacher: torch.Tensor, cond: PromptEmbeds,
                     schedule: Schedule) -> torch.Tensor:
    """``x*_T = Inv_c(x_0^Guide)`` (B, C, h, w): the teacher inverted on ``schedule`` by the unguided model.

    Textbook DDIM inversion (flow Euler on a flow grid) by the conditional base model, adapter off, no gradients.
    Where the inversion is exact the unguided rollout from ``x*_T`` is the teacher, so ``x*_T`` is the noise at which
    the MSD loss of this pair is zero; the ``inverted`` loss of :class:`~goldennoise.lit.NoiseRefineModule` regresses
    the refiner onto it.
    """
    with torch.no_grad(), backbone.adapter(False):
        return invert(backbone.denoiser(cond), teacher.detach().float(), schedule)


def msd_surrogate_loss(refined: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor,
                       constant: float) -> torch.Tensor:
    """``K · mean(x̂_T ⊙ SG(x̂_0 − x_0^Guide))``: the MSD gradient with respect to the refiner, exactly.

    Args:
        refined: x̂_T (B, C, h, w), with the refiner's graph.
        student: x̂_0 (B, C, h, w) of the no-grad rollout from x̂_T.
        teacher: x_0^Guide (B, C, h, w).
        constant: K from :func:`msd_constant`.
    """
    residual = (student - teacher.to(student.dtype)).detach()
    return constant * (refined.float() * residual).mean()


def msd_literal_loss(backbone: Backbone, refined: torch.Tensor, cond: PromptEmbeds, teacher: torch.Tensor,
                     schedule: DDIMSchedule) -> torch.Tensor:
    """The paper's MSD loss by unrolling: ``mean((x̂_0 − x_0^Guide)²)``, SG on the network output at every step.

    Gradients flow only through each step's affine ``x`` terms (N denoiser calls, no graph through them). Kept to
    verify :func:`msd_surrogate_loss`; it costs the same forward passes but stores the unrolled graph.
    """
    check_affine(schedule)
    with backbone.adapter(False):
        student = sample_ddim(backbone.denoiser(cond, stop_network_gradient=True), refined.float(), schedule)
    return (student - teacher.to(student.dtype)).pow(2).mean()
