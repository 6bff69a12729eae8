"""The evaluation step: for a batch of (prompt, seed) items and every method, noise → method → sampler → metrics.

Every method of an evaluation sees the same Gaussian noise of the same seeds and the same prompt embeddings, so its
scores pair with the baseline's item by item. Each method's cost is metered separately (:class:`CostMeter` on the
backbone's denoiser): its own evaluations (``method/…``) and those of sampling its images (``sampling/…``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torchmetrics import Metric

from goldennoise.backbones import Backbone
from goldennoise.backbones.cost import CostMeter
from goldennoise.checks import check_tensor
from goldennoise.metrics.registry import sample_scores
from goldennoise.noise.base import NoiseContext, NoiseMethod, SamplerSettings
from goldennoise.sampling import noise_for_seeds

Item = tuple[int, str, int]
"""``(prompt_id, prompt, seed)``: one unit of an evaluation."""


@dataclass
class MethodSpec:
    """One evaluated method.

    Args:
        name: the method's name in tables, runs and records (unique within an evaluation).
        method: the noise method (``class_path`` + ``init_args`` in configs).
        guidance_scale: classifier-free guidance its images are sampled with (1 = no unconditional batch).
    """

    name: str
    method: NoiseMethod
    guidance_scale: float = 1.0


def check_method_output(name: str, noise: torch.Tensor, output: object) -> torch.Tensor:
    """The method's output; a clear error naming the method unless it is finite float noise of the input's shape."""
    return check_tensor(f"the noise of method {name!r}", output, shape=tuple(noise.shape))


def _scores(metrics: Sequence[Metric], images: torch.Tensor, prompts: list[str]) -> dict[str, torch.Tensor]:
    scores: dict[str, torch.Tensor] = {}
    for metric in metrics:
        scores.update(sample_scores(metric, images, prompts))
    return scores


def run_method(spec: MethodSpec, noise: torch.Tensor, ctx: NoiseContext,
               meter: CostMeter) -> tuple[torch.Tensor, torch.Tensor]:
    """The method's noise (B, C, h, w) and its images (B, 3, H, W) on one batch, method and sampling metered."""
    ctx = replace(ctx, sampler=replace(ctx.sampler, guidance_scale=spec.guidance_scale), meter=meter)
    with meter.phase("method", len(ctx)):
        out = check_method_output(spec.name, noise, spec.method(noise, ctx))
    with meter.phase("sampling", len(ctx)), torch.no_grad():
        images = ctx.offered_images(out)
        return out, (images if images is not None else ctx.sample(out.detach()))


def initial_noise(backbone: Backbone, prompts: Sequence[str], seeds: Sequence[int],
                  sampler: SamplerSettings) -> tuple[NoiseContext, torch.Tensor]:
    """The context of a batch and the Gaussian noise (B, C, h, w) of its seeds, on the backbone's device."""
    ctx = NoiseContext.build(backbone, prompts, seeds, sampler)
    return ctx, noise_for_seeds(list(seeds), ctx.latent_shape(), device=backbone.device)


def generate_batch(backbone: Backbone, prompts: Sequence[str], seeds: Sequence[int], spec: MethodSpec,
                   sampler: SamplerSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
    """One method's noise and images for B prompts and seeds, as in an evaluation but without metrics.

    Returns:
        ``(noise, method_noise, images, cost)``: the seeds' Gaussian noise and the method's noise (B, C, h, w),
        the images (B, 3, H, W) in [0, 1], and the per-image cost.
    """
    ctx, noise = initial_noise(backbone, prompts, seeds, sampler)
    with CostMeter(backbone.network) as meter:
        method_noise, images = run_method(spec, noise, ctx, meter)
    return noise, method_noise, images, meter.per_image()


def evaluate_batch(backbone: Backbone, items: Sequence[Item], methods: Sequence[MethodSpec],
                   metrics: Sequence[Metric], sampler: SamplerSettings) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Every method on one batch of items.

    Args:
        backbone: the frozen model.
        items: B ``(prompt_id, prompt, seed)``.
        methods: the methods; each is sampled with its own guidance scale.
        metrics: goldennoise metrics; their per-sample scores are recorded, their state is untouched.
        sampler: steps, scheduler and image size (the guidance comes from each method).

    Returns:
        ``(records, images)``: one record per item and method (item fields, ``method``, ``guidance_scale``,
        ``scores``, per-image ``cost`` and the method's per-sample ``stats``), and each method's images
        (B, 3, H, W) in [0, 1] on the CPU.
    """
    prompt_ids, prompts, seeds = (list(column) for column in zip(*items, strict=True))
    ctx, noise = initial_noise(backbone, prompts, seeds, sampler)  # noise (B, C, h, w)
    records, images = [], {}
    for spec in methods:
        with CostMeter(backbone.network) as meter:
            _, method_images = run_method(spec, noise, ctx, meter)
        stats = spec.method.sample_stats()
        scores = _scores(metrics, method_images, prompts)
        cost = meter.per_image()
        images[spec.name] = method_images.cpu()
        for row, (prompt_id, prompt, seed) in enumerate(items):
            records.append({"prompt_id": prompt_id, "prompt": prompt, "seed": seed, "method": spec.name,
                            "guidance_scale": spec.guidance_scale,
                            "scores": {key: float(value[row]) for key, value in scores.items()},
                            "cost": cost, "stats": {key: float(value[row]) for key, value in stats.items()}})
    return records, images

