r"""ImageReward, without the ``image-reward`` package.

Xu et al., 2023, "ImageReward: Learning and Evaluating Human Preferences for Text-to-Image Generation", NeurIPS 2023,
arXiv:2304.05977.

Architecture (the reference ``ImageReward.ImageReward``): BLIP's ViT-L/16 at 224 px encodes the image; a BERT-base
text encoder with cross-attention to the image tokens reads the prompt; an MLP maps the ``[CLS]`` state to a reward,
standardised with the training statistics:

.. math::
    r(I, P) = \frac{\mathrm{MLP}(h_{[CLS]}(P \mid I)) - 0.16717362830052426}{1.0333394966054072}

Built from timm's ``VisionTransformer`` and transformers' ``BlipTextModel`` (BLIP's ``med.py`` port), arranged so the
state-dict keys equal the reference's (``blip.visual_encoder.*``, ``blip.text_encoder.*``, ``blip.vision_proj.*``,
``blip.text_proj.*``, ``mlp.layers.*``): the official ``ImageReward.pt`` loads strictly. Tokenizer: bert-base-uncased
plus ``[DEC]`` (bos) and ``[ENC]``, padded/truncated to 35 tokens. Images are resized bicubic and center-cropped to 224
with the OpenAI CLIP mean/std (the reference does this on PIL images). Papers often print the reward ×100.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from transformers import BertTokenizer, BlipTextConfig, BlipTextModel

from goldennoise.metrics.aesthetic import AestheticMLP
from goldennoise.metrics.base import PromptImageMetric, ScorerSource, freeze, resolve_scorer
from goldennoise.metrics.loading import load_pretrained, load_state_dict, resolve_file, shared
from goldennoise.metrics.preprocess import ImagePreprocess

HUB_REPO = "THUDM/ImageReward"
TOKENIZER = "bert-base-uncased"
REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
MAX_LENGTH = 35
"""Prompt length (tokens) of the reference ``score``."""


@dataclass(frozen=True)
class ImageRewardConfig:
    """Sizes of the network; the defaults are the real ImageReward v1.0 (BLIP ViT-L/16, BERT-base from med config).

    Args:
        text: the BERT ("med") config as in ``med_config.json``.
        image_size: input resolution of the ViT.
        patch_size: ViT patch size.
        vision_width: ViT width.
        vision_depth: ViT blocks.
        vision_heads: ViT attention heads.
        embed_dim: width of BLIP's (unused) ``vision_proj`` / ``text_proj``.
    """

    text: dict
    image_size: int = 224
    patch_size: int = 16
    vision_width: int = 1024
    vision_depth: int = 24
    vision_heads: int = 16
    embed_dim: int = 256

    def text_config(self) -> BlipTextConfig:
        """The BLIP text config: every layer cross-attends to the ``vision_width`` image tokens."""
        keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "max_position_embeddings", "hidden_act", "layer_norm_eps", "pad_token_id", "bos_token_id",
                "sep_token_id")
        return BlipTextConfig(**{k: self.text[k] for k in keys if k in self.text},
                              encoder_hidden_size=self.vision_width, is_decoder=True)


MED_CONFIG_BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                            max_position_embeddings=512, layer_norm_eps=1e-12, type_vocab_size=2, pad_token_id=0,
                            vocab_size=30524, encoder_width=768, add_cross_attention=True, hidden_act="gelu")
"""ImageReward's ``med_config.json`` (bert-base with cross-attention), for building the real size offline."""


class BLIP(nn.Module):
    """The parts of BLIP that ImageReward keeps: image ViT, cross-attending text encoder, two projections."""

    def __init__(self, config: ImageRewardConfig) -> None:
        super().__init__()
        self.visual_encoder = VisionTransformer(
            img_size=config.image_size, patch_size=config.patch_size, embed_dim=config.vision_width,
            depth=config.vision_depth, num_heads=config.vision_heads, mlp_ratio=4.0, qkv_bias=True,
            num_classes=0, global_pool="")
        text_config = config.text_config()
        self.text_encoder = BlipTextModel(text_config, add_pooling_layer=False)
        embeddings = self.text_encoder.embeddings
        # BLIP's med.py keeps position_ids as a persistent buffer: the official checkpoint has the key
        embeddings.register_buffer("position_ids", embeddings.position_ids.clone(), persistent=True)
        self.vision_proj = nn.Linear(config.vision_width, config.embed_dim)
        self.text_proj = nn.Linear(text_config.hidden_size, config.embed_dim)


