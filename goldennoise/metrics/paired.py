"""Paired comparisons of two noise sources on the same (prompt, seed) pairs: the mean difference and its CI.

Two noises scored on the same prompts and seeds give paired scores; the per-pair differences keep the pairing, so
their bootstrap CI is far tighter than comparing two independent means would be.
"""

from __future__ import annotations

import torch


def paired_bootstrap_ci(diffs: torch.Tensor, resamples: int = 10_000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of ``diffs.mean()``; each resample draws whole pairs, so the pairing is kept.

    Args:
        diffs: per-pair differences (N,), e.g. score with method noise − score with Gaussian noise.
        resamples: bootstrap resamples.
        seed: generator seed of the resampling.
        level: coverage of the interval.

    Returns:
        ``(low, high)`` bounds of the mean difference.
    """
    if diffs.ndim != 1 or len(diffs) == 0:
        raise ValueError(f"paired_bootstrap_ci takes a non-empty 1-D tensor of differences, got {tuple(diffs.shape)}.")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(diffs), (resamples, len(diffs)), generator=gen)  # (R, N)
    means = diffs.double()[idx].mean(dim=1)  # (R,)
    tail = (1 - level) / 2
    return means.quantile(tail).item(), means.quantile(1 - tail).item()


def paired_summary(baseline: torch.Tensor, method: torch.Tensor, **bootstrap: object) -> dict[str, float | list]:
    """Means of paired scores (N,) each, their mean difference, its bootstrap CI and the win/tie/loss shares."""
    if baseline.shape != method.shape:
        raise ValueError(f"Paired scores need equal shapes, got {tuple(baseline.shape)} and {tuple(method.shape)}.")
    diffs = (method - baseline).double()
    return {"baseline": baseline.double().mean().item(), "method": method.double().mean().item(),
            "delta": diffs.mean().item(), "delta_ci95": list(paired_bootstrap_ci(diffs, **bootstrap)),
            "wins": (diffs > 0).double().mean().item(), "losses": (diffs < 0).double().mean().item()}
