"""One narrow interface over a diffusers latent text-to-image model, after k-diffusion's ``external.py`` adapters.

A :class:`Backbone` owns the frozen components (a denoiser network — UNet or transformer —, VAE, text encoders,
tokenizers) and the scheduler configuration, and offers what every noise method needs: prompt encoding, the latent
shape ``(C, h, w)`` of unit-variance noise (any packing stays inside the backbone), a time grid
(:meth:`Backbone.schedule`: a DDIM grid for DDPM models, a σ grid for flow-matching ones), the prediction the grid's
sampler needs with guidance bound (:meth:`Backbone.denoiser`: ε or the flow velocity, whatever the network predicts;
:mod:`goldennoise.sampling.predictions`), VAE decoding to images in [0, 1] and a diffusers pipeline over the same
components. Families subclass it for their text conditioning and network call (docs/backbones.md).

A PEFT adapter (a NoiseRefine LoRA, :mod:`goldennoise.noise.noiserefine`) may be injected into the denoiser network.
It is **off** everywhere by default: every denoising path runs the frozen base network, and only code inside
``with backbone.adapter(True):`` sees the adapted one.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.utils.checkpoint
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    SchedulerMixin,
)
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from goldennoise.backbones.cost import evaluations_per_step
from goldennoise.backbones.saving import save_pipeline
from goldennoise.checks import check_finite, check_int, check_tensor
from goldennoise.sampling import DDIMSchedule, Denoiser, Schedule
from goldennoise.sampling.predictions import to_epsilon

SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "ddim": DDIMScheduler,
    "dpm_solver": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
}
"""Scheduler names accepted by :meth:`Backbone.make_scheduler` and :meth:`Backbone.pipeline`."""


@dataclass
class PromptEmbeds:
    """Text conditioning of a batch, as the denoiser network takes it.

    Attributes:
        embeds: token embeddings, shape (B, L, D) (SD3: CLIP ⊕ T5 tokens; FLUX: T5; Hunyuan-DiT: the first encoder).
        pooled: pooled text embedding, shape (B, P); SDXL, SD3, FLUX.
        extras: further per-sample tensors of batch B a family needs (Hunyuan-DiT: attention masks and the mT5
            tokens); floating ones are cast with the embeddings, integer masks keep their dtype.
    """

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.embeds.shape[0]

    def cat(self, other: PromptEmbeds) -> PromptEmbeds:
        """Stack two batches, ``self`` first (diffusers puts the unconditional half first)."""
        pooled = None if self.pooled is None else torch.cat([self.pooled, other.pooled])
        extras = {key: torch.cat([value, other.extras[key]]) for key, value in self.extras.items()}
        return PromptEmbeds(torch.cat([self.embeds, other.embeds]), pooled, extras)

    def take(self, index: torch.Tensor) -> PromptEmbeds:
        """The rows ``index`` (a 1-d long tensor on the embeddings' device; repeats allowed)."""
        pooled = None if self.pooled is None else self.pooled[index]
        return PromptEmbeds(self.embeds[index], pooled, {key: value[index] for key, value in self.extras.items()})

    def copy(self) -> PromptEmbeds:
        """A copy of every tensor, extras included (copies of ``torch.inference_mode`` tensors can enter autograd)."""
        pooled = None if self.pooled is None else self.pooled.clone()
        return PromptEmbeds(self.embeds.clone(), pooled, {key: value.clone() for key, value in self.extras.items()})

    def check(self, name: str) -> None:
        """Refuse non-float or non-finite embeddings, naming them ``<name>.embeds`` / ``<name>.pooled``."""
        check_tensor(f"{name}.embeds", self.embeds, shape=("B", "L", "D"))
        if self.pooled is not None:
            check_tensor(f"{name}.pooled", self.pooled, shape=(len(self), "P"))
        for key, value in self.extras.items():
            if value.is_floating_point():
                check_tensor(f"{name}.extras[{key!r}]", value)

    def to(self, *args: Any, **kwargs: Any) -> PromptEmbeds:
        """Move or cast like :meth:`torch.Tensor.to`; a dtype applies to floating tensors only."""

        def move(value: torch.Tensor) -> torch.Tensor:
            if value.is_floating_point():
                return value.to(*args, **kwargs)
            moved = [a for a in args if not isinstance(a, torch.dtype)]
            return value.to(*moved, **{k: v for k, v in kwargs.items() if k != "dtype"})

        pooled = None if self.pooled is None else move(self.pooled)
        return replace(self, embeds=move(self.embeds), pooled=pooled,
                       extras={key: move(value) for key, value in self.extras.items()})


class Backbone(nn.Module):
    """A frozen latent diffusion model behind one interface.

    Subclasses implement :meth:`_encode_texts` (tokenize and encode a list of strings) and may extend
    :meth:`_unet_kwargs` or replace :meth:`_forward` (the raw network call). Components are registered as
    submodules, so ``.to(device)`` moves them all. The denoiser network is registered under
    :attr:`network_name` (``unet`` or ``transformer``) and reachable as :attr:`network` on every backbone.

    Args:
        unet: the denoiser network (a ``UNet2DConditionModel`` here; a transformer in DiT families).
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
    network_name: str = "unet"
    """The attribute (and diffusers component name) of the denoiser network."""
    schedule_kind: str = "ddpm"
    """``ddpm`` (DDIM grid, the denoiser returns ε) or ``flow`` (σ grid, the denoiser returns the velocity)."""

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
        setattr(self, self.network_name, unet)
        self.vae = vae
        self.text_encoders = nn.ModuleList(text_encoders)
        self.tokenizers = list(tokenizers)
        self.scheduler_config = dict(scheduler_config)
        self.force_zeros_for_empty_prompt = force_zeros_for_empty_prompt
        self.requires_grad_(False).eval()
        if self.schedule_kind == "ddpm":
            alphas_cumprod = DDIMScheduler.from_config(self.scheduler_config).alphas_cumprod
            self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)  # (T,)

    # --- properties -------------------------------------------------------------------------------------------

    @property
    def network(self) -> nn.Module:
        """The denoiser network (UNet or transformer), the module a cost meter hooks."""
        return getattr(self, self.network_name)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the denoiser's weights."""
        return self.network.dtype

    @property
    def device(self) -> torch.device:
        """The device of the denoiser's weights."""
        return self.network.device

    @property
    def prediction_type(self) -> str:
        """What the network predicts: ``epsilon``, ``v_prediction`` or ``sample`` (DDPM), ``flow`` (velocity)."""
        return self.scheduler_config.get("prediction_type", "epsilon")

    def evaluations_per_step(self, guidance_scale: float) -> int:
        """Denoiser rows one guided prediction costs per image (1 when ω ∈ {0, 1}, else 2 for CFG)."""
        return evaluations_per_step(guidance_scale)

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell along each side."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def default_size(self) -> int:
        """The native image side in pixels (the UNet's ``sample_size`` times the VAE factor)."""
        return self.network.config.sample_size * self.vae_scale_factor

    @property
    def latent_channels(self) -> int:
        """Channels C of the unpacked latents noise methods see."""
        return self.network.config.in_channels

    def latent_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, int, int]:
        """The per-sample latent shape ``(C, h, w)`` for an image of ``height`` × ``width`` pixels."""
        height, width = height or self.default_size, width or self.default_size
        f = self.vae_scale_factor
        if height % f or width % f:
            raise ValueError(f"Image size {height}x{width} must be divisible by the VAE factor {f}.")
        return self.latent_channels, height // f, width // f

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

    def _forward(self, x: torch.Tensor, t: torch.Tensor, embeds: PromptEmbeds) -> torch.Tensor:
        """The raw network output for latents ``x`` (B, C, h, w) in the weights' dtype, same shape."""
        return self.network(x, t, **self._unet_kwargs(embeds, x)).sample

    def _convert(self, output: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network output as ε (:func:`~goldennoise.sampling.predictions.to_epsilon`); flow families override."""
        if self.prediction_type == "epsilon":
            return output
        return to_epsilon(self.prediction_type, output, x, self.alphas_cumprod[t.long()].to(x.dtype))

    def predict(
        self,
        x: torch.Tensor,
        t: torch.Tensor | int,
        cond: PromptEmbeds,
        uncond: PromptEmbeds | None = None,
        guidance_scale: float = 1.0,
        stop_network_gradient: bool = False,
    ) -> torch.Tensor:
        """The sampler's quantity (ε here) with classifier-free guidance: ``ε(∅) + w·(ε(c) − ε(∅))``.

        Ho & Salimans (2022), Eq. 6.

        ``w = 1`` evaluates only the conditional branch, ``w = 0`` only the unconditional one; otherwise both run
        in one batch, unconditional half first, as in diffusers. Flow families return the velocity instead.

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
            return self._prediction(x, t, cond if guidance_scale == 1.0 else uncond, stop_network_gradient)
        if uncond is None:
            raise ValueError(f"guidance_scale={guidance_scale} needs unconditional embeddings.")
        out_uncond, out_cond = self._prediction(torch.cat([x, x]), t, uncond.cat(cond), stop_network_gradient).chunk(2)
        return out_uncond + guidance_scale * (out_cond - out_uncond)

    def predict_noise(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The UNet-era name of :meth:`predict` (ε on DDPM backbones, the velocity on flow ones)."""
        return self.predict(*args, **kwargs)

    def network_output(self, x: torch.Tensor, t: torch.Tensor | int, embeds: PromptEmbeds) -> torch.Tensor:
        """The network's raw output (ε, v, x₀ or a velocity by the model) in ``x``'s dtype, shape (B, C, h, w)."""
        t = torch.as_tensor(t, device=x.device)
        return self._forward(x.to(self.dtype), t, embeds).to(x.dtype)

    def _prediction(self, x: torch.Tensor, t: torch.Tensor, embeds: PromptEmbeds,
                    stop_network_gradient: bool = False) -> torch.Tensor:
        """One network call in the weights' dtype; the result comes back converted, in ``x``'s dtype."""
        if stop_network_gradient:  # the network sees a detached input too: no graph is built through it
            return self._convert(self.network_output(x.detach(), t, embeds).detach(), x, t)
        return self._convert(self.network_output(x, t, embeds), x, t)

    def denoiser(self, cond: PromptEmbeds, uncond: PromptEmbeds | None = None, guidance_scale: float = 1.0,
                 stop_network_gradient: bool = False) -> Denoiser:
        """Bind conditioning and guidance: a ``denoiser(x, t)`` for :mod:`goldennoise.sampling`.

        It returns what the backbone's :meth:`schedule` needs: ε on a DDIM grid, the velocity on a flow grid. With
        ``stop_network_gradient`` no graph is built through the network (MSD's per-step stop-gradient).

        The embeddings are checked here, once per binding rather than once per step: non-float or non-finite ones
        raise an error naming them (``cond.embeds``, ``uncond.pooled``, ...).
        """
        cond.check("cond")
        if uncond is not None:
            uncond.check("uncond")
        check_finite("guidance_scale", guidance_scale)
        return functools.partial(self.predict, cond=cond, uncond=uncond, guidance_scale=guidance_scale,
                                 stop_network_gradient=stop_network_gradient)

    # --- adapters -----------------------------------------------------------------------------------------------

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the network's blocks in the backward pass instead of keeping their activations.

        Each block is recomputed with the adapter in the state it had when the block ran forward (on in a refiner
        call, off in the base model's calls), not in the state the adapter is in when the backward pass reaches it:
        a refiner's call has switched the adapter off again long before its backward pass.
        """

        def checkpointed(block: nn.Module, *args: Any) -> Any:
            enabled = self.adapter_enabled()

            def run(*inputs: Any) -> Any:
                with self.adapter(enabled):
                    return block(*inputs)

            return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False)

        self.unet.enable_gradient_checkpointing(checkpointed)

    def adapter_enabled(self) -> bool:
        """Whether the network's adapter is on (false without an adapter)."""
        return any(not layer.disable_adapters for layer in self.adapter_layers())

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
        latents = latents / vae.config.scaling_factor + self._vae_shift()
        image = vae.decode(latents.to(vae.dtype)).sample
        return (image / 2 + 0.5).clamp(0, 1)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Encode images (B, 3, H, W) in [0, 1] to latents with the posterior mean (deterministic)."""
        check_tensor("images", images, shape=("B", 3, "H", "W"))
        if images.min() < 0 or images.max() > 1:
            raise ValueError("encode_images expects images in [0, 1].")
        posterior = self.vae.encode((2 * images - 1).to(self.vae.dtype)).latent_dist
        return (posterior.mean - self._vae_shift()) * self.vae.config.scaling_factor

    def _vae_shift(self) -> float:
        """The VAE's latent shift (SD3 and FLUX VAEs have one; SD's has none)."""
        return self.vae.config.get("shift_factor", None) or 0.0

    # --- schedulers and pipelines -------------------------------------------------------------------------------

    def make_scheduler(self, name: str = "ddim", **overrides: Any) -> SchedulerMixin:
        """A fresh scheduler built from this model's configuration (schedulers keep per-run state)."""
        if name not in SCHEDULERS:
            raise ValueError(f"Unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
        return SCHEDULERS[name].from_config(self.scheduler_config, **overrides)

    def schedule(self, num_steps: int, latent_size: tuple[int, int] | None = None) -> Schedule:
        """The time grid of this backbone's own sampler: :meth:`ddim_schedule` here, a σ grid on flow backbones.

        Args:
            num_steps: sampler steps.
            latent_size: the latents' ``(h, w)``; flow models with a resolution-dependent shift (FLUX) need it,
                ``None`` means the native size.
        """
        return self.ddim_schedule(num_steps)

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
