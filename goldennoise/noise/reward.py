r"""Reward-based noise optimisation (ReNO, Eyring et al., arXiv 2406.04312): gradient ascent on the initial noise.

Each iteration samples images from the current noise through ``steps`` DDIM steps (each denoiser call
checkpointed, so memory does not grow with the steps), scores them with a weighted sum of differentiable rewards
(the metrics' ``score()``), and takes one optimiser step on the noise against

.. math::
    L(\epsilon) = -\sum_i w_i\, r_i(x_0(\epsilon), c)
                  + \lambda\Big(\tfrac12\lVert\epsilon\rVert^2 - (d-1)\log\lVert\epsilon\rVert\Big),

the second term being minus the log-density of the norm of a d-dimensional standard Gaussian (a χ_d variable,
ReNO's regulariser, computed in fp32), which keeps ``‖ε‖`` near ``√(d−1)``. As in ReNO's trainer, ``iterations``
images are scored, the gradient of the last one is not taken, and the noise of the best-scored image (by the
weighted reward, without the regulariser) is returned. Defaults are ReNO's (its ``arguments.py`` and
``training/optim.py``): 50 iterations, SGD with lr 5, momentum 0.9 and Nesterov, gradient-norm clipping at 0.1,
λ = 0.01. ReNO optimises one image at a time; here a batch is optimised at once, with each sample's gradient
clipped on its own, so a sample's result does not depend on its batch. See ``docs/reward.md`` §2.

Cost per image, with ``e`` = 1 denoiser evaluation per step without guidance and 2 with, ``S`` steps and ``I``
iterations: ``I·S·e`` evaluations forward, ``(I−1)·S·e`` more recomputed by checkpointing, ``(I−1)·S·e`` backward
passes; when the reward's sampler settings are the evaluation's, the best images are handed over (no extra sampling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.utils.checkpoint
from torch import nn
from torchmetrics import Metric

from goldennoise.backbones.generate import OWN_LOOP
from goldennoise.metrics.registry import metric_name
from goldennoise.noise.base import NoiseContext, NoiseMethod
from goldennoise.noise.stability import noise_statistics
from goldennoise.sampling import sample

Optimizer = Literal["sgd", "adam"]


def check_differentiable(rewards: Sequence[Metric]) -> None:
    """Refuse a reward without a differentiable ``score(images, prompts)`` path, naming it."""
    for reward in rewards:
        if not callable(getattr(reward, "score", None)) or not getattr(reward, "is_differentiable", False):
            raise ValueError(f"Reward {metric_name(reward)!r} ({type(reward).__name__}) has no differentiable "
                             "score(images, prompts); use a metric with one (e.g. SoftShapesAlignment for the shapes "
                             "world, HPSv2Score, PickScore, ImageReward, CLIPScore, AestheticScore).")


def norm_log_likelihood_penalty(noise: torch.Tensor) -> torch.Tensor:
    r"""ReNO's regulariser per sample, ``½‖ε‖² − (d−1)·log‖ε‖`` in fp32: minus the χ_d log-density up to a constant.

    Args:
        noise: (B, C, h, w).

    Returns:
        (B,) penalties.
    """
    flat = noise.float().flatten(1)  # (B, d)
    norm = torch.linalg.vector_norm(flat, dim=1)
    return 0.5 * norm.square() - (flat.shape[1] - 1) * norm.log()


def clip_per_sample(grad: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale each sample's gradient (B, ...) to norm ≤ ``max_norm`` (``clip_grad_norm_`` of one sample)."""
    norms = torch.linalg.vector_norm(grad.flatten(1), dim=1)  # (B,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return grad * scale.view(-1, *([1] * (grad.dim() - 1)))


