"""Best-of-N noise search: sample N candidate noises per prompt and keep the one a metric scores best.

The baseline every noise method must beat at equal compute (the search baselines of ReNO, arXiv 2406.04312, and of
inference-time scaling, Ma et al., arXiv 2501.09732). Candidate 0 of a sample is its own input noise, so ``n = 1``
is the input unchanged; candidate ``j ≥ 1`` is the Gaussian noise of :func:`candidate_seed` ``(seed, j)``, so a
sample's candidates do not depend on the batch it is in. Candidates are sampled with the evaluation's own sampler
settings, so the chosen candidate's images are the final images and are handed over rather than sampled again:
best-of-N costs exactly N samplings per image.

With several metrics (a verifier ensemble, Ma et al., arXiv 2501.09732, Sec. 5), each metric ranks a sample's N
candidates and the candidate of the best mean rank wins (ties: the earlier candidate); all N candidates' images are
kept until the choice, so memory grows with N. See ``docs/reward.md`` §3.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchmetrics import Metric

from goldennoise.metrics.registry import metric_name, primary_key, sample_scores
from goldennoise.noise.base import NoiseContext, NoiseMethod, SamplerSettings
from goldennoise.sampling import noise_for_seeds


def candidate_seed(seed: int, index: int) -> int:
    """The seed of candidate ``index`` of a sample with seed ``seed`` (a hash: no collision with plain seeds)."""
    digest = hashlib.sha256(f"goldennoise-candidate:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # in [0, 2**63)


class BestOfN(NoiseMethod):
    """The best of ``n`` candidate noises per sample by ``metric``, or by the mean rank of several metrics.

    Args:
        metric: the verifier, a goldennoise metric (its per-sample scores are read, its state is untouched); or a
            list of metrics, a verifier ensemble ranked by mean rank.
        n: candidates per sample; :meth:`fit_budget` overrides it from an evaluation's budget.
        key: which per-sample score to maximise (e.g. ``shapes_alignment/alignment``); default the metric's primary.
            With an ensemble, one key (or ``None``) per metric.
        recorded: metrics that also read every candidate, never used to pick: with them, :meth:`sample_stats` gives
            every candidate's per-sample scores by the verifier(s) and by these (``candidate<j>/<key>``), so that
            other picks among the same candidates (by another verifier, by a stability score) cost no sampling.
    """

    def __init__(self, metric: Metric | list[Metric], n: int = 4, key: str | list[str | None] | None = None,
                 recorded: list[Metric] | None = None) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"BestOfN needs n >= 1 candidates, got {n}.")
        self.n = n
        self.recorded = nn.ModuleList(recorded or [])
        self._stats: dict[str, torch.Tensor] = {}
        self._ensemble = not isinstance(metric, Metric)  # private: a single-metric description stays as it was
        if not self._ensemble:
            if isinstance(key, list):
                raise ValueError("BestOfN with one metric takes one key, not a list.")
            self.metric, self.key = metric, key
            return
        metrics = list(metric)
        keys = [None] * len(metrics) if key is None else key
        if not metrics or isinstance(keys, str) or len(keys) != len(metrics):
            raise ValueError(f"A BestOfN ensemble needs at least one metric and one key (or None) per metric; got "
                             f"{len(metrics)} metrics and keys {key!r}.")
        self.metrics, self.keys = nn.ModuleList(metrics), list(keys)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        return {**out, "keys": list(self.keys)} if self._ensemble else out

    def fit_budget(self, evaluations_per_image: float, sampler: SamplerSettings) -> None:
        """As many candidates as the budget pays full samplings for (at least one)."""
        self.n = max(1, int(evaluations_per_image // sampler.evaluations_per_image()))

    @staticmethod
    def _score(images: torch.Tensor, prompts: list[str], metric: Metric, key: str | None) -> torch.Tensor:
        scores = sample_scores(metric, images, prompts)
        key = key or primary_key(metric)
        if key not in scores:
            raise ValueError(f"{metric_name(metric)} gives scores {sorted(scores)}, not {key!r}.")
        return scores[key].to(images.device)  # (B,)

    @staticmethod
    def _candidate(noise: torch.Tensor, seeds: Sequence[int], index: int) -> torch.Tensor:
        if index == 0:
            return noise  # candidate 0: the input noise
        return noise_for_seeds([candidate_seed(s, index) for s in seeds], noise.shape[1:], dtype=noise.dtype,
                               device=noise.device)

    def _record(self, j: int, images: torch.Tensor, prompts: list[str]) -> None:
        """Every per-sample score of candidate ``j``'s images by the verifier(s) and the recorded metrics."""
        verifiers = list(self.metrics) if self._ensemble else [self.metric]
        for metric in [*verifiers, *self.recorded]:
            self._stats |= {f"candidate{j}/{key}": value for key, value in sample_scores(metric, images,
                                                                                        prompts).items()}

    def sample_stats(self) -> dict[str, torch.Tensor]:
        return self._stats

    @torch.no_grad()
    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        self._stats = {}
        if self._ensemble:
            return self._by_mean_rank(noise, ctx)
        best_noise, best_images = noise, ctx.sample(noise)  # candidate 0: the input noise
        best = self._score(best_images, ctx.prompts, self.metric, self.key)  # (B,)
        if len(self.recorded):
            self._record(0, best_images, ctx.prompts)
        for j in range(1, self.n):
            candidate = self._candidate(noise, ctx.seeds, j)
            images = ctx.sample(candidate)
            scores = self._score(images, ctx.prompts, self.metric, self.key)
            if len(self.recorded):
                self._record(j, images, ctx.prompts)
            better = scores > best  # ties keep the earlier candidate
            best = torch.where(better, scores, best)
            best_noise = torch.where(better.view(-1, 1, 1, 1).to(noise.device), candidate, best_noise)
            best_images = torch.where(better.view(-1, 1, 1, 1).to(images.device), images, best_images)
        ctx.offer_images(best_noise, best_images)
        return best_noise

    def _by_mean_rank(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        candidates, images, scores = [], [], []
        for j in range(self.n):
            candidates.append(self._candidate(noise, ctx.seeds, j))
            images.append(ctx.sample(candidates[-1]))
            if len(self.recorded):
                self._record(j, images[-1], ctx.prompts)
            scores.append(torch.stack([self._score(images[-1], ctx.prompts, metric, key)
                                       for metric, key in zip(self.metrics, self.keys, strict=True)]))
        best = mean_rank(torch.stack(scores, dim=1)).argmin(dim=0)  # (B,): argmin returns the first of ties
        rows = torch.arange(len(noise), device=best.device)
        best_noise = torch.stack(candidates)[best.to(noise.device), rows.to(noise.device)]
        best_images = torch.stack(images)[best.to(images[0].device), rows.to(images[0].device)]
        ctx.offer_images(best_noise, best_images)
        return best_noise


def mean_rank(scores: torch.Tensor) -> torch.Tensor:
    """Mean over metrics of each candidate's rank (0 = best, ties share their average rank).

    Args:
        scores: (M, N, B): M metrics' scores of N candidates for B samples, higher better.

    Returns:
        (N, B) mean ranks; the lowest is the ensemble's choice.
    """
    above = (scores[:, None] > scores[:, :, None]).sum(dim=2)  # (M, N, B): candidates scored strictly higher
    ties = (scores[:, None] == scores[:, :, None]).sum(dim=2) - 1  # (M, N, B): other candidates scored the same
    return (above + 0.5 * ties).float().mean(dim=0)
