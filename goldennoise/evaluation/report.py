"""Summaries of an evaluation's per-sample records: per-method means, paired differences, costs, a table.

A method's score on an item pairs with the baseline's on the same (prompt, seed): the difference is what the
method changed. Its mean gets a bootstrap CI resampled **by prompt** (:func:`~goldennoise.metrics.paired_summary`
with ``groups``), since the seeds of one prompt share its difficulty; each mean gets the same kind of CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from goldennoise.metrics.paired import paired_bootstrap_ci, paired_summary

COST_COLUMNS = ("evaluations", "method/evaluations", "sampling/evaluations", "backward", "seconds",
                "sampling/peak_memory_mib")
"""Per-image costs shown in the summary table (all are logged)."""


def flat_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per (item, method): item fields, ``score/<key>``, ``cost/<key>`` and ``stat/<key>`` columns.

    ``stat/<key>`` holds a method's per-sample diagnostics (:meth:`~goldennoise.noise.NoiseMethod.sample_stats`),
    ``None`` in the rows of methods without that key, so every row has the same columns.
    """
    stat_keys = sorted({key for record in records for key in record.get("stats", {})})
    rows = []
    for record in records:
        row = {k: v for k, v in record.items() if k not in ("scores", "cost", "stats")}
        row.update({f"score/{k}": v for k, v in record["scores"].items()})
        row.update({f"stat/{k}": record.get("stats", {}).get(k) for k in stat_keys})  # None where a method has none
        cost = dict(record["cost"])
        for total in ("evaluations", "backward", "seconds"):
            cost[total] = cost.get(f"method/{total}", 0.0) + cost.get(f"sampling/{total}", 0.0)
        row.update({f"cost/{k}": v for k, v in cost.items()})
        rows.append(row)
    return rows


def _column(rows: Sequence[dict], method: str, key: str) -> dict[tuple[int, int], float]:
    return {(r["prompt_id"], r["seed"]): r[key] for r in rows if r["method"] == method}


def method_summary(rows: Sequence[dict], method: str, baseline: str, resamples: int = 10_000) -> dict[str, Any]:
    """Scores (mean and CI), paired differences against ``baseline`` and mean costs of one method."""
    own = [r for r in rows if r["method"] == method]
    if not own:
        raise ValueError(f"No records of method {method!r}.")
    summary: dict[str, Any] = {"method": method, "guidance_scale": own[0]["guidance_scale"], "items": len(own),
                               "scores": {}, "cost": {}}
    for key in sorted(k for k in own[0] if k.startswith("cost/")):
        summary["cost"][key.removeprefix("cost/")] = sum(r[key] for r in own) / len(own)
    for key in sorted(k for k in own[0] if k.startswith("score/")):
        summary["scores"][key.removeprefix("score/")] = _score_summary(rows, method, baseline, key, resamples)
    return summary


def _score_summary(rows: Sequence[dict], method: str, baseline: str, key: str, resamples: int) -> dict[str, Any]:
    mine, base = _column(rows, method, key), _column(rows, baseline, key)
    pairs = sorted(mine.keys() & base.keys())
    groups = torch.tensor([prompt_id for prompt_id, _ in pairs])
    values = torch.tensor([mine[p] for p in pairs], dtype=torch.float64)
    low, high = paired_bootstrap_ci(values, resamples=resamples, groups=groups)
    out = {"mean": values.mean().item(), "ci95": [low, high]}
    if method != baseline:
        paired = paired_summary(torch.tensor([base[p] for p in pairs], dtype=torch.float64), values, groups=groups,
                                resamples=resamples)
        out.update({k: paired[k] for k in ("delta", "delta_ci95", "wins", "ties", "losses", "pairs")})
    return out


def summarize(rows: Sequence[dict], methods: Sequence[str], baseline: str, resamples: int = 10_000) -> list[dict]:
    """:func:`method_summary` of every method, in order."""
    if baseline not in methods:
        raise ValueError(f"The baseline {baseline!r} is not one of the methods {list(methods)}.")
    return [method_summary(rows, method, baseline, resamples) for method in methods]


def format_table(summaries: Sequence[dict], baseline: str, score: str | None = None) -> str:
    """A plain-text table: method, guidance, costs per image, the score's mean and its Δ vs the baseline with CI."""
    score = score or next(iter(summaries[0]["scores"]), None)
    header = ["method", "CFG", "evals/img", "backward/img", "s/img", "peak MiB", f"{score}",
              f"Δ vs {baseline} [95% CI]", "win/tie/loss"]
    lines = [header]
    for s in summaries:
        cost, stats = s["cost"], s["scores"].get(score, {})
        delta = "—" if "delta" not in stats else (f"{stats['delta']:+.4f} [{stats['delta_ci95'][0]:+.4f}, "
                                                  f"{stats['delta_ci95'][1]:+.4f}]")
        shares = "—" if "wins" not in stats else f"{stats['wins']:.2f}/{stats['ties']:.2f}/{stats['losses']:.2f}"
        lines.append([s["method"], f"{s['guidance_scale']:g}", f"{cost.get('evaluations', 0):.1f}",
                      f"{cost.get('backward', 0):.1f}", f"{cost.get('seconds', 0):.3f}",
                      f"{cost.get('sampling/peak_memory_mib', 0):.0f}",
                      f"{stats.get('mean', float('nan')):.4f}", delta, shares])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in lines]
    return "\n".join([text[0], "  ".join("-" * w for w in widths), *text[1:]])
