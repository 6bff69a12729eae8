"""Stable Diffusion 1.x / 2.x (ε- and v-prediction): one CLIP text encoder, last hidden state as conditioning."""

from __future__ import annotations

from typing import Any

from diffusers import StableDiffusionPipeline

from goldennoise.backbones.base import Backbone, PromptEmbeds


class StableDiffusionBackbone(Backbone):
    """SD 1.x / 2.x behind :class:`~goldennoise.backbones.base.Backbone`.

    The prediction type comes from the scheduler configuration (SD 2.x 768 models use ``v_prediction``).
    """

    family = "sd"
    pipeline_class = StableDiffusionPipeline
    load_kwargs = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}

    @classmethod
    def from_pipeline(cls, pipe: StableDiffusionPipeline) -> StableDiffusionBackbone:
        """Wrap the components of a loaded pipeline (shared, not copied)."""
        return cls(pipe.unet, pipe.vae, [pipe.text_encoder], [pipe.tokenizer], pipe.scheduler.config)

    def _encode_texts(self, prompts: list[str]) -> PromptEmbeds:
        (tokenizer,), (text_encoder,) = self.tokenizers, self.text_encoders
        return PromptEmbeds(text_encoder(self._tokenize(tokenizer, prompts))[0])  # (B, 77, D)

    def _pipeline_components(self) -> dict[str, Any]:
        return dict(vae=self.vae, text_encoder=self.text_encoders[0], tokenizer=self.tokenizers[0], unet=self.unet,
                    **self.load_kwargs)


def sd_pipeline(vae: Any, text_encoder: Any, tokenizer: Any, unet: Any, scheduler: Any) -> StableDiffusionPipeline:
    """A ``StableDiffusionPipeline`` of these components, without the safety checker (as every SD one here)."""
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, **StableDiffusionBackbone.load_kwargs)
