"""The one conversion layer: any network prediction → what the sampler of its grid needs.

DDPM grid (``x_t = √ᾱ·x₀ + √(1−ᾱ)·ε``), the DDIM sampler needs ε:

* ``epsilon``: ε itself;
* ``v_prediction`` (Salimans & Ho, 2022, arXiv 2202.00512): ``v = √ᾱ·ε − √(1−ᾱ)·x₀`` ⇒ ``ε = √ᾱ·v + √(1−ᾱ)·x``;
* ``sample`` (x₀): ``ε = (x − √ᾱ·x̂₀)/√(1−ᾱ)``.

Flow grid (``x_σ = (1−σ)·x₀ + σ·ε``, Esser et al., 2024, arXiv 2403.03206, Eq. 2), the Euler sampler needs the
velocity ``u = ε − x₀``:

* ``flow``: u itself (SD3, FLUX);
* ``epsilon``: ``x̂₀ = (x − σ·ε)/(1−σ)`` ⇒ ``u = (ε − x)/(1−σ)``;
* ``sample`` (x₀): ``ε̂ = (x − (1−σ)·x̂₀)/σ`` ⇒ ``u = (x − x̂₀)/σ``.

Every conversion is affine in the prediction with coefficients that do not depend on it, and the prediction's
coefficient is the same for the conditional and unconditional branches, so classifier-free guidance commutes with it
(guiding the raw outputs or the converted ones gives the same result, as diffusers guides the raw ones).
"""

from __future__ import annotations

import torch

DDPM_PREDICTIONS = ("epsilon", "v_prediction", "sample")
FLOW_PREDICTIONS = ("flow", "epsilon", "sample")


def to_epsilon(prediction_type: str, output: torch.Tensor, x: torch.Tensor,
               alpha: torch.Tensor | float) -> torch.Tensor:
    """ε from a DDPM model's ``output`` at latents ``x`` of level ᾱ = ``alpha`` (same shape as ``x``)."""
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return alpha**0.5 * output + (1 - alpha) ** 0.5 * x
    if prediction_type == "sample":
        return (x - alpha**0.5 * output) / (1 - alpha) ** 0.5
    raise ValueError(f"Unsupported prediction type {prediction_type!r} on a DDPM grid; "
                     f"choose one of {list(DDPM_PREDICTIONS)}.")


def to_velocity(prediction_type: str, output: torch.Tensor, x: torch.Tensor,
                sigma: torch.Tensor | float) -> torch.Tensor:
    """The flow velocity ``u = ε − x₀`` from a model's ``output`` at latents ``x`` of level σ (σ in (0, 1))."""
    if prediction_type == "flow":
        return output
    if prediction_type == "epsilon":
        return (output - x) / (1 - sigma)
    if prediction_type == "sample":
        return (x - output) / sigma
    raise ValueError(f"Unsupported prediction type {prediction_type!r} on a flow grid; "
                     f"choose one of {list(FLOW_PREDICTIONS)}.")
