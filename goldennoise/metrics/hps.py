r"""HPSv2 / HPSv2.1: Human Preference Score v2.

Wu et al., 2023, "Human Preference Score v2: A Solid Benchmark for Evaluating Human Preferences of Text-to-Image
Synthesis", arXiv:2306.09341.

An open_clip ViT-H-14 fine-tuned on HPD v2; the score is the cosine similarity of the L2-normalised image and text
embeddings, as in the reference ``hpsv2.img_score.score``:

.. math::
    \mathrm{HPS}(I, P) = \frac{E_I(I)}{\lVert E_I(I) \rVert} \cdot \frac{E_T(P)}{\lVert E_T(P) \rVert}

Raw values are about 0.2–0.3; papers usually print them ×100 (``scale=100``).

Weights: ``HPS_v2_compressed.pt`` (v2.0) and ``HPS_v2.1_compressed.pt`` (v2.1) from the hub repo ``xswu/HPSv2``,
a ``{"state_dict": ...}`` of the open_clip model, loaded strictly. Preprocessing equals open_clip's validation
transform (bicubic antialiased resize of the shorter side to 224, center crop, OpenAI mean/std), tokenization is
open_clip's CLIP BPE with 77 tokens. The reference runs under CUDA autocast on a GPU; this runs in the weights' dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import open_clip
import torch
from torch import nn

from goldennoise.metrics.base import PromptImageMetric, ScorerSource, freeze, resolve_scorer
from goldennoise.metrics.loading import load_state_dict, resolve_file, shared
from goldennoise.metrics.preprocess import ImagePreprocess

HUB_REPO = "xswu/HPSv2"
FILES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
"""Official checkpoint file of each version in :data:`HUB_REPO`."""
ARCH = "ViT-H-14"


class HPSv2Scorer(nn.Module):
    """Cosine similarity of an open_clip CLIP's normalised image and text embeddings.

    Args:
        model: an open_clip ``CLIP`` (ViT-H-14 for the real scores).
        tokenizer: open_clip tokenizer; ``None`` takes ``open_clip.get_tokenizer("ViT-H-14")`` (CLIP BPE, 77 tokens).
    """

    def __init__(self, model: nn.Module, tokenizer: Any = None) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer or open_clip.get_tokenizer(ARCH)
        size = model.visual.image_size
        self.preprocess = ImagePreprocess(size=size[0] if isinstance(size, tuple | list) else size)

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] and B prompts → (B,) cosine similarities."""
        pixels = self.preprocess(images).to(self.model.logit_scale.dtype)
        tokens = self.tokenizer(list(prompts)).to(images.device)  # (B, 77)
        image_features = self.model.encode_image(pixels, normalize=True)  # (B, D)
        text_features = self.model.encode_text(tokens, normalize=True)  # (B, D)
        return (image_features * text_features).sum(-1).float()


def build_hpsv2_model(arch: str = ARCH, device: str | torch.device = "cpu") -> nn.Module:
    """The open_clip architecture with random weights (no download); ``device="meta"`` builds it without memory."""
    return open_clip.create_model(arch, pretrained=None, device=device)


def load_hpsv2(version: str = "v2.1", checkpoint: str | None = None) -> HPSv2Scorer:
    """The HPSv2 scorer of ``version`` with official weights, shared by every caller in the process.

    Args:
        version: ``"v2.0"`` or ``"v2.1"``; picks the default checkpoint file.
        checkpoint: local path, URL or hub id (``owner/repo`` or ``owner/repo/file.pt``) of the checkpoint;
            ``None`` means ``xswu/HPSv2`` / :data:`FILES` [version].

    Raises:
        MissingWeightsError: the checkpoint is not available offline.
    """
    if version not in FILES:
        raise ValueError(f"Unknown HPS version {version!r}; choose one of {sorted(FILES)}.")
    source = checkpoint or HUB_REPO

    def build() -> HPSv2Scorer:
        path = resolve_file(source, FILES[version])
        model = build_hpsv2_model()
        model.load_state_dict(load_state_dict(path, key="state_dict"), strict=True)
        return freeze(HPSv2Scorer(model))

    return shared(("hpsv2", version, str(source)), build)


class HPSv2Score(PromptImageMetric):
    """HPSv2 (``version="v2.0"``) or HPSv2.1 (``"v2.1"``) as a torchmetrics metric; see the module docstring.

    Args:
        version: ``"v2.0"`` or ``"v2.1"``.
        model: ``None`` for the official checkpoint, a checkpoint path / URL / hub id, a built :class:`HPSv2Scorer`,
            or a factory returning one (how tests inject tiny models).
        scale: multiply scores by this (100 gives the papers' tables).
        kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> metric = HPSv2Score("v2.1")                # doctest: +SKIP
        >>> metric.update(images, prompts)             # doctest: +SKIP
        >>> self.log(metric.log_name("val"), metric)   # "val/hpsv2.1"  # doctest: +SKIP
    """

    def __init__(self, version: str = "v2.1", model: ScorerSource = None, scale: float = 1.0, **kwargs: Any) -> None:
        if version not in FILES:
            raise ValueError(f"Unknown HPS version {version!r}; choose one of {sorted(FILES)}.")
        scorer = resolve_scorer(model, lambda source: load_hpsv2(version, source), "hpsv2_scorer")
        super().__init__(scorer, scale, **kwargs)
        self.version = version
        self.name = "hpsv2" if version == "v2.0" else "hpsv2.1"

