"""The cross-method table of experiments/cross_method/README.md from an evaluation's summary and per-sample table.

Prints, as Markdown: every method's cost and alignment with its paired Δ against the baseline (from the harness's
``summary.json``), the head-to-head contrasts the README discusses (paired Δ, bootstrap 95 % CI resampled by prompt)
and the share of CFG's gain each cheap method reaches (:func:`goldennoise.metrics.gain_share`).

Usage: ``python experiments/cross_method/analyse.py [results folder]`` (default ``experiments/cross_method/results``).
"""

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from goldennoise.metrics import gain_share, paired_summary

SCORE = "shapes_alignment/alignment"
CONTRASTS = [("bestofn-soft", "stability-most"), ("bestofn-exact", "bestofn-soft"), ("cfg3", "noiserefine"),
             ("noiserefine", "npnet"), ("stability-most", "noiserefine")]
"""(method, other) pairs compared head to head: method − other on the same pairs."""
SHARES = ("npnet", "noiserefine", "stability-most", "bestofn-soft")
"""Methods whose share of CFG 3's gain over Gaussian noise is reported."""


def _pct(low: float, high: float) -> str:
    return f"[{low:+.3f}, {high:+.3f}]"


def method_table(summary: dict) -> list[str]:
    """One row per method: guidance, evaluations and seconds per image, alignment, Δ vs the baseline, wins/losses."""
    lines = ["| method | CFG | evals/img | s/img | alignment | Δ vs Gaussian [95 % CI] | better / worse |",
             "|---|---|---|---|---|---|---|"]
    for m in summary["methods"]:
        stats, cost = m["scores"][SCORE], m["cost"]
        delta = "—" if "delta" not in stats else f"{stats['delta']:+.3f} {_pct(*stats['delta_ci95'])}"
        wins = "—" if "wins" not in stats else f"{stats['wins']:.0%} / {stats['losses']:.0%}"
        lines.append(f"| {m['method']} | {m['guidance_scale']:g} | {cost['evaluations']:.0f} | {cost['seconds']:.2f} | "
                     f"{stats['mean']:.3f} | {delta} | {wins} |")
    return lines


def _per_method(samples: pd.DataFrame) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-method alignment (N,) on the same (prompt, seed) order, and the prompt id of each pair."""
    wide = samples.pivot_table(index=["prompt_id", "seed"], columns="method", values=f"score/{SCORE}")
    groups = torch.tensor(wide.index.get_level_values("prompt_id").to_numpy())
    return {name: torch.tensor(wide[name].to_numpy()) for name in wide.columns}, groups


def contrast_table(samples: pd.DataFrame) -> list[str]:
    """Head-to-head paired differences and the shares of CFG's gain."""
    scores, groups = _per_method(samples)
    lines = ["| contrast | Δ [95 % CI] | better / worse |", "|---|---|---|"]
    for method, other in CONTRASTS:
        s = paired_summary(scores[other], scores[method], groups=groups)
        lines.append(f"| {method} − {other} | {s['delta']:+.3f} {_pct(*s['delta_ci95'])} | "
                     f"{s['wins']:.0%} / {s['losses']:.0%} |")
    lines += ["", "| method | share of CFG 3's gain over Gaussian [95 % CI] |", "|---|---|"]
    for method in SHARES:
        g = gain_share(scores["gaussian"], scores["cfg3"], scores[method], groups)
        low, high = g["share_ci95"]
        lines.append(f"| {method} | {g['share']:.0%} [{low:.0%}, {high:.0%}] |")
    return lines


def main() -> None:
    """Print the tables of the results folder given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default="experiments/cross_method/results")
    folder = Path(parser.parse_args().folder)
    summary = json.loads((folder / "summary.json").read_text())
    print(f"{summary['items']} pairs\n")
    print("\n".join(method_table(summary)))
    print()
    print("\n".join(contrast_table(pd.read_parquet(folder / "samples.parquet"))))


if __name__ == "__main__":
    main()
