"""A transformers ``CLIPModel`` with its processor's preprocessing redone on tensors.

The backbone of PickScore, CLIPScore and the LAION aesthetic score.

The image side repeats ``CLIPImageProcessor`` (shorter side → ``size["shortest_edge"]`` bicubic, center crop to
``crop_size``, ``image_mean`` / ``image_std``) with the constants read from the real processor, so it stays equal to
the processor while keeping gradients. Text uses the processor's tokenizer (padding, truncation to 77 tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import CLIPModel, CLIPProcessor

from goldennoise.metrics.loading import load_pretrained, shared
from goldennoise.metrics.preprocess import ImagePreprocess


def _embedding(output: torch.Tensor | object) -> torch.Tensor:
    # transformers 5 returns BaseModelOutputWithPooling from get_*_features; 4.x returned the tensor
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def preprocess_from_processor(processor: CLIPProcessor) -> ImagePreprocess:
    """The tensor twin of ``processor.image_processor`` (resize, center crop, normalise constants)."""
    image_processor = processor.image_processor
    size = image_processor.size
    crop = image_processor.crop_size
    return ImagePreprocess(size=size.get("shortest_edge") or min(size["height"], size["width"]),
                           crop=(crop["height"], crop["width"]),
                           mean=tuple(image_processor.image_mean), std=tuple(image_processor.image_std))


class CLIPBackbone(nn.Module):
    """Normalised CLIP image and text embeddings from [0, 1] image tensors and prompts.

    Args:
        model: a transformers ``CLIPModel``.
        processor: its ``CLIPProcessor`` (only the tokenizer and the image processor's constants are used).
    """

    def __init__(self, model: CLIPModel, processor: CLIPProcessor) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = processor.tokenizer
        self.preprocess = preprocess_from_processor(processor)

    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B, D) L2-normalised projected image embeddings."""
        pixels = self.preprocess(images).to(self.model.dtype)
        features = _embedding(self.model.get_image_features(pixel_values=pixels)).float()
        return features / features.norm(dim=-1, keepdim=True)

    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """B prompts → (B, D) L2-normalised projected text embeddings."""
        max_length = self.model.config.text_config.max_position_embeddings
        tokens = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=max_length,
                                return_tensors="pt").to(self.model.device)
        features = _embedding(self.model.get_text_features(input_ids=tokens["input_ids"],
                                                           attention_mask=tokens["attention_mask"])).float()
        return features / features.norm(dim=-1, keepdim=True)


def load_clip_backbone(model: str, processor: str | None = None) -> CLIPBackbone:
    """A ``CLIPModel`` folder or hub id with the processor of ``processor`` (default: the same), shared per process.

    Raises:
        MissingWeightsError: the model or processor is not available offline.
    """
    processor = processor or model

    def build() -> CLIPBackbone:
        clip = load_pretrained(CLIPModel.from_pretrained, model, "CLIP model")
        proc = load_pretrained(CLIPProcessor.from_pretrained, processor, "CLIP processor", "preprocessor_config.json")
        return CLIPBackbone(clip, proc).eval().requires_grad_(False)

    return shared(("hf-clip", model, processor), build)
