"""Tiny offline models of the real architectures, after diffusers' ``get_dummy_components``.

Every component is the real diffusers / transformers class built from a small config with random weights, and the
tokenizer carries the real CLIP BPE vocabulary shipped inside open-clip-torch, so tokenization matches the real
models (``docs/dependencies.md`` §7): 64 px images ↔ 4×32×32 latents, about 1M UNet parameters.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from open_clip.tokenizer import bytes_to_unicode, default_bpe
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from goldennoise.backbones.sd import StableDiffusionBackbone, sd_pipeline
from goldennoise.backbones.sdxl import StableDiffusionXLBackbone

CLIP_NUM_MERGES = 48_894
"""Merges in OpenAI's CLIP BPE file; with the 512 byte symbols and two specials they make 49,408 tokens."""

SD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                    set_alpha_to_one=False, steps_offset=1)
"""The real SD / SDXL noise schedule, so tiny models reproduce real timestep and ᾱ values."""


def clip_tokenizer(num_merges: int = CLIP_NUM_MERGES, max_length: int = 77) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` built offline from the CLIP BPE vocabulary that open-clip-torch ships.

    Token ids equal OpenAI CLIP's for the first ``num_merges`` merges (all of them by default); fewer merges give a
    smaller vocabulary (512 + ``num_merges`` + 2 tokens) with the same ids for the tokens it keeps.
    """
    if not 0 <= num_merges <= CLIP_NUM_MERGES:
        raise ValueError(f"num_merges must be in [0, {CLIP_NUM_MERGES}], got {num_merges}.")
    with gzip.open(default_bpe(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")[1 : 1 + num_merges]  # line 0 is a header
    merges = [tuple(line.split()) for line in lines]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges_file = Path(tmp, "vocab.json"), Path(tmp, "merges.txt")
        vocab.write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
        return CLIPTokenizer(str(vocab), str(merges_file), model_max_length=max_length, pad_token="<|endoftext|>")


def clip_text_config(tokenizer: CLIPTokenizer, hidden_size: int = 32, intermediate_size: int = 37,
                     num_attention_heads: int = 4, num_hidden_layers: int = 2, **extra: int) -> CLIPTextConfig:
    """A small ``CLIPTextConfig`` over the tokenizer's whole vocabulary, context length and special tokens."""
    return CLIPTextConfig(hidden_size=hidden_size, intermediate_size=intermediate_size,
                          num_attention_heads=num_attention_heads, num_hidden_layers=num_hidden_layers,
                          max_position_embeddings=tokenizer.model_max_length, vocab_size=len(tokenizer),
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, **extra)


def _tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=32)


def _tiny_unet(**overrides: object) -> UNet2DConditionModel:
    return UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=32,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **overrides)


def tiny_sd_pipeline(
    prediction_type: str = "epsilon", seed: int = 0, num_merges: int = 2000
) -> StableDiffusionPipeline:
    """A tiny SD 1.x / 2.x pipeline (``prediction_type="v_prediction"`` for the SD 2.x 768 flavour)."""
    tokenizer = clip_tokenizer(num_merges)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = _tiny_unet(cross_attention_dim=32, attention_head_dim=4, norm_num_groups=32)
        vae = _tiny_vae()
        text_encoder = CLIPTextModel(clip_text_config(tokenizer))
    scheduler = DDIMScheduler(**SD_SCHEDULER, prediction_type=prediction_type)
    return sd_pipeline(vae, text_encoder, tokenizer, unet, scheduler)


def tiny_sdxl_pipeline(seed: int = 0, num_merges: int = 2000) -> StableDiffusionXLPipeline:
    """A tiny SDXL pipeline: two text encoders (the second with projection), text-time micro-conditioning."""
    tokenizer = clip_tokenizer(num_merges)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = _tiny_unet(cross_attention_dim=64, attention_head_dim=(2, 4), use_linear_projection=True,
                          transformer_layers_per_block=(1, 2), addition_embed_type="text_time",
                          addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32,
                          norm_num_groups=1)
        vae = _tiny_vae()
        text_encoder = CLIPTextModel(clip_text_config(tokenizer))
        text_encoder_2 = CLIPTextModelWithProjection(clip_text_config(tokenizer, projection_dim=32))
    return StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet,
                                     scheduler=DDIMScheduler(**SD_SCHEDULER, timestep_spacing="leading"),
                                     force_zeros_for_empty_prompt=True)


def tiny_sd(prediction_type: str = "epsilon", seed: int = 0) -> StableDiffusionBackbone:
    """The tiny SD pipeline of :func:`tiny_sd_pipeline` as a backbone."""
    return StableDiffusionBackbone.from_pipeline(tiny_sd_pipeline(prediction_type, seed))


def tiny_sdxl(seed: int = 0) -> StableDiffusionXLBackbone:
    """The tiny SDXL pipeline of :func:`tiny_sdxl_pipeline` as a backbone."""
    return StableDiffusionXLBackbone.from_pipeline(tiny_sdxl_pipeline(seed))
