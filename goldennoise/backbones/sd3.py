"""Stable Diffusion 3 / 3.5: two CLIP encoders and T5-XXL, a joint-attention transformer (MMDiT) on a flow grid.

Conditioning (Esser et al., 2024, arXiv 2403.03206, Sec. 5.2): the two CLIP penultimate hidden states concatenated
on the feature axis, zero-padded to T5's width and stacked before the T5 tokens → ``embeds`` (B, 77 + L_T5, D); the
two projected pooled outputs concatenated → ``pooled`` (B, P). Guidance is classifier-free, as in SD/SDXL. Text is
encoded by the diffusers pipeline's own ``encode_prompt`` over the shared components, so it is the pipeline's.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import StableDiffusion3Pipeline

from goldennoise.backbones.base import PromptEmbeds
from goldennoise.backbones.flow import FlowBackbone


class StableDiffusion3Backbone(FlowBackbone):
    """SD3 / SD3.5 behind :class:`~goldennoise.backbones.base.Backbone`.

    Args:
        transformer: an ``SD3Transformer2DModel``.
        vae: an ``AutoencoderKL`` with a ``shift_factor``.
        text_encoders: CLIP-L, CLIP-G (both with projection) and T5.
        tokenizers: their tokenizers.
        scheduler_config: the ``FlowMatchEulerDiscreteScheduler`` configuration (shift).
        max_sequence_length: T5 tokens (the pipeline's default 256).
    """

    family = "sd3"
    pipeline_class = StableDiffusion3Pipeline

    def __init__(self, transformer: Any, vae: Any, text_encoders: list[Any], tokenizers: list[Any],
                 scheduler_config: dict[str, Any], max_sequence_length: int = 256) -> None:
        super().__init__(transformer, vae, text_encoders, tokenizers, scheduler_config)
        self.max_sequence_length = max_sequence_length

    @classmethod
    def from_pipeline(cls, pipe: StableDiffusion3Pipeline,
                      max_sequence_length: int | None = None) -> StableDiffusion3Backbone:
        """Wrap the components of a loaded pipeline (shared, not copied).

        T5 tokens default to 256, or the T5 tokenizer's ``model_max_length`` if shorter.
        """
        if max_sequence_length is None:
            max_sequence_length = min(256, pipe.tokenizer_3.model_max_length)
        return cls(pipe.transformer, pipe.vae, [pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3],
                   [pipe.tokenizer, pipe.tokenizer_2, pipe.tokenizer_3], pipe.scheduler.config, max_sequence_length)

    def _encode_texts(self, prompts: list[str]) -> PromptEmbeds:
        embeds, _, pooled, _ = self.pipeline().encode_prompt(
            prompt=prompts, prompt_2=None, prompt_3=None, device=self.device, do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length)
        return PromptEmbeds(embeds, pooled)  # (B, 77 + L, D), (B, P)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, embeds: PromptEmbeds) -> torch.Tensor:
        return self.transformer(hidden_states=x, timestep=t.expand(x.shape[0]), encoder_hidden_states=embeds.embeds,
                                pooled_projections=embeds.pooled, return_dict=False)[0]

    def latent_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, int, int]:
        """``(C, h, w)``; the image side must be divisible by the VAE factor times the transformer's patch size."""
        height, width = height or self.default_size, width or self.default_size
        f = self.vae_scale_factor * self.transformer.config.patch_size
        if height % f or width % f:
            raise ValueError(f"Image size {height}x{width} must be divisible by {f} (VAE factor x patch size).")
        return super().latent_shape(height, width)

    def _pipeline_components(self) -> dict[str, Any]:
        encoders = list(self.text_encoders)
        return dict(transformer=self.transformer, vae=self.vae, text_encoder=encoders[0], text_encoder_2=encoders[1],
                    text_encoder_3=encoders[2], tokenizer=self.tokenizers[0], tokenizer_2=self.tokenizers[1],
                    tokenizer_3=self.tokenizers[2])
