"""Hunyuan-DiT (v1.1 / v1.2): a bilingual CLIP-style BERT encoder + mT5, a DiT predicting v (and σ) on a DDPM grid.

Conditioning (Li et al., 2024, arXiv 2405.08748): ``embeds`` = the first encoder's last hidden state (B, 77, 1024)
— the embedding NPNet's official DiT checkpoint reads —, and in ``extras`` its attention mask, the mT5 tokens
(B, 256, 2048) and their mask. The transformer also takes 2-d rotary position embeddings of the patch grid, a style
id (0) and six size conditions ``(1024, 1024, H, W, 0, 0)`` (original size, target size, crop corner; used by
models with ``use_style_cond_and_image_meta_size``), built here as the pipeline builds them. Its output has 2C
channels (learned variance); the first C are v, converted to ε for DDIM like SD 2.x's. Guidance is classifier-free.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import HunyuanDiTPipeline
from diffusers.models.embeddings import get_2d_rotary_pos_embed
from diffusers.pipelines.hunyuandit.pipeline_hunyuandit import get_resize_crop_region_for_grid
from torch import nn

from goldennoise.backbones.base import Backbone, PromptEmbeds

ORIGINAL_SIZE = (1024, 1024)
"""The pipeline's default ``original_size`` size condition."""


class HunyuanDiTBackbone(Backbone):
    """Hunyuan-DiT behind :class:`~goldennoise.backbones.base.Backbone` (DDIM grid, ε after conversion)."""

    family = "hunyuan_dit"
    pipeline_class = HunyuanDiTPipeline
    load_kwargs = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    network_name = "transformer"

    @classmethod
    def from_pipeline(cls, pipe: HunyuanDiTPipeline) -> HunyuanDiTBackbone:
        """Wrap the components of a loaded pipeline (shared, not copied)."""
        return cls(pipe.transformer, pipe.vae, [pipe.text_encoder, pipe.text_encoder_2],
                   [pipe.tokenizer, pipe.tokenizer_2], pipe.scheduler.config)

    @property
    def unet(self) -> nn.Module:
        """The denoiser network under its UNet-era name, so ``CostMeter(backbone.unet)`` call sites keep counting."""
        return self.transformer

    def _encode_texts(self, prompts: list[str]) -> PromptEmbeds:
        pipe = self.pipeline()
        embeds, _, mask, _ = pipe.encode_prompt(prompts, device=self.device, dtype=self.dtype,
                                                do_classifier_free_guidance=False, text_encoder_index=0)
        embeds_2, _, mask_2, _ = pipe.encode_prompt(prompts, device=self.device, dtype=self.dtype,
                                                    do_classifier_free_guidance=False, text_encoder_index=1)
        return PromptEmbeds(embeds, None, {"mask": mask, "embeds_2": embeds_2, "mask_2": mask_2})

    def _rotary(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """2-d rotary embeddings of the patch grid, with the pipeline's grid (pixels // 8 // patch, base 512 px)."""
        patch = self.transformer.config.patch_size
        grid_h, grid_w = h * self.vae_scale_factor // 8 // patch, w * self.vae_scale_factor // 8 // patch
        crops = get_resize_crop_region_for_grid((grid_h, grid_w), 512 // 8 // patch)
        head_dim = self.transformer.inner_dim // self.transformer.num_heads
        return get_2d_rotary_pos_embed(head_dim, crops, (grid_h, grid_w), device=self.device, output_type="pt")

    def size_conditions(self, x: torch.Tensor) -> torch.Tensor:
        """The six size conditions of latents ``x`` (B, C, h, w): ``(1024, 1024, H, W, 0, 0)`` per sample, (B, 6)."""
        height, width = (s * self.vae_scale_factor for s in x.shape[-2:])
        return x.new_tensor([*ORIGINAL_SIZE, height, width, 0, 0]).repeat(x.shape[0], 1)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, embeds: PromptEmbeds) -> torch.Tensor:
        b, c, h, w = x.shape
        out = self.transformer(x, t.expand(b).to(x.dtype), encoder_hidden_states=embeds.embeds,
                               text_embedding_mask=embeds.extras["mask"],
                               encoder_hidden_states_t5=embeds.extras["embeds_2"],
                               text_embedding_mask_t5=embeds.extras["mask_2"],
                               image_meta_size=self.size_conditions(x), style=torch.zeros(b, dtype=torch.long,
                                                                                           device=x.device),
                               image_rotary_emb=self._rotary(h, w), return_dict=False)[0]
        return out[:, :c]  # (B, C, h, w); the other C channels are the learned variance

    def _pipeline_components(self) -> dict[str, Any]:
        (tokenizer, tokenizer_2), (text_encoder, text_encoder_2) = self.tokenizers, self.text_encoders
        return dict(vae=self.vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=self.transformer,
                    text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, **self.load_kwargs)
