"""Best-of-N noise search: sample N candidate noises per prompt and keep the one a metric scores best.

The baseline every noise method must beat at equal compute (the search baselines of ReNO, arXiv 2406.04312, and of
inference-time scaling, Ma et al., arXiv 2501.09732). Candidate 0 of a sample is its own input noise, so ``n = 1``
is the input unchanged; candidate ``j ≥ 1`` is the Gaussian noise of :func:`candidate_seed` ``(seed, j)``, so a
sample's candidates do not depend on the batch it is in. Candidates are sampled with the evaluation's own sampler
settings, so the chosen candidate's images are the final images and are handed over rather than sampled again:
best-of-N costs exactly N samplings per image.
"""

from __future__ import annotations

import hashlib

import torch
from torchmetrics import Metric

from goldennoise.metrics.registry import metric_name, primary_key, sample_scores
from goldennoise.noise.base import NoiseContext, NoiseMethod, SamplerSettings
from goldennoise.sampling import noise_for_seeds


def candidate_seed(seed: int, index: int) -> int:
    """The seed of candidate ``index`` of a sample with seed ``seed`` (a hash: no collision with plain seeds)."""
    digest = hashlib.sha256(f"goldennoise-candidate:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # in [0, 2**63)


class BestOfN(NoiseMethod):
    """The best of ``n`` candidate noises per sample by ``metric``.

    Args:
        metric: the verifier, a goldennoise metric (its per-sample scores are read, its state is untouched).
        n: candidates per sample; :meth:`fit_budget` overrides it from an evaluation's budget.
        key: which per-sample score to maximise (e.g. ``shapes_alignment/alignment``); default the metric's primary.
    """

    def __init__(self, metric: Metric, n: int = 4, key: str | None = None) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"BestOfN needs n >= 1 candidates, got {n}.")
        self.metric, self.n, self.key = metric, n, key

    def fit_budget(self, evaluations_per_image: float, sampler: SamplerSettings) -> None:
        """As many candidates as the budget pays full samplings for (at least one)."""
        self.n = max(1, int(evaluations_per_image // sampler.evaluations_per_image()))

    def _score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        scores = sample_scores(self.metric, images, prompts)
        key = self.key or primary_key(self.metric)
        if key not in scores:
            raise ValueError(f"{metric_name(self.metric)} gives scores {sorted(scores)}, not {key!r}.")
        return scores[key].to(images.device)  # (B,)

    @torch.no_grad()
    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        best_noise, best_images = noise, ctx.sample(noise)  # candidate 0: the input noise
        best = self._score(best_images, ctx.prompts)  # (B,)
        for j in range(1, self.n):
            seeds = [candidate_seed(s, j) for s in ctx.seeds]
            candidate = noise_for_seeds(seeds, noise.shape[1:], dtype=noise.dtype, device=noise.device)
            images = ctx.sample(candidate)
            scores = self._score(images, ctx.prompts)
            better = scores > best  # ties keep the earlier candidate
            best = torch.where(better, scores, best)
            best_noise = torch.where(better.view(-1, 1, 1, 1).to(noise.device), candidate, best_noise)
            best_images = torch.where(better.view(-1, 1, 1, 1).to(images.device), images, best_images)
        ctx.offer_images(best_noise, best_images)
        return best_noise
