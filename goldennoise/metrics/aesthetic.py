r"""LAION aesthetic score (AES), the "improved aesthetic predictor".

Schuhmann, 2022, github.com/christophschuhmann/improved-aesthetic-predictor; used to filter LAION-5B (Schuhmann et
al., NeurIPS 2022).

A linear MLP (``sac+logos+ava1-l14-linearMSE.pth``) on the L2-normalised CLIP ViT-L/14 image embedding:

.. math::
    \mathrm{AES}(I) = \mathrm{MLP}\left(\frac{E_I(I)}{\lVert E_I(I) \rVert}\right) \in \text{about } [1, 10]

The MLP layout (``Linear(768, 1024) → Dropout → Linear(1024, 128) → Dropout → Linear(128, 64) → Dropout →
Linear(64, 16) → Linear(16, 1)``, no activations) is the reference's; its state-dict keys ``layers.{0,2,4,6,7}.*``
follow from that layout and are loaded strictly — not yet checked against the real ``.pth`` file. The CLIP tower is
transformers' ``openai/clip-vit-large-patch14`` (the same weights as OpenAI's ``ViT-L/14``), shared with
:class:`~goldennoise.metrics.clip_score.CLIPScore` when both use it. The prompt is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from goldennoise.metrics.base import PromptImageMetric, ScorerSource, freeze, resolve_scorer
from goldennoise.metrics.hf_clip import CLIPBackbone, load_clip_backbone
from goldennoise.metrics.loading import load_state_dict, resolve_file

CHECKPOINT = ("https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
              "sac%2Blogos%2Bava1-l14-linearMSE.pth")
CLIP_MODEL = "openai/clip-vit-large-patch14"


class AestheticMLP(nn.Module):
    """The LAION predictor's head: five linear layers with dropout between, no activations (``layers`` keys)."""

    def __init__(self, input_size: int = 768) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024), nn.Dropout(0.2),
            nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, input_size) → (B, 1)."""
        return self.layers(embeddings)


class AestheticScorer(nn.Module):
    """:class:`AestheticMLP` on the normalised image embedding of a CLIP backbone; prompts are ignored."""

    def __init__(self, backbone: CLIPBackbone, mlp: AestheticMLP) -> None:
        super().__init__()
        self.backbone = backbone
        self.mlp = mlp

    def forward(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B,) aesthetic scores."""
        return self.mlp(self.backbone.image_embeddings(images)).squeeze(-1)


def load_aesthetic(checkpoint: str | None = None, clip: str = CLIP_MODEL) -> AestheticScorer:
    """The LAION aesthetic scorer: MLP weights from ``checkpoint`` (path, URL or hub id) on the CLIP ``clip``.

    Raises:
        MissingWeightsError: the MLP file or the CLIP model is not available offline.
    """
    path = resolve_file(checkpoint or CHECKPOINT, "sac+logos+ava1-l14-linearMSE.pth")
    backbone = load_clip_backbone(clip)
    mlp = AestheticMLP(backbone.model.config.projection_dim)
    mlp.load_state_dict(load_state_dict(path), strict=True)
    return freeze(AestheticScorer(backbone, mlp))


class AestheticScore(PromptImageMetric):
    """LAION aesthetic score as a torchmetrics metric; ``update(images)`` (prompts optional and ignored).

    Args:
        model: ``None`` for the official MLP on ``openai/clip-vit-large-patch14``, an MLP checkpoint path / URL /
            hub id, a built :class:`AestheticScorer`, or a factory returning one.
        scale: multiply scores by this.
        kwargs: passed to :class:`torchmetrics.Metric`.
    """

    name = "aesthetic"
    needs_prompts = False

    def __init__(self, model: ScorerSource = None, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(resolve_scorer(model, load_aesthetic, "aesthetic_scorer"), scale, **kwargs)

