r"""Guided denoisers of teacher sampling: classifier-free guidance, optionally with Perturbed-Attention Guidance.

Per sample ``b`` with CFG scale ``w_b`` and PAG scale ``s_b`` (Ahn et al., 2024, arXiv 2403.17377, Eq. 11 combined
with CFG as in diffusers' ``PAGMixin._apply_perturbed_attention_guidance``):

.. math:: \hat\epsilon = \epsilon(\varnothing) + w_b\,(\epsilon(c) - \epsilon(\varnothing))
          + s_b\,(\epsilon(c) - \tilde\epsilon(c))

where ``ε̃`` is the UNet with the self-attention maps of the chosen layers replaced by the identity. The perturbed
branch reuses diffusers' own attention processor (``PAGCFGIdentitySelfAttnProcessor2_0``: the batch is
``[uncond, cond, perturbed]`` in thirds, the last third perturbed), installed only while a teacher batch is sampled
and selected with diffusers' layer rule (``"mid"``, ``"down.block_1"``, a regex...). A backbone whose UNet has no
matching self-attention layer refuses PAG with one error naming the layers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from goldennoise.backbones import PromptEmbeds
from goldennoise.sampling import Denoiser


class PAGNotSupportedError(ValueError):
    """The backbone has no self-attention layer PAG could perturb (or it is not a UNet with attention processors)."""


def _self_attention_layers(unet: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    """Self-attention modules of ``unet`` whose names match one of ``layers`` (diffusers' ``PAGMixin`` rule)."""
    from diffusers.models.attention_processor import Attention

    def numeric_mismatch(layer: str, name: str) -> bool:  # "blocks.1" must not match "blocks.10"
        last_layer, last_name = layer.split(".")[-1], name.split(".")[-1]
        return last_layer.isnumeric() and last_name.isnumeric() and last_layer == last_name

    found = {}
    for layer in layers:
        matches = {name: module for name, module in unet.named_modules()
                   if isinstance(module, Attention) and not module.is_cross_attention
                   and re.search(layer, name) is not None and not numeric_mismatch(layer, name)}
        if not matches:
            raise PAGNotSupportedError(f"PAG is not supported for this backbone: its UNet "
                                       f"({type(unet).__name__}) has no self-attention layer matching "
                                       f"{layer!r}; choose pag_layers among its self-attention layers.")
        found.update(matches)
    return found


def check_pag_layers(unet: nn.Module, layers: Sequence[str]) -> list[str]:
    """Names of the self-attention layers PAG perturbs; :class:`PAGNotSupportedError` if a rule matches none."""
    return sorted(_self_attention_layers(unet, layers))


@contextmanager
def perturbed_attention(unet: nn.Module, layers: Sequence[str]) -> Iterator[None]:
    """Install diffusers' PAG processor (CFG layout) on the matched self-attention layers; restore on exit."""
    from diffusers.models.attention_processor import PAGCFGIdentitySelfAttnProcessor2_0

    modules = _self_attention_layers(unet, layers)
    saved = {name: module.processor for name, module in modules.items()}
    processor = PAGCFGIdentitySelfAttnProcessor2_0()
    try:
        for module in modules.values():
            module.processor = processor
        yield
    finally:
        for name, module in modules.items():
            module.processor = saved[name]


def guided_denoiser(backbone, cond: PromptEmbeds, uncond: PromptEmbeds, cfg: torch.Tensor,
                    pag: torch.Tensor | None = None) -> Denoiser:
    """``denoiser(x, t) -> ε̂`` with per-sample CFG (and PAG) scales, one UNet call of 2B (3B with PAG) per step.

    With PAG the caller samples inside :func:`perturbed_attention`, which perturbs the last third of each call.

    Args:
        backbone: the frozen model.
        cond: conditional embeddings (B, L, D).
        uncond: unconditional embeddings (B, L, D).
        cfg: CFG scales w (B,).
        pag: PAG scales s (B,); ``None`` for CFG alone.
    """
    cond.check("cond")
    uncond.check("uncond")
    branches = uncond.cat(cond) if pag is None else uncond.cat(cond).cat(cond)  # (kB, L, D)
    k = 2 if pag is None else 3

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = backbone.predict_noise(torch.cat([x] * k), t, branches, guidance_scale=1.0).chunk(k)  # k × (B,C,h,w)
        w = cfg.to(x).view(-1, 1, 1, 1)
        out = eps[0] + w * (eps[1] - eps[0])
        if pag is not None:
            out = out + pag.to(x).view(-1, 1, 1, 1) * (eps[1] - eps[2])
        return out

    return denoise
