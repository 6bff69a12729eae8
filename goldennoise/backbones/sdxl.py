"""Stable Diffusion XL (also SDXL-turbo and DreamShaper-XL): two CLIP text encoders and micro-conditioning.

The conditioning is the concatenation of both encoders' penultimate hidden states, plus the second encoder's
projected pooled embedding and six "time ids" ``(orig_h, orig_w, crop_top, crop_left, target_h, target_w)``
(Podell et al., 2023, Sec. 2.2). goldennoise derives the time ids from the latent size, with no crop and the
original size equal to the target size, which is what diffusers' pipeline does by default.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import StableDiffusionXLPipeline

from goldennoise.backbones.base import Backbone, PromptEmbeds


class StableDiffusionXLBackbone(Backbone):
    """SDXL behind :class:`~goldennoise.backbones.base.Backbone`."""

    family = "sdxl"
    pipeline_class = StableDiffusionXLPipeline

    @classmethod
    def from_pipeline(cls, pipe: StableDiffusionXLPipeline) -> StableDiffusionXLBackbone:
        """Wrap the components of a loaded pipeline (shared, not copied)."""
        return cls(pipe.unet, pipe.vae, [pipe.text_encoder, pipe.text_encoder_2], [pipe.tokenizer, pipe.tokenizer_2],
                   pipe.scheduler.config, force_zeros_for_empty_prompt=pipe.config.force_zeros_for_empty_prompt)

    def _encode_texts(self, prompts: list[str]) -> PromptEmbeds:
        hidden, pooled = [], None
        for tokenizer, text_encoder in zip(self.tokenizers, self.text_encoders, strict=True):
            out = text_encoder(self._tokenize(tokenizer, prompts), output_hidden_states=True)
            pooled = out[0]  # the projected pooled output of the last encoder is the one kept, (B, P)
            hidden.append(out.hidden_states[-2])  # (B, 77, D_i)
        return PromptEmbeds(torch.cat(hidden, dim=-1), pooled)

    def time_ids(self, x: torch.Tensor) -> torch.Tensor:
        """SDXL's six size conditions for latents ``x`` (B, C, h, w): ``(H, W, 0, 0, H, W)`` per sample, (B, 6)."""
        height, width = (s * self.vae_scale_factor for s in x.shape[-2:])
        return x.new_tensor([height, width, 0, 0, height, width]).expand(x.shape[0], 6)

    def _unet_kwargs(self, embeds: PromptEmbeds, x: torch.Tensor) -> dict[str, Any]:
        added = {"text_embeds": embeds.pooled, "time_ids": self.time_ids(x).to(embeds.embeds.dtype)}
        return {"encoder_hidden_states": embeds.embeds, "added_cond_kwargs": added}

    def _pipeline_components(self) -> dict[str, Any]:
        (tokenizer, tokenizer_2), (text_encoder, text_encoder_2) = self.tokenizers, self.text_encoders
        return dict(vae=self.vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
                    tokenizer_2=tokenizer_2, unet=self.unet,
                    force_zeros_for_empty_prompt=self.force_zeros_for_empty_prompt)