class RewardOptimization(NoiseMethod):
    """ReNO-style noise optimisation by gradient ascent on a weighted sum of differentiable rewards.

    Works when called under ``torch.no_grad`` or ``torch.inference_mode`` (it steps out of both and copies inference
    tensors), so it runs in Lightning ``test``/``predict`` loops with the default trainer.

    Args:
        rewards: metrics with a differentiable ``score(images, prompts)`` (e.g. :class:`SoftShapesAlignment`).
        weights: one weight per reward (default 1 each); ReNO's are HPSv2 5, ImageReward 1, PickScore 0.05, CLIP 0.01.
        iterations: images scored (ReNO ``n_iters`` 50); the last one is not differentiated.
        lr: learning rate (ReNO 5.0).
        optimizer: ``sgd`` (ReNO's default) or ``adam`` (ReNO's alternative, ``eps=1e-2``).
        momentum: SGD momentum (ReNO 0.9).
        nesterov: Nesterov momentum for SGD (ReNO's default on).
        grad_clip: each sample's gradient norm is clipped to this (ReNO 0.1); ``None`` does not clip.
        regularization: λ of the norm regulariser (ReNO 0.01); 0 turns it off.
        steps: DDIM steps of the differentiated sampling; ``None`` uses the evaluation's sampler steps (ReNO uses
            one-step models: 1).
        guidance_scale: guidance of the differentiated sampling; ``None`` uses the evaluation's.
        checkpoint: recompute each denoiser call in the backward pass instead of storing its activations.
    """

    def __init__(self, rewards: list[Metric], weights: list[float] | None = None, iterations: int = 50,
                 lr: float = 5.0, optimizer: Optimizer = "sgd", momentum: float = 0.9, nesterov: bool = True,
                 grad_clip: float | None = 0.1, regularization: float = 0.01, steps: int | None = None,
                 guidance_scale: float | None = None, checkpoint: bool = True) -> None:
        super().__init__()
        if not rewards:
            raise ValueError("RewardOptimization needs at least one reward.")
        check_differentiable(rewards)
        weights = [1.0] * len(rewards) if weights is None else [float(w) for w in weights]
        if len(weights) != len(rewards):
            raise ValueError(f"{len(rewards)} rewards but {len(weights)} weights; give one weight per reward.")
        if iterations < 1:
            raise ValueError(f"RewardOptimization needs iterations >= 1, got {iterations}.")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"Unknown optimizer {optimizer!r}; use 'sgd' or 'adam'.")
        if steps is not None and steps < 1:
            raise ValueError(f"RewardOptimization needs steps >= 1 (or None for the sampler's), got {steps}.")
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive or None, got {grad_clip}.")
        self.rewards = nn.ModuleList(rewards)
        self.weights = weights
        self.iterations, self.lr, self.optimizer, self.momentum, self.nesterov = (
            iterations, lr, optimizer, momentum, nesterov)
        self.grad_clip, self.regularization, self.steps = grad_clip, regularization, steps
        self.guidance_scale, self.checkpoint = guidance_scale, checkpoint
        self.reward_trace: torch.Tensor | None = None
        """Weighted reward (iterations, B) of every scored image of the last call."""
        self._stats: dict[str, torch.Tensor] = {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights": list(self.weights)}

    def reward(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """The weighted reward ``Σ w_i r_i`` (B,) of images (B, 3, H, W) in [0, 1], differentiable."""
        return sum(w * metric.score(images, prompts).float() for w, metric in zip(self.weights, self.rewards,
                                                                                    strict=True))

    def _make_optimizer(self, x: torch.Tensor) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam([x], lr=self.lr, eps=1e-2)
        return torch.optim.SGD([x], lr=self.lr, momentum=self.momentum, nesterov=self.nesterov)

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        with torch.inference_mode(False), torch.enable_grad():
            out = self._optimise(noise.clone(), ctx)
        trace = self.reward_trace  # (iterations, B)
        self._stats = {"reward/initial": trace[0], "reward/best": trace.max(0).values, **noise_statistics(out),
                       "noise/norm_input": noise.detach().flatten(1).float().norm(dim=1).cpu()}
        return out.to(noise.dtype)

    def sample_stats(self) -> dict[str, torch.Tensor]:
        """Per sample: the reward of the input noise and of the returned one, and the returned noise's statistics."""
        return self._stats

    def _optimise(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        backbone = ctx.backbone
        steps = self.steps or ctx.sampler.steps
        guidance = ctx.sampler.guidance_scale if self.guidance_scale is None else self.guidance_scale
        denoiser = backbone.denoiser(ctx.cond.copy(), ctx.uncond.copy(), guidance)  # copies autograd can save
        schedule = backbone.schedule(steps, tuple(noise.shape[-2:]))
        x = noise.detach().to(backbone.device, torch.float32).requires_grad_(True)  # (B, C, h, w)
        optimizer = self._make_optimizer(x)
        best_reward = torch.full((len(x),), -torch.inf, device=x.device)
        best_noise, best_images, trace = x.detach().clone(), None, []
        for i in range(self.iterations):
            differentiate = i < self.iterations - 1
            with torch.set_grad_enabled(differentiate):  # the sampler's checkpoints recompute whole, counted calls
                images = backbone.decode(sample(denoiser, x, schedule, checkpoint=self.checkpoint)).float()
                reward = self.reward(images, ctx.prompts)  # (B,)
            trace.append(reward.detach())
            better = reward.detach() > best_reward  # ties keep the earlier noise, as ReNO's strict "<" on the loss
            best_reward = torch.where(better, reward.detach(), best_reward)
            best_noise = torch.where(better.view(-1, 1, 1, 1), x.detach(), best_noise)
            best_images = images.detach() if best_images is None else torch.where(
                better.view(-1, 1, 1, 1), images.detach(), best_images)
            if differentiate:
                self._step(optimizer, x, reward)
        self.reward_trace = torch.stack(trace).cpu()
        if steps == ctx.sampler.steps and guidance == ctx.sampler.guidance_scale and ctx.sampler.scheduler in OWN_LOOP:
            ctx.offer_images(best_noise, best_images)  # the evaluation's own sampling of the returned noise
        return best_noise

    def _step(self, optimizer: torch.optim.Optimizer, x: torch.Tensor, reward: torch.Tensor) -> None:
        loss = -reward.sum()
        if self.regularization:
            loss = loss + self.regularization * norm_log_likelihood_penalty(x).sum()
        optimizer.zero_grad()
        loss.backward()
        if self.grad_clip is not None:
            x.grad = clip_per_sample(x.grad, self.grad_clip)
        optimizer.step()
