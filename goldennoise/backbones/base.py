"""One narrow interface over a diffusers latent text-to-image model, after k-diffusion's ``external.py`` adapters.

A :class:`Backbone` owns the frozen components (UNet, VAE, text encoders, tokenizers) and the scheduler
configuration, and offers what every noise method needs: prompt encoding, the latent shape, an ε prediction with
classifier-free guidance (any prediction type is converted to ε), VAE decoding to images in [0, 1], a DDIM grid
and a diffusers pipeline over the same components. Families subclass it for their text conditioning.

A PEFT adapter (a NoiseRefine LoRA, :mod:`goldennoise.noise.noiserefine`) may be injected into the UNet. It is
**off** everywhere by default: every denoising path runs the frozen base network, and only code inside
``with backbone.adapter(True):`` sees the adapted one.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    SchedulerMixin,
)
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from goldennoise.backbones.saving import save_pipeline
from goldennoise.checks import check_finite, check_int, check_tensor
from goldennoise.sampling import DDIMSchedule, Denoiser

SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "ddim": DDIMScheduler,
    "dpm_solver": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
}
"""Scheduler names accepted by :meth:`Backbone.make_scheduler` and :meth:`Backbone.pipeline`."""


@dataclass
class PromptEmbeds:
    """Text conditioning of a batch, as the UNet takes it.

    Attributes:
        embeds: token embeddings, shape (B, L, D).
        pooled: pooled text embedding, shape (B, P); SDXL only.
    """

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.embeds.shape[0]

    def cat(self, other: PromptEmbeds) -> PromptEmbeds:
        """Stack two batches, ``self`` first (diffusers puts the unconditional half first)."""
        pooled = None if self.pooled is None else torch.cat([self.pooled, other.pooled])
        return PromptEmbeds(torch.cat([self.embeds, other.embeds]), pooled)

    def check(self, name: str) -> None:
        """Refuse non-float or non-finite embeddings, naming them ``<name>.embeds`` / ``<name>.pooled``."""
        check_tensor(f"{name}.embeds", self.embeds, shape=("B", "L", "D"))
        if self.pooled is not None:
            check_tensor(f"{name}.pooled", self.pooled, shape=(len(self), "P"))

    def to(self, *args: Any, **kwargs: Any) -> PromptEmbeds:
        """Move or cast like :meth:`torch.Tensor.to`."""
        pooled = None if self.pooled is None else self.pooled.to(*args, **kwargs)
        return replace(self, embeds=self.embeds.to(*args, **kwargs), pooled=pooled)


class Backbone(nn.Module):
    """A frozen latent diffusion model behind one interface.

    Subclasses implement :meth:`_encode_texts` (tokenize and encode a list of strings) and may extend
    :meth:`_unet_kwargs`. Components are registered as submodules, so ``.to(device)`` moves them all.

    Args:
        unet: a ``UNet2DConditionModel``.
        vae: an ``AutoencoderKL``.
        text_encoders: one (SD) or two (SDXL) CLIP text encoders.
        tokenizers: the tokenizer of each text encoder.
        scheduler_config: the model's scheduler configuration (timestep spacing, betas, prediction type).
        force_zeros_for_empty_prompt: use zero embeddings, not the encoded empty prompt, as the unconditional input
            when no negative prompt is given (SDXL's convention).
    """

    family: str = ""
    pipeline_class: type = type(None)
    load_kwargs: dict[str, Any] = {}
    """Extra arguments for ``pipeline_class.from_pretrained`` (e.g. skip SD's safety checker)."""

    def __init__(
        self,
        unet: nn.Module,
        vae: nn.Module,
        text_encoders: list[nn.Module],
        tokenizers: list[Any],
        scheduler_config: dict[str, Any],
        force_zeros_for_empty_prompt: bool = False,
    ) -> None:
        super().__init__()
        self.unet, self.vae = unet, vae
        self.text_encoders = nn.ModuleList(text_encoders)
        self.tokenizers = list(tokenizers)
        self.scheduler_config = dict(scheduler_config)
        self.force_zeros_for_empty_prompt = force_zeros_for_empty_prompt
        self.requires_grad_(False).eval()
        alphas_cumprod = DDIMScheduler.from_config(self.scheduler_config).alphas_cumprod
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)  # (T,)

    # --- properties -------------------------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the UNet's weights."""
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        """The device of the UNet's weights."""
        return self.unet.device

    @property
    def prediction_type(self) -> str:
        """What the UNet predicts: ``epsilon``, ``v_prediction`` or ``sample``."""
        return self.scheduler_config.get("prediction_type", "epsilon")

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell along each side."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def default_size(self) -> int:
        """The native image side in pixels (the UNet's ``sample_size`` times the VAE factor)."""
        return self.unet.config.sample_size * self.vae_scale_factor

    def latent_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, int, int]:
        """The per-sample latent shape ``(C, h, w)`` for an image of ``height`` × ``width`` pixels."""
        height, width = height or self.default_size, width or self.default_size
        f = self.vae_scale_factor
        if height % f or width % f:
            raise ValueError(f"Image size {height}x{width} must be divisible by the VAE factor {f}.")
        return self.unet.config.in_channels, height // f, width // f

    # --- text ---------------------------------------------------------------------------------------------------

    def _tokenize(self, tokenizer: Any, prompts: list[str]) -> torch.Tensor:
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        return ids.to(self.device)  # (B, L)

    def _encode_texts(self, prompts: list[str]) -> PromptEmbeds:
        raise NotImplementedError

    def encode_prompt(
        self, prompts: str | list[str], negative_prompts: str | list[str] | None = None
    ) -> tuple[PromptEmbeds, PromptEmbeds]:
        """Encode prompts and their unconditional counterparts, as the family's diffusers pipeline does.

        Args:
            prompts: one prompt or a batch of B prompts.
            negative_prompts: the unconditional prompts (default: empty, or zeros under
                ``force_zeros_for_empty_prompt``).

        Returns:
            ``(cond, uncond)`` embeddings, each of batch size B, in the UNet's dtype.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("encode_prompt needs a non-empty list of strings.")
        cond = self._encode_texts(prompts)
        if negative_prompts is None and self.force_zeros_for_empty_prompt:
            pooled = None if cond.pooled is None else torch.zeros_like(cond.pooled)
            uncond = PromptEmbeds(torch.zeros_like(cond.embeds), pooled)
        else:
            if not isinstance(negative_prompts, list):
                negative_prompts = [negative_prompts or ""] * len(prompts)
            if len(negative_prompts) != len(prompts):
                raise ValueError(f"Got {len(negative_prompts)} negative prompts for {len(prompts)} prompts.")
            uncond = self._encode_texts(negative_prompts)
        return cond.to(self.dtype), uncond.to(self.dtype)

    # --- denoising ----------------------------------------------------------------------------------------------

    def _unet_kwargs(self, embeds: PromptEmbeds, x: torch.Tensor) -> dict[str, Any]:
        return {"encoder_hidden_states": embeds.embeds}

    def _to_epsilon(self, output: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Convert the UNet output to ε; the conversion is affine with weights summing to one, so CFG commutes."""
        if self.prediction_type == "epsilon":
            return output
        alpha = self.alphas_cumprod[t.long()].to(x.dtype)
        if self.prediction_type == "v_prediction":  # v = √ᾱ ε − √(1−ᾱ) x₀  ⇒  ε = √ᾱ v + √(1−ᾱ) x
            return alpha.sqrt() * output + (1 - alpha).sqrt() * x
        if self.prediction_type == "sample":
            return (x - alpha.sqrt() * output) / (1 - alpha).sqrt()
        raise ValueError(f"Unsupported prediction type {self.prediction_type!r}.")

    def predict_noise(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int,
        cond: PromptEmbeds,
        uncond: PromptEmbeds | None = None,
        guidance_scale: float = 1.0,
        stop_network_gradient: bool = False,
    ) -> torch.Tensor:
        """ε̂ with classifier-free guidance: ``ε(∅) + w·(ε(c) − ε(∅))`` (Ho & Salimans, 2022, Eq. 6).

        ``w = 1`` evaluates only the conditional branch, ``w = 0`` only the unconditional one; otherwise both run
        in one batch, unconditional half first, as in diffusers.

        Args:
            x: noisy latents, shape (B, C, h, w).
            t: the timestep, an int or a 0-d tensor.
            cond: conditional embeddings of batch B.
            uncond: unconditional embeddings of batch B (needed unless ``w == 1``).
            guidance_scale: w.
            stop_network_gradient: detach the network's output (not its input's path through the conversion to ε):
                the stop-gradient step of multistep score distillation (arXiv 2412.03895, Sec. 3.3).

        Returns:
            ε̂ of shape (B, C, h, w).
        """
        if len(cond) != x.shape[0]:
            raise ValueError(f"Latents have batch {x.shape[0]} but the prompt embeddings have batch {len(cond)}.")
        t = torch.as_tensor(t, device=x.device)
        if guidance_scale in (0.0, 1.0):
            return self._epsilon(x, t, cond if guidance_scale == 1.0 else uncond, stop_network_gradient)
        if uncond is None:
            raise ValueError(f"guidance_scale={guidance_scale} needs unconditional embeddings.")
        eps_uncond, eps_cond = self._epsilon(torch.cat([x, x]), t, uncond.cat(cond), stop_network_gradient).chunk(2)
        return eps_uncond + guidance_scale * (eps_cond - eps_uncond)

    def network_output(self, x: torch.Tensor, t: torch.Tensor | int, embeds: PromptEmbeds) -> torch.Tensor:
        """The UNet's raw output (ε, v or x₀ by ``prediction_type``) in ``x``'s dtype, shape (B, C, h, w)."""
        t = torch.as_tensor(t, device=x.device)
        x_in = x.to(self.dtype)
        return self.unet(x_in, t, **self._unet_kwargs(embeds, x_in)).sample.to(x.dtype)

    def _epsilon(self, x: torch.Tensor, t: torch.Tensor, embeds: PromptEmbeds,
                 stop_network_gradient: bool = False) -> torch.Tensor:
        """One UNet call in the weights' dtype; ε comes back in ``x``'s dtype, so DDIM arithmetic keeps it."""
        if stop_network_gradient:  # the network sees a detached input too: no graph is built through it
            return self._to_epsilon(self.network_output(x.detach(), t, embeds).detach(), x, t)
        return self._to_epsilon(self.network_output(x, t, embeds), x, t)

    def denoiser(self, cond: PromptEmbeds, uncond: PromptEmbeds | None = None, guidance_scale: float = 1.0,
                 stop_network_gradient: bool = False) -> Denoiser:
        """Bind conditioning and guidance: the result is a ``denoiser(x, t) -> ε`` for :mod:`goldennoise.sampling`.

        The embeddings are checked here, once per binding rather than once per step: non-float or non-finite ones
        raise an error naming them (``cond.embeds``, ``uncond.pooled``, ...).
        """
        cond.check("cond")
        if uncond is not None:
            uncond.check("uncond")
        check_finite("guidance_scale", guidance_scale)
        return functools.partial(self.predict_noise, cond=cond, uncond=uncond, guidance_scale=guidance_scale,
                                 stop_network_gradient=stop_network_gradient)

    # --- adapters -----------------------------------------------------------------------------------------------

    def adapter_layers(self) -> list[BaseTunerLayer]:
        """The UNet's PEFT adapter layers (empty without an adapter)."""
        return [module for module in self.unet.modules() if isinstance(module, BaseTunerLayer)]

    @contextlib.contextmanager
    def adapter(self, enabled: bool = True) -> Iterator[None]:
        """Run the block with the UNet's adapter switched on (``enabled``) or off; the previous state returns after.

        The adapter is off by default, so every denoising path (samplers, pipelines, guidance) runs the frozen base
        UNet. PEFT's switch also clears ``requires_grad`` on the adapter weights; the flags are restored on exit, so
        a trained adapter stays trainable.

        Raises:
            ValueError: ``enabled`` is true but the UNet carries no adapter.
        """
        layers = self.adapter_layers()
        if enabled and not layers:
            raise ValueError("The backbone's UNet has no adapter to enable; inject one first (NoiseRefiner).")
        was_enabled = [not layer.disable_adapters for layer in layers]
        flags = [(p, p.requires_grad) for p in self.unet.parameters()]
        for layer in layers:
            layer.enable_adapters(enabled)
        try:
            yield
        finally:
            for layer, state in zip(layers, was_enabled, strict=True):
                layer.enable_adapters(state)
            for parameter, flag in flags:
                parameter.requires_grad_(flag)

    # --- images -------------------------------------------------------------------------------------------------

    def _vae_for_decoding(self) -> nn.Module:
        if self.vae.dtype == torch.float16 and self.vae.config.get("force_upcast", False):
            self.vae.to(torch.float32)  # fp16 SDXL VAEs overflow; diffusers upcasts the same way
        return self.vae

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode latents (B, C, h, w) into images (B, 3, H, W) in [0, 1].

        Raises:
            TypeError: ``latents`` are not a floating-point tensor.
            ValueError: ``latents`` have the wrong number of channels or hold NaN or infinite values.
        """
        vae = self._vae_for_decoding()
        check_tensor("latents", latents, shape=("B", vae.config.latent_channels, "h", "w"))
        latents = latents / vae.config.scaling_factor
        image = vae.decode(latents.to(vae.dtype)).sample
        return (image / 2 + 0.5).clamp(0, 1)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Encode images (B, 3, H, W) in [0, 1] to latents with the posterior mean (deterministic)."""
        check_tensor("images", images, shape=("B", 3, "H", "W"))
        if images.min() < 0 or images.max() > 1:
            raise ValueError("encode_images expects images in [0, 1].")
        posterior = self.vae.encode((2 * images - 1).to(self.vae.dtype)).latent_dist
        return posterior.mean * self.vae.config.scaling_factor

    # --- schedulers and pipelines -------------------------------------------------------------------------------

    def make_scheduler(self, name: str = "ddim", **overrides: Any) -> SchedulerMixin:
        """A fresh scheduler built from this model's configuration (schedulers keep per-run state)."""
        if name not in SCHEDULERS:
            raise ValueError(f"Unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
        return SCHEDULERS[name].from_config(self.scheduler_config, **overrides)

    def ddim_schedule(self, num_steps: int) -> DDIMSchedule:
        """The grid diffusers' ``DDIMScheduler`` visits in ``num_steps`` steps under this model's configuration.

        Raises:
            ValueError: ``num_steps`` is not an integer between 1 and the number of training timesteps.
        """
        scheduler = self.make_scheduler("ddim")
        check_int("num_steps", num_steps, 1, scheduler.config.num_train_timesteps)
        if scheduler.config.thresholding:
            raise ValueError("Dynamic thresholding is not supported by goldennoise's DDIM sampler.")
        scheduler.set_timesteps(num_steps)
        clip = scheduler.config.clip_sample_range if scheduler.config.clip_sample else None
        return DDIMSchedule(
            alphas_cumprod=scheduler.alphas_cumprod.float(),
            timesteps=scheduler.timesteps,
            final_alpha_cumprod=float(scheduler.final_alpha_cumprod),
            clip_sample_range=clip,
        )

    def _pipeline_components(self) -> dict[str, Any]:
        raise NotImplementedError

    def pipeline(self, scheduler: str = "ddim") -> Any:
        """A diffusers pipeline over this backbone's components (shared, not copied) with a fresh scheduler."""
        return self.pipeline_class(**self._pipeline_components(), scheduler=self.make_scheduler(scheduler))

    def save_pretrained(self, path: str | Path, overwrite_shipped: bool = False) -> None:
        """Write a diffusers folder: ``model_index.json`` and one subfolder per component.

        :func:`goldennoise.backbones.load_backbone` and diffusers itself load it back (in float32 by default,
        whatever the dtype of the weights; see :mod:`goldennoise.backbones.saving`).
        """
        save_pipeline(self.pipeline(), path, overwrite_shipped)