class ImageRewardModel(nn.Module):
    """BLIP + reward MLP; ``forward(pixels, input_ids, attention_mask) -> (B,)`` standardised rewards."""

    def __init__(self, config: ImageRewardConfig) -> None:
        super().__init__()
        self.config = config
        self.blip = BLIP(config)
        self.mlp = AestheticMLP(self.blip.text_encoder.config.hidden_size)  # the same 5-layer linear head

    @classmethod
    def from_checkpoint(cls, path: Path, config: ImageRewardConfig) -> ImageRewardModel:
        """The network of ``config`` with the state dict of ``path`` (reference key layout), loaded strictly."""
        model = cls(config)
        model.load_state_dict(load_state_dict(path), strict=True)
        return model

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised pixels, (B, L) tokens and mask → (B,) rewards."""
        image_embeds = self.blip.visual_encoder.forward_features(pixels)  # (B, 1 + N, vision_width)
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=pixels.device)
        text_output = self.blip.text_encoder(input_ids=input_ids, attention_mask=attention_mask,
                                             encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts)
        cls = text_output.last_hidden_state[:, 0, :].float()  # (B, hidden)
        return ((self.mlp(cls) - REWARD_MEAN) / REWARD_STD).squeeze(-1)


class ImageRewardScorer(nn.Module):
    """Images in [0, 1] and prompts → ImageReward rewards (B,), differentiable w.r.t. the images.

    Args:
        model: the network.
        tokenizer: a BLIP tokenizer (see :func:`blip_tokenizer`).
    """

    def __init__(self, model: ImageRewardModel, tokenizer: BertTokenizer) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.preprocess = ImagePreprocess(size=model.config.image_size)

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] and B prompts → (B,) rewards."""
        pixels = self.preprocess(images).to(self.model.blip.vision_proj.weight.dtype)  # (B, 3, 224, 224)
        tokens = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=MAX_LENGTH,
                                return_tensors="pt").to(images.device)
        return self.model(pixels, tokens["input_ids"], tokens["attention_mask"])


def blip_tokenizer(source: str | Path = TOKENIZER) -> BertTokenizer:
    """BLIP's tokenizer: a BERT WordPiece tokenizer (hub id or folder) plus ``[DEC]`` as bos and ``[ENC]``."""
    tokenizer = load_pretrained(BertTokenizer.from_pretrained, str(source), "BERT tokenizer", "vocab.txt")
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    tokenizer.enc_token_id = tokenizer.convert_tokens_to_ids("[ENC]")
    return tokenizer


def read_med_config(source: str | None) -> dict:
    """The med (BERT) config from a path / URL / hub id of ``med_config.json``; default ``THUDM/ImageReward``."""
    return json.loads(resolve_file(source or HUB_REPO, "med_config.json").read_text(encoding="utf-8"))


def load_image_reward(checkpoint: str | None = None, med_config: str | None = None,
                      tokenizer: str = TOKENIZER) -> ImageRewardScorer:
    """ImageReward v1.0 with official weights, shared by every caller in the process.

    Args:
        checkpoint: path, URL or hub id of ``ImageReward.pt``; default ``THUDM/ImageReward``.
        med_config: path, URL or hub id of ``med_config.json``; default ``THUDM/ImageReward``.
        tokenizer: hub id or folder of the BERT tokenizer (``bert-base-uncased``).

    Raises:
        MissingWeightsError: a file is not available offline.
    """
    source = checkpoint or HUB_REPO

    def build() -> ImageRewardScorer:
        path = resolve_file(source, "ImageReward.pt")
        model = ImageRewardModel.from_checkpoint(path, ImageRewardConfig(text=read_med_config(med_config)))
        return freeze(ImageRewardScorer(model, blip_tokenizer(tokenizer)))

    return shared(("image_reward", str(source), med_config, str(tokenizer)), build)


class ImageReward(PromptImageMetric):
    """ImageReward as a torchmetrics metric; see the module docstring.

    Args:
        model: ``None`` for ``THUDM/ImageReward``, a checkpoint path / URL / hub id, a built
            :class:`ImageRewardScorer`, or a factory returning one.
        scale: multiply rewards by this (100 gives the tables that print ImageReward ×100).
        kwargs: passed to :class:`torchmetrics.Metric`.
    """

    name = "image_reward"

    def __init__(self, model: ScorerSource = None, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(resolve_scorer(model, load_image_reward, "image_reward_scorer"), scale, **kwargs)

