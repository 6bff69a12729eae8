"""The interface every noise method shares: ``method(noise, ctx) -> noise``, unit variance in and out.

A noise method maps the initial noise of a batch to new initial noise of the same shape. What a method may need
beyond the noise travels in a :class:`NoiseContext`: the backbone, the prompts and their conditional and
unconditional embeddings (pooled ones included), each sample's seed, the sampler settings the images will be made
with, and the cost meter. Learned methods (NPNet) read the embeddings, searched methods (best-of-N) sample through
:meth:`NoiseContext.sample`, and optimised methods differentiate through the backbone; all fit one signature, and
:class:`Compose` chains them.

Diffusers pipelines multiply ``latents=`` by ``scheduler.init_noise_sigma``, so a method never pre-scales its output
(see :func:`goldennoise.backbones.generate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from goldennoise.backbones import FLOW_SCHEDULERS, SCHEDULERS, Backbone, PromptEmbeds
from goldennoise.backbones.cost import CostMeter, evaluations_per_step
from goldennoise.backbones.generate import sample_images


@dataclass(frozen=True)
class SamplerSettings:
    """How the images of an evaluation are sampled from the (method's) noise.

    Args:
        steps: sampler steps.
        guidance_scale: classifier-free guidance ω (1 = conditional branch only, no unconditional batch).
        scheduler: ``ddim`` or ``flow_euler`` (goldennoise's own loop: DDIM on DDPM backbones, flow Euler on flow
            backbones) or another diffusers scheduler name (``dpm_solver``, ``euler``), run through the backbone's
            diffusers pipeline.
        image_size: image side in pixels; ``None`` uses the backbone's native size.
    """

    steps: int = 20
    guidance_scale: float = 1.0
    scheduler: str = "ddim"
    image_size: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"Sampler steps must be at least 1, got {self.steps}.")
        if self.scheduler not in (*SCHEDULERS, *FLOW_SCHEDULERS):
            raise ValueError(f"Unknown scheduler {self.scheduler!r}; "
                             f"choose one of {sorted((*SCHEDULERS, *FLOW_SCHEDULERS))}.")

    def evaluations_per_image(self) -> int:
        """Denoiser evaluations one sampling costs per image."""
        return self.steps * evaluations_per_step(self.guidance_scale)


@dataclass
class NoiseContext:
    """Everything a noise method may use besides the noise, for a batch of B samples.

    Attributes:
        backbone: the frozen model the images are made with.
        prompts: B prompts.
        seeds: B seeds (the seed of each sample's initial noise).
        cond: conditional embeddings of batch B (pooled ones included for SDXL).
        uncond: unconditional embeddings of batch B.
        sampler: the sampler settings of the final images.
        meter: the cost meter attached to the backbone's denoiser, if any.
    """

    backbone: Backbone
    prompts: list[str]
    seeds: list[int]
    cond: PromptEmbeds
    uncond: PromptEmbeds
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    meter: CostMeter | None = None
    _reusable: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, backbone: Backbone, prompts: Sequence[str], seeds: Sequence[int],
              sampler: SamplerSettings | None = None, meter: CostMeter | None = None) -> NoiseContext:
        """Encode ``prompts`` with ``backbone`` and bundle them with the seeds and sampler settings."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt.")
        with torch.no_grad():
            cond, uncond = backbone.encode_prompt(list(prompts))
        return cls(backbone, list(prompts), [int(s) for s in seeds], cond, uncond, sampler or SamplerSettings(),
                   meter)

    def __len__(self) -> int:
        return len(self.prompts)

    def latent_shape(self) -> tuple[int, int, int]:
        """The per-sample latent shape ``(C, h, w)`` of the sampler's image size."""
        size = self.sampler.image_size
        return self.backbone.latent_shape(size, size)

    def rows(self, index: Sequence[int] | torch.Tensor) -> NoiseContext:
        """The context of the samples ``index`` (repeats allowed: ``rows([0, 0, 1, 1])`` pairs two noises a prompt)."""
        index = torch.as_tensor(index, dtype=torch.long)
        take = index.to(self.cond.embeds.device)
        return replace(self, prompts=[self.prompts[i] for i in index.tolist()],
                       seeds=[self.seeds[i] for i in index.tolist()], cond=self.cond.take(take),
                       uncond=self.uncond.take(take),
                       _reusable=None)

    def sample(self, noise: torch.Tensor, guidance_scale: float | None = None) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] from ``noise`` (B, C, h, w) with this context's sampler settings.

        Args:
            noise: unit-variance initial noise of this context's B samples.
            guidance_scale: override the sampler's guidance (e.g. a selection scored without guidance).
        """
        settings = self.sampler if guidance_scale is None else replace(self.sampler, guidance_scale=guidance_scale)
        return sample_images(self.backbone, noise, self.cond, self.uncond, self.prompts, settings.steps,
                             settings.guidance_scale, settings.scheduler)

    def offer_images(self, noise: torch.Tensor, images: torch.Tensor) -> None:
        """Hand over the final images of ``noise``, so they are not sampled again.

        For methods that already sampled them with this context's sampler settings, like best-of-N.
        """
        self._reusable = (noise, images)

    def offered_images(self, noise: torch.Tensor) -> torch.Tensor | None:
        """The images offered for exactly this noise tensor, if any."""
        if self._reusable is not None and self._reusable[0] is noise:
            return self._reusable[1]
        return None


class NoiseMethod(nn.Module):
    """Maps initial noise ``(B, C, h, w)`` and a :class:`NoiseContext` to new initial noise of the same shape.

    Subclasses implement :meth:`forward`; input and output are unit-variance latents. Methods are configured by
    ``class_path`` + ``init_args`` like every goldennoise component.
    """

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        """New noise ``(B, C, h, w)`` for the B samples of ``ctx``."""
        raise NotImplementedError

    def fit_budget(self, evaluations_per_image: float, sampler: SamplerSettings) -> None:
        """Size the method to a budget of denoiser evaluations per image, final sampling included.

        Search methods (best-of-N) set their number of candidates from it; other methods ignore it.
        """

    def sample_stats(self) -> dict[str, torch.Tensor]:
        """Per-sample diagnostics of the last :meth:`forward`, each of shape (B,) (e.g. a stability score).

        An evaluation records them beside the scores as ``stat/<key>`` columns of its per-sample table; default none.
        """
        return {}

    def describe(self) -> dict[str, Any]:
        """The method's class and settings: public scalar attributes, and its submodules described in turn.

        Hashed into an evaluation's id (a changed setting is a new evaluation) and logged as its MLflow params.
        """
        return describe_module(self)


def describe_module(module: nn.Module) -> dict[str, Any]:
    """``{"class_path", settings..., child: description...}`` of a module (see :meth:`NoiseMethod.describe`)."""
    out: dict[str, Any] = {"class_path": f"{type(module).__module__}.{type(module).__qualname__}"}
    for key, value in vars(module).items():
        if not key.startswith("_") and key != "training" and isinstance(value, str | int | float | bool | None):
            out[key] = value
    for key, child in module.named_children():
        out[key] = child.describe() if isinstance(child, NoiseMethod) else describe_module(child)
    return out


class Gaussian(NoiseMethod):
    """The baseline: the initial Gaussian noise, unchanged."""

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        return noise


class Compose(NoiseMethod):
    """A chain of methods applied left to right; a chain is itself a method.

    Args:
        methods: the methods, first applied first.
    """

    def __init__(self, methods: list[NoiseMethod]) -> None:
        super().__init__()
        if not methods:
            raise ValueError("Compose needs at least one method.")
        self.methods = nn.ModuleList(methods)

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        for method in self.methods:
            noise = method(noise, ctx)
        return noise

    def fit_budget(self, evaluations_per_image: float, sampler: SamplerSettings) -> None:
        for method in self.methods:
            method.fit_budget(evaluations_per_image, sampler)
