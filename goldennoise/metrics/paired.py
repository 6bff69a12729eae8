"""Paired comparisons of two noise sources on the same (prompt, seed) pairs: the mean difference and its CI.

Two noises scored on the same prompts and seeds give paired scores; the per-pair differences keep the pairing, so
their bootstrap CI is far tighter than comparing two independent means would be. Pairs that share a prompt are not
independent (a prompt the backbone draws well helps every seed of it), so with ``groups`` the bootstrap resamples
whole prompts — every pair of a drawn prompt — rather than single pairs (a cluster bootstrap); without it, the CI is
too narrow whenever seeds per prompt > 1.
"""

from __future__ import annotations

import torch


def _resampled_means(diffs: torch.Tensor, groups: torch.Tensor | None, resamples: int,
                     gen: torch.Generator) -> torch.Tensor:
    """Means of ``diffs`` (N,) over ``resamples`` bootstrap draws of pairs, or of whole groups (R,)."""
    if groups is None:
        idx = torch.randint(len(diffs), (resamples, len(diffs)), generator=gen)  # (R, N)
        return diffs[idx].mean(dim=1)
    _, cluster = torch.unique(groups, return_inverse=True)  # (N,) cluster index of each pair
    count = int(cluster.max()) + 1
    sums = torch.zeros(count, dtype=diffs.dtype).index_add_(0, cluster, diffs)  # (G,)
    sizes = torch.zeros(count, dtype=diffs.dtype).index_add_(0, cluster, torch.ones_like(diffs))  # (G,)
    idx = torch.randint(count, (resamples, count), generator=gen)  # (R, G)
    return sums[idx].sum(dim=1) / sizes[idx].sum(dim=1)


def paired_bootstrap_ci(diffs: torch.Tensor, resamples: int = 10_000, seed: int = 0, level: float = 0.95,
                        groups: torch.Tensor | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI of ``diffs.mean()``; each resample draws whole pairs, so the pairing is kept.

    Args:
        diffs: per-pair differences (N,), e.g. score with method noise − score with Gaussian noise.
        resamples: bootstrap resamples.
        seed: generator seed of the resampling.
        level: coverage of the interval.
        groups: the cluster of each pair (N,), e.g. its prompt id: resample whole clusters (see the module
            docstring); ``None`` resamples single pairs.

    Returns:
        ``(low, high)`` bounds of the mean difference.
    """
    if diffs.ndim != 1 or len(diffs) == 0:
        raise ValueError(f"paired_bootstrap_ci takes a non-empty 1-D tensor of differences, got {tuple(diffs.shape)}.")
    if groups is not None and groups.shape != diffs.shape:
        raise ValueError(f"groups must give one cluster per difference: {tuple(groups.shape)} vs {tuple(diffs.shape)}.")
    gen = torch.Generator().manual_seed(seed)
    means = _resampled_means(diffs.double(), None if groups is None else groups.cpu(), resamples, gen)
    tail = (1 - level) / 2
    return means.quantile(tail).item(), means.quantile(1 - tail).item()


def paired_summary(baseline: torch.Tensor, method: torch.Tensor, groups: torch.Tensor | None = None,
                   **bootstrap: object) -> dict[str, float | list]:
    """Means of paired scores (N,) each, their mean difference, its bootstrap CI and the win/tie/loss shares.

    Args:
        baseline: the baseline's per-pair scores (N,).
        method: the method's per-pair scores (N,), same pairs in the same order.
        groups: cluster of each pair (e.g. prompt id) for a bootstrap by prompt; see :func:`paired_bootstrap_ci`.
        bootstrap: ``resamples``, ``seed``, ``level`` of :func:`paired_bootstrap_ci`.
    """
    if baseline.shape != method.shape:
        raise ValueError(f"Paired scores need equal shapes, got {tuple(baseline.shape)} and {tuple(method.shape)}.")
    diffs = (method - baseline).double()
    return {"baseline": baseline.double().mean().item(), "method": method.double().mean().item(),
            "delta": diffs.mean().item(), "delta_ci95": list(paired_bootstrap_ci(diffs, groups=groups, **bootstrap)),
            "wins": (diffs > 0).double().mean().item(), "ties": (diffs == 0).double().mean().item(),
            "losses": (diffs < 0).double().mean().item(), "pairs": len(diffs)}



def gain_share(baseline: torch.Tensor, reference: torch.Tensor, method: torch.Tensor, groups: torch.Tensor,
               resamples: int = 10_000, seed: int = 0, level: float = 0.95) -> dict[str, float | list]:
    """The share of a reference's gain over the baseline that a method reaches, with a bootstrap CI by prompt.

    ``share = mean(method − baseline) / mean(reference − baseline)`` on the same pairs (e.g. refined noise without
    guidance vs CFG, both against Gaussian noise without guidance: NoiseRefine's "gain recovered"). Each resample
    draws whole prompts (``groups``) and recomputes both means, so the ratio's two parts stay paired.

    Args:
        baseline: the baseline's per-pair scores (N,).
        reference: the reference's (e.g. CFG's) per-pair scores (N,), same pairs in the same order.
        method: the method's per-pair scores (N,), same pairs in the same order.
        groups: each pair's prompt id (N,).
        resamples: bootstrap resamples.
        seed: generator seed of the resampling.
        level: coverage of the interval.

    Returns:
        ``{"share", "share_ci95", "gain", "reference_gain", "pairs"}``.
    """
    if not baseline.shape == reference.shape == method.shape == groups.shape or baseline.ndim != 1:
        raise ValueError("gain_share needs 1-D per-pair scores and groups of one shape.")
    gain, ref_gain = (method - baseline).double(), (reference - baseline).double()
    _, cluster = torch.unique(groups.cpu(), return_inverse=True)
    count = int(cluster.max()) + 1
    sums = torch.zeros(count, 2, dtype=torch.float64).index_add_(0, cluster, torch.stack([gain, ref_gain], 1))
    idx = torch.randint(count, (resamples, count), generator=torch.Generator().manual_seed(seed))  # (R, G)
    drawn = sums[idx].sum(dim=1)  # (R, 2)
    shares = drawn[:, 0] / drawn[:, 1]
    tail = (1 - level) / 2
    return {"share": (gain.sum() / ref_gain.sum()).item(),
            "share_ci95": [shares.quantile(tail).item(), shares.quantile(1 - tail).item()],
            "gain": gain.mean().item(), "reference_gain": ref_gain.mean().item(), "pairs": len(gain)}
