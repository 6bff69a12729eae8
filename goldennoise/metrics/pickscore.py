r"""PickScore.

Kirstain et al., 2023, "Pick-a-Pic: An Open Dataset of User Preferences for Text-to-Image Generation",
arXiv:2305.01569.

A CLIP ViT-H-14 (transformers ``CLIPModel``) fine-tuned on Pick-a-Pic; the score is the reference formula

.. math::
    \mathrm{PickScore}(I, P) = e^{s} \cdot \cos(E_T(P), E_I(I))

with :math:`s` the model's ``logit_scale`` (real weights: about 21–23). Weights ``yuvalkirstain/PickScore_v1``, with
the processor of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (224 px bicubic, center crop, OpenAI mean/std, CLIP BPE
77 tokens), both loaded with ``from_pretrained`` (hub id or local folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from goldennoise.metrics.base import PromptImageMetric, ScorerSource, freeze, resolve_scorer
from goldennoise.metrics.hf_clip import CLIPBackbone, load_clip_backbone

MODEL = "yuvalkirstain/PickScore_v1"
PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


class PickScorer(nn.Module):
    """``logit_scale.exp() * cos(text, image)`` on a :class:`~goldennoise.metrics.hf_clip.CLIPBackbone`."""

    def __init__(self, backbone: CLIPBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] and B prompts → (B,) PickScores."""
        image_embeddings = self.backbone.image_embeddings(images)  # (B, D)
        text_embeddings = self.backbone.text_embeddings(prompts)  # (B, D)
        return self.backbone.model.logit_scale.exp().float() * (image_embeddings * text_embeddings).sum(-1)


def load_pickscore(model: str | None = None, processor: str = PROCESSOR) -> PickScorer:
    """PickScore with ``model`` (hub id or folder; default ``yuvalkirstain/PickScore_v1``) and ``processor``."""
    return freeze(PickScorer(load_clip_backbone(model or MODEL, processor)))


class PickScore(PromptImageMetric):
    """PickScore as a torchmetrics metric; see the module docstring.

    Args:
        model: ``None`` for ``yuvalkirstain/PickScore_v1``, another hub id or folder, a built :class:`PickScorer`,
            or a factory returning one.
        scale: multiply scores by this (1 keeps the reference numbers, about 21–23).
        kwargs: passed to :class:`torchmetrics.Metric`.
    """

    name = "pickscore"

    def __init__(self, model: ScorerSource = None, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(resolve_scorer(model, load_pickscore, "pickscore_scorer"), scale, **kwargs)

