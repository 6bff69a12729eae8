"""Scorers with random weights of the real architecture classes, built offline.

Tiny ones for tests, and the real sizes (random weights) for the slow test and the benchmark.

Each builder returns the same scorer class the real loader returns, so a metric built on it runs the full real code
path (preprocessing, tokenization, formula). Tokenizers carry real vocabularies where a package ships one (CLIP BPE
from open-clip-torch); the BERT WordPiece vocabulary is a small made-up one (no package ships bert-base-uncased's).
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import open_clip
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from goldennoise.backbones.tiny import clip_tokenizer
from goldennoise.metrics.aesthetic import AestheticMLP, AestheticScorer
from goldennoise.metrics.base import freeze
from goldennoise.metrics.clip_score import CLIPScorer
from goldennoise.metrics.hf_clip import CLIPBackbone
from goldennoise.metrics.hps import HPSv2Scorer
from goldennoise.metrics.image_reward import (
    MED_CONFIG_BERT_BASE,
    ImageRewardConfig,
    ImageRewardModel,
    ImageRewardScorer,
    blip_tokenizer,
)
from goldennoise.metrics.pickscore import PickScorer

TINY_OPEN_CLIP = dict(embed_dim=32,
                      vision_cfg=dict(image_size=64, layers=2, width=64, head_width=16, patch_size=16),
                      text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=4, layers=2))
"""A 2-layer open_clip CLIP with the real CLIP vocabulary and context length (about 3.4M parameters)."""

PICKSCORE_SIZES = dict(text=(24, 1024, 4096, 16), vision=(32, 1280, 5120, 16), patch=14, projection=1024,
                       act="gelu")
CLIP_L14_SIZES = dict(text=(12, 768, 3072, 12), vision=(24, 1024, 4096, 16), patch=14, projection=768,
                      act="quick_gelu")
TINY_CLIP_SIZES = dict(text=(2, 32, 37, 4), vision=(2, 32, 37, 4), patch=16, projection=32, act="gelu")
"""(layers, width, MLP width, heads) per tower of transformers CLIP models: real PickScore, real ViT-L/14, tiny."""


def hpsv2_scorer(real_size: bool = False, seed: int = 0) -> HPSv2Scorer:
    """An HPSv2 scorer with random weights: open_clip ViT-H-14 (``real_size``) or :data:`TINY_OPEN_CLIP`."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = open_clip.create_model("ViT-H-14", pretrained=None) if real_size else open_clip.model.CLIP(
            **TINY_OPEN_CLIP)
    return freeze(HPSv2Scorer(model))


def _hf_clip_config(sizes: dict, image_size: int, tokenizer) -> CLIPConfig:
    (t_layers, t_width, t_mlp, t_heads), (v_layers, v_width, v_mlp, v_heads) = sizes["text"], sizes["vision"]
    text = dict(num_hidden_layers=t_layers, hidden_size=t_width, intermediate_size=t_mlp, num_attention_heads=t_heads,
                max_position_embeddings=77, vocab_size=len(tokenizer), hidden_act=sizes["act"],
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(num_hidden_layers=v_layers, hidden_size=v_width, intermediate_size=v_mlp, num_attention_heads=v_heads,
                  image_size=image_size, patch_size=sizes["patch"], hidden_act=sizes["act"])
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=sizes["projection"])


def hf_clip_backbone(sizes: dict = TINY_CLIP_SIZES, image_size: int = 64, num_merges: int = 2000,
                     seed: int = 0) -> CLIPBackbone:
    """A transformers CLIP backbone with random weights.

    ``sizes`` picks tiny (default), :data:`PICKSCORE_SIZES` or :data:`CLIP_L14_SIZES` (with ``image_size=224`` and the
    full vocabulary, ``num_merges=48_894``, for real size).
    """
    tokenizer = clip_tokenizer(num_merges)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}), tokenizer=tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CLIPModel(_hf_clip_config(sizes, image_size, tokenizer))
    return freeze(CLIPBackbone(model, processor))


def pickscore_scorer(real_size: bool = False, seed: int = 0) -> PickScorer:
    """A PickScore scorer with random weights (tiny, or the real ViT-H-14 size)."""
    if real_size:
        return freeze(PickScorer(hf_clip_backbone(PICKSCORE_SIZES, 224, 48_894, seed)))
    return freeze(PickScorer(hf_clip_backbone(seed=seed)))


def clip_scorer(real_size: bool = False, seed: int = 0) -> CLIPScorer:
    """A CLIPScore scorer with random weights (tiny, or the real ViT-L/14 size)."""
    if real_size:
        return freeze(CLIPScorer(hf_clip_backbone(CLIP_L14_SIZES, 224, 48_894, seed)))
    return freeze(CLIPScorer(hf_clip_backbone(seed=seed)))


def aesthetic_scorer(real_size: bool = False, seed: int = 0) -> AestheticScorer:
    """An aesthetic scorer with random weights (tiny CLIP, or the real ViT-L/14 size)."""
    backbone = hf_clip_backbone(CLIP_L14_SIZES, 224, 48_894, seed) if real_size else hf_clip_backbone(seed=seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed + 1)
        mlp = AestheticMLP(backbone.model.config.projection_dim)
    return freeze(AestheticScorer(backbone, mlp))


BERT_WORDS = ("a an the of in on with and photo picture painting image cat dog horse car tree house city sky red blue "
              "green big small old young man woman child sitting running standing beautiful").split()


def write_bert_vocab(folder: Path) -> Path:
    """A small WordPiece ``vocab.txt`` (specials, characters, ``##`` characters, a few words) in ``folder``."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars), *BERT_WORDS]
    path = Path(folder) / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def tiny_blip_tokenizer():
    """:func:`~goldennoise.metrics.image_reward.blip_tokenizer` on the vocabulary of :func:`write_bert_vocab`."""
    with tempfile.TemporaryDirectory() as tmp:
        write_bert_vocab(Path(tmp))
        return blip_tokenizer(tmp)


def tiny_med_config(vocab_size: int, hidden_size: int = 32) -> dict:
    """A 2-layer med (BERT with cross-attention) config, ``hidden_size`` wide."""
    return dict(MED_CONFIG_BERT_BASE, hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=37, max_position_embeddings=64, vocab_size=vocab_size, encoder_width=32,
                bos_token_id=vocab_size - 2, sep_token_id=3)  # [DEC] is added before [ENC]


def image_reward_config(real_size: bool = False, vocab_size: int = 30524, image_size: int = 224,
                        text_width: int = 32) -> ImageRewardConfig:
    """The real ImageReward v1.0 config, or a tiny one (2 blocks per tower, ViT width 32) at ``image_size``.

    The reference hard-codes the reward head's input to 768, so parity tests use ``text_width=768``.
    """
    if real_size:
        return ImageRewardConfig(text=dict(MED_CONFIG_BERT_BASE))
    return ImageRewardConfig(text=tiny_med_config(vocab_size, text_width), image_size=image_size, vision_width=32,
                             vision_depth=2, vision_heads=4)


def image_reward_scorer(real_size: bool = False, seed: int = 0, image_size: int = 64) -> ImageRewardScorer:
    """An ImageReward scorer with random weights (tiny with a made-up vocabulary, or the real size)."""
    tokenizer = tiny_blip_tokenizer()
    config = image_reward_config(real_size, len(tokenizer), image_size)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ImageRewardModel(config)
    return freeze(ImageRewardScorer(model, tokenizer))
