"""FLUX.1 (dev, schnell): CLIP-L pooled + T5 tokens, a double/single-stream transformer on 2×2-packed latents.

**Packing stays here.** The transformer sees 2×2 patches of the latents as tokens: (B, C, h, w) →
(B, h/2·w/2, 4C), with 3-d position ids ``(0, row, col)`` per patch. Noise methods and samplers see the unpacked
(B, C, h, w) latents at unit variance; :meth:`FluxBackbone._forward` packs, calls the transformer and unpacks.

**Guidance.** FLUX.1-dev is guidance-distilled: the guidance scale is a *network input* (an embedding of ω, default
3.5), not classifier-free guidance, and one conditional row per image is evaluated. On such a model
``denoiser(cond, uncond, ω)`` feeds ω to that input and ignores ``uncond``: Redenoise's ω_l / ω_w are two values of
the input, the evaluation's ``guidance_scale`` is the pipeline's ``guidance_scale``, and ω costs no extra rows.
FLUX.1-schnell has no guidance input: there ω is true classifier-free guidance against the empty prompt, exactly
diffusers' ``true_cfg_scale`` with ``negative_prompt=""`` (two rows per image unless ω ∈ {0, 1}); ω = 1 is the
pipeline's default unguided sampling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import FluxPipeline

from goldennoise.backbones.base import PromptEmbeds
from goldennoise.backbones.flow import FlowBackbone


def pack_latents(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) → (B, h/2·w/2, 4C): 2×2 patches as tokens, row-major, channels-major inside a token."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`pack_latents`: (B, h/2·w/2, 4C) → (B, C, h, w)."""
    b, _, d = tokens.shape
    c = d // 4
    return tokens.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def image_ids(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Position ids ``(0, row, col)`` of the (h/2)×(w/2) packed tokens, shape (h/2·w/2, 3)."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = torch.arange(h // 2)[:, None]
    ids[..., 2] = torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


class FluxBackbone(FlowBackbone):
    """FLUX.1 dev / schnell behind :class:`~goldennoise.backbones.base.Backbone`.

    Args:
        transformer: a ``FluxTransformer2DModel`` (``guidance_embeds=True`` for dev).
        vae: an ``AutoencoderKL`` with a ``shift_factor`` (16 latent channels in the real models).
        text_encoders: CLIP-L (pooled output) and T5.
        tokenizers: their tokenizers.
        scheduler_config: the ``FlowMatchEulerDiscreteScheduler`` configuration (dynamic shift for dev).
        max_sequence_length: T5 tokens (dev 512, schnell at most 256).
        native_size: the default image side in pixels (FluxPipeline's 1024).
    """

    family = "flux"
    pipeline_class = FluxPipeline

    def __init__(self, transformer: Any, vae: Any, text_encoders: list[Any], tokenizers: list[Any],
                 scheduler_config: dict[str, Any], max_sequence_length: int = 512, native_size: int = 1024) -> None:
        super().__init__(transformer, vae, text_encoders, tokenizers, scheduler_config)
        self.max_sequence_length, self.native_size = max_sequence_length, native_size

    @classmethod
    def from_pipeline(cls, pipe: FluxPipeline, max_sequence_length: int | None = None,
                      native_size: int = 1024) -> FluxBackbone:
        """Wrap the components of a loaded pipeline (shared, not copied).

        T5 tokens default to 512 (dev) / 256 (schnell), or the T5 tokenizer's ``model_max_length`` if shorter.
        """
        if max_sequence_length is None:
            max_sequence_length = min(512 if pipe.transformer.config.guidance_embeds else 256,
                                      pipe.tokenizer_2.model_max_length)
        return cls(pipe.transformer, pipe.vae, [pipe.text_encoder, pipe.text_encoder_2],
                   [pipe.tokenizer, pipe.tokenizer_2], pipe.scheduler.config, max_sequence_length, native_size)

    @property
    def guidance_distilled(self) -> bool:
        """True for FLUX.1-dev-like models, whose guidance scale is an input of the transformer."""
        return bool(self.transformer.config.guidance_embeds)

    @property
    def latent_channels(self) -> int:
        """Unpacked latent channels (the transformer's input is 4 of them per packed token)."""
        return self.transformer.config.in_channels // 4

    @property
    def default_size(self) -> int:
        """The native image side in pixels (``native_size``)."""
        return self.native_size

    def latent_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, int, int]:
        """``(C, h, w)``; packing needs the image side divisible by twice the VAE factor."""
        height, width = height or self.default_size, width or self.default_size
        f = 2 * self.vae_scale_factor
        if height % f or width % f:
            raise ValueError(f"Image size {height}x{width} must be divisible by {f} (FLUX packs 2x2 latent patches).")
        return super().latent_shape(height, width)

    def _image_seq_len(self, h: int, w: int) -> int:
        return (h // 2) * (w // 2)

    def _input_sigmas(self, num_steps: int) -> np.ndarray:
        return np.linspace(1.0, 1 / num_steps, num_steps)  # FluxPipeline's spacing before the shift

    def evaluations_per_step(self, guidance_scale: float) -> int:
        """1 on a guidance-distilled model (ω is an input), else classifier-free guidance's count."""
        return 1 if self.guidance_distilled else super().evaluations_per_step(guidance_scale)

    def _encode_texts(self, prompts: list[str]) -> PromptEmbeds:
        embeds, pooled, _ = self.pipeline().encode_prompt(prompt=prompts, prompt_2=None, device=self.device,
                                                          max_sequence_length=self.max_sequence_length)
        return PromptEmbeds(embeds, pooled)  # (B, L, D_T5), (B, D_CLIP)

    def _run(self, x: torch.Tensor, t: torch.Tensor, embeds: PromptEmbeds, guidance: float | None) -> torch.Tensor:
        """One transformer call on unpacked latents ``x`` (B, C, h, w); the velocity comes back unpacked."""
        b, _, h, w = x.shape
        scale = None if guidance is None else torch.full((b,), guidance, device=x.device, dtype=torch.float32)
        txt_ids = torch.zeros(embeds.embeds.shape[1], 3, device=x.device, dtype=embeds.embeds.dtype)
        out = self.transformer(hidden_states=pack_latents(x), timestep=t.expand(b).to(x.dtype) / 1000,
                               guidance=scale, pooled_projections=embeds.pooled,
                               encoder_hidden_states=embeds.embeds, txt_ids=txt_ids,
                               img_ids=image_ids(h, w, x.device, x.dtype), return_dict=False)[0]
        return unpack_latents(out, h, w)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, embeds: PromptEmbeds) -> torch.Tensor:
        return self._run(x, t, embeds, None)

    def predict(self, x: torch.Tensor, t: torch.Tensor | int, cond: PromptEmbeds, uncond: PromptEmbeds | None = None,
                guidance_scale: float = 1.0, stop_network_gradient: bool = False) -> torch.Tensor:
        """The velocity; ω is the distilled guidance input on dev, classifier-free guidance on schnell."""
        if not self.guidance_distilled:
            return super().predict(x, t, cond, uncond, guidance_scale, stop_network_gradient)
        if len(cond) != x.shape[0]:
            raise ValueError(f"Latents have batch {x.shape[0]} but the prompt embeddings have batch {len(cond)}.")
        t = torch.as_tensor(t, device=x.device)
        x_in = x.detach() if stop_network_gradient else x
        output = self._run(x_in.to(self.dtype), t, cond, guidance_scale).to(x.dtype)
        return self._convert(output.detach() if stop_network_gradient else output, x, t)

    def _pipeline_components(self) -> dict[str, Any]:
        (tokenizer, tokenizer_2), (text_encoder, text_encoder_2) = self.tokenizers, self.text_encoders
        return dict(transformer=self.transformer, vae=self.vae, text_encoder=text_encoder,
                    text_encoder_2=text_encoder_2, tokenizer=tokenizer, tokenizer_2=tokenizer_2)
