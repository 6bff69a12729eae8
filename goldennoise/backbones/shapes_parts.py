"""The components of the embedded ``shapes`` backbone, built from scratch for training (:mod:`goldennoise.lit`).

Stage 1 trains :func:`build_vae`; stage 2 trains :func:`build_unet` and :func:`build_text_encoder` on the frozen
VAE's latents with the :func:`training_scheduler` noise schedule and exports :func:`shapes_pipeline`, which
``load_backbone("shapes")`` then loads like any Stable Diffusion folder.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from goldennoise.backbones.sd import sd_pipeline
from goldennoise.backbones.tiny import clip_text_config


def build_vae(block_out_channels: tuple[int, ...] = (16, 32, 64), layers_per_block: int = 1,
              latent_channels: int = 4, norm_num_groups: int = 8, sample_size: int = 32) -> AutoencoderKL:
    """A diffusers ``AutoencoderKL`` for ``sample_size`` px images, downsampling ``2 ** (levels - 1)`` times."""
    blocks = len(block_out_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=tuple(block_out_channels),
                         sample_size=sample_size, down_block_types=("DownEncoderBlock2D",) * blocks,
                         up_block_types=("UpDecoderBlock2D",) * blocks,
                         layers_per_block=layers_per_block, latent_channels=latent_channels,
                         norm_num_groups=norm_num_groups)


def load_vae(folder: str | Path) -> AutoencoderKL:
    """A trained stage-1 VAE (``save_pretrained`` folder with its ``scaling_factor``)."""
    return AutoencoderKL.from_pretrained(folder)


def vae_downsampling(vae: AutoencoderKL) -> int:
    """Pixels per latent cell along a side."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def build_text_encoder(tokenizer: CLIPTokenizer, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
                       intermediate_size: int = 128) -> CLIPTextModel:
    """A small ``CLIPTextModel`` over the tokenizer's full vocabulary and context length."""
    return CLIPTextModel(clip_text_config(tokenizer, hidden_size, intermediate_size, num_heads, num_layers))


def build_unet(sample_size: int = 8, in_channels: int = 4, block_out_channels: tuple[int, ...] = (48, 96),
               layers_per_block: int = 1, cross_attention_dim: int = 64, attention_heads: int = 4,
               norm_num_groups: int = 16) -> UNet2DConditionModel:
    """A ``UNet2DConditionModel`` with cross-attention at every level (the latents are only 8 × 8)."""
    levels = len(block_out_channels)
    return UNet2DConditionModel(sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
                                block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                                down_block_types=("CrossAttnDownBlock2D",) * levels,
                                up_block_types=("CrossAttnUpBlock2D",) * levels,
                                cross_attention_dim=cross_attention_dim, attention_head_dim=attention_heads,
                                norm_num_groups=norm_num_groups)


def training_scheduler(num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2") -> DDPMScheduler:
    """The ε-prediction noise schedule the UNet trains with (``add_noise``)."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, clip_sample=False,
                         prediction_type="epsilon")


def shapes_pipeline(vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                    unet: UNet2DConditionModel, num_train_timesteps: int = 1000,
                    beta_schedule: str = "squaredcos_cap_v2") -> StableDiffusionPipeline:
    """The exported pipeline: these components and a DDIM scheduler on the training noise schedule."""
    scheduler = DDIMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
    return sd_pipeline(vae, text_encoder, tokenizer, unet, scheduler)
