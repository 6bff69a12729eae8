r"""CLIPScore, computed as torchmetrics 1.9.0's ``CLIPScore`` does.

Hessel et al., 2021, "CLIPScore: A Reference-free Evaluation Metric for Image Captioning", arXiv:2104.08718:

.. math::
    \mathrm{CLIPScore}(I, P) = \max(100 \cdot \cos(E_I(I), E_T(P)), 0)

where the clamp at 0 applies to the mean (``compute``), per-sample scores are the raw :math:`100 \cos`. Default
weights ``openai/clip-vit-large-patch14`` (transformers ``CLIPModel`` and processor, hub id or local folder).

Written here rather than wrapped because torchmetrics 1.9.0's version fails under transformers 5 (it calls ``.norm``
on the ``ModelOutput`` that ``get_image_features`` now returns) and rejects local folders. One deliberate difference:
prompts longer than 77 tokens are truncated by the tokenizer (keeping the end-of-text token CLIP pools at), where
torchmetrics cuts the token ids after tokenizing; for prompts of at most 77 tokens the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from goldennoise.metrics.base import PromptImageMetric, ScorerSource, freeze, resolve_scorer
from goldennoise.metrics.hf_clip import CLIPBackbone, load_clip_backbone

MODEL = "openai/clip-vit-large-patch14"


class CLIPScorer(nn.Module):
    """``100 * cos(image, text)`` on a :class:`~goldennoise.metrics.hf_clip.CLIPBackbone`."""

    def __init__(self, backbone: CLIPBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] and B prompts → (B,) unclamped CLIP scores."""
        return 100 * (self.backbone.image_embeddings(images) * self.backbone.text_embeddings(prompts)).sum(-1)


def load_clip_scorer(model: str | None = None) -> CLIPScorer:
    """CLIPScore on ``model`` (hub id or folder with model and processor; default ``openai/clip-vit-large-patch14``)."""
    return freeze(CLIPScorer(load_clip_backbone(model or MODEL)))


class CLIPScore(PromptImageMetric):
    """CLIPScore as a torchmetrics metric: ``compute()`` is ``max(mean(100 cos), 0)``; see the module docstring.

    Args:
        model: ``None`` for ``openai/clip-vit-large-patch14``, another hub id or folder, a built
            :class:`CLIPScorer`, or a factory returning one.
        scale: multiply scores by this (the 100 of the definition is already applied).
        kwargs: passed to :class:`torchmetrics.Metric`.
    """

    name = "clip_score"

    def __init__(self, model: ScorerSource = None, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(resolve_scorer(model, load_clip_scorer, "clip_scorer"), scale, **kwargs)

    def compute(self) -> torch.Tensor:
        """``max(mean score, 0)``, as torchmetrics."""
        return super().compute().clamp(min=0)

