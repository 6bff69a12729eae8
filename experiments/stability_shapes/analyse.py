"""The study's numbers from the evaluate runs' per-sample tables and summaries (results/*.parquet, results/*.json).

1. Spearman correlation of each recorded stability score (``s``, ``s_traj``, the partial ``s_partial``) with the exact
   alignment of the same image, of ``s_partial`` with ``s`` and of the textbook with the fixed-point ``s``,
   with a 95 % percentile bootstrap CI resampling whole prompts (all seeds of a drawn prompt), as paired CIs do.
2. Per method, the mean of every recorded per-sample statistic (stability of the picks, norm, mean and std of the
   optimised noise against the Gaussian's √d, 0 and 1).
3. The paper's own comparison, most stable − least stable pick, paired, with a CI resampled by prompt.
4. One table over every run: method, evaluations and backward passes per image, seconds per image, mean alignment,
   Δ alignment against the run's baseline with its CI (from the harness's summary).

    python experiments/stability_shapes/analyse.py   # writes results/*.json summaries, results/table.md
"""

import json
from pathlib import Path

import pyarrow.parquet as pq
import torch

from goldennoise.metrics.paired import paired_summary

HERE = Path(__file__).parent / "results"
ALIGNMENT = "score/shapes_alignment/alignment"
SCORES = ("stat/stability/s", "stat/stability/s_traj", "stat/stability/s_partial")
RESAMPLES = 2000


def ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..N with ties given their average rank."""
    order = values.argsort()
    ranked = torch.empty_like(values)
    ranked[order] = torch.arange(1, len(values) + 1, dtype=values.dtype)
    for value in values.unique():  # average the ranks of ties (alignment takes few distinct values)
        tied = values == value
        if tied.sum() > 1:
            ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rank correlation: the Pearson correlation of the (tie-averaged) ranks."""
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / (rx.norm() * ry.norm()).clamp_min(1e-12))


def prompt_bootstrap(x: torch.Tensor, y: torch.Tensor, prompts: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    """95 % CI of Spearman(x, y) over resamples of whole prompts."""
    gen = torch.Generator().manual_seed(seed)
    ids = prompts.unique()
    members = [torch.nonzero(prompts == p).flatten() for p in ids]
    stats = []
    for _ in range(RESAMPLES):
        draw = torch.randint(len(ids), (len(ids),), generator=gen)
        index = torch.cat([members[int(i)] for i in draw])
        stats.append(spearman(x[index], y[index]))
    levels = torch.tensor([0.025, 0.975], dtype=torch.float64)
    low, high = torch.tensor(stats, dtype=torch.float64).quantile(levels).tolist()
    return low, high


def correlations(table: dict[str, list], run: str) -> list[dict]:
    """Every (method, score) correlation of one run's rows, for the methods that score the Gaussian noise itself."""
    out = []
    methods = sorted({m for m, s in zip(table["method"], table[SCORES[1]], strict=True) if s is not None})
    for method in methods:
        rows = [i for i, m in enumerate(table["method"]) if m == method]
        prompts = torch.tensor([table["prompt_id"][i] for i in rows])
        alignment = torch.tensor([table[ALIGNMENT][i] for i in rows], dtype=torch.float64)
        for key in SCORES:
            if key not in table or table[key][rows[0]] is None:
                continue
            score = torch.tensor([table[key][i] for i in rows], dtype=torch.float64)
            against = [("alignment", alignment)] + ([("s", torch.tensor([table[SCORES[0]][i] for i in rows],
                                                                         dtype=torch.float64))]
                                                     if key == "stat/stability/s_partial" else [])
            for name, target in against:
                low, high = prompt_bootstrap(score, target, prompts)
                out.append({"run": run, "method": method, "score": key.removeprefix("stat/stability/"),
                            "against": name, "pairs": len(rows), "spearman": spearman(score, target),
                            "ci95": [low, high]})
    return out


def stat_means(table: dict[str, list], run: str) -> list[dict]:
    """Per method, the mean of every recorded ``stat/`` column (stabilities, noise norm, mean and std)."""
    out = []
    for method in dict.fromkeys(table["method"]):
        rows = [i for i, m in enumerate(table["method"]) if m == method]
        means = {key.removeprefix("stat/"): sum(table[key][i] for i in rows) / len(rows)
                 for key in table if key.startswith("stat/") and table[key][rows[0]] is not None}
        if means:
            out.append({"run": run, "method": method, "pairs": len(rows), **means})
    return out


def most_vs_least(table: dict[str, list], run: str) -> list[dict]:
    """The paper's comparison, most stable − least stable pick, paired by (prompt, seed), CI resampled by prompt."""
    def column(method: str) -> dict[tuple[int, int], float]:
        return {(p, s): a for m, p, s, a in zip(table["method"], table["prompt_id"], table["seed"], table[ALIGNMENT],
                                                strict=True) if m == method}

    most, least = column("most-stable"), column("least-stable")
    pairs = sorted(most.keys() & least.keys())
    if not pairs:
        return []
    out = paired_summary(torch.tensor([least[p] for p in pairs], dtype=torch.float64),
                         torch.tensor([most[p] for p in pairs], dtype=torch.float64),
                         groups=torch.tensor([p for p, _ in pairs]), resamples=10_000)
    return [{"run": run, "comparison": "most-stable - least-stable", **{k: out[k] for k in (
        "delta", "delta_ci95", "wins", "ties", "losses", "pairs")}}]


def inverter_agreement(table: dict[str, list], run: str) -> list[dict]:
    """Spearman ρ of ``s`` by textbook inversion (method ``score``) and by the fixed-point inverter, same pairs."""
    def column(method: str) -> dict[tuple[int, int], float]:
        return {(p, s): v for m, p, s, v in zip(table["method"], table["prompt_id"], table["seed"], table[SCORES[0]],
                                                strict=True) if m == method}

    textbook, fixed = column("score"), column("score-fixed-point")
    pairs = sorted(textbook.keys() & fixed.keys())
    if not pairs:
        return []
    x = torch.tensor([textbook[p] for p in pairs], dtype=torch.float64)
    y = torch.tensor([fixed[p] for p in pairs], dtype=torch.float64)
    low, high = prompt_bootstrap(x, y, torch.tensor([p for p, _ in pairs]))
    return [{"run": run, "method": "score vs score-fixed-point", "score": "s", "against": "s (fixed-point)",
             "pairs": len(pairs), "spearman": spearman(x, y), "ci95": [low, high]}]


def table_lines(summary: dict, run: str) -> list[str]:
    """Markdown rows of one run's summary."""
    lines = []
    for s in summary["methods"]:
        stats, cost = s["scores"]["shapes_alignment/alignment"], s["cost"]
        delta = "—" if "delta" not in stats else (f"{stats['delta']:+.4f} ({stats['delta_ci95'][0]:+.4f}, "
                                                  f"{stats['delta_ci95'][1]:+.4f})")
        lines.append(f"| {run} | {s['method']} | {s['guidance_scale']:g} | {s['items']} | {cost['evaluations']:.0f} | "
                     f"{cost['backward']:.0f} | {cost['seconds']:.3f} | {stats['mean']:.4f} | {delta} |")
    return lines


def main() -> None:
    """Write results/correlation.json and results/table.md and print both."""
    found, stats, contrasts = [], [], []
    header = ["| run | method | CFG | pairs | evals/img | backward/img | s/img | alignment | Δ alignment (95 % CI) |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines = []
    for path in sorted(HERE.glob("*.parquet")):
        table = pq.read_table(path).to_pydict()
        if SCORES[0] in table:
            found += correlations(table, path.stem) + inverter_agreement(table, path.stem)
        stats += stat_means(table, path.stem)
        contrasts += most_vs_least(table, path.stem)
        summary = json.loads(path.with_suffix(".json").read_text())
        lines += table_lines(summary, path.stem)
    (HERE / "correlation.json").write_text(json.dumps(found, indent=1))
    (HERE / "stats.json").write_text(json.dumps(stats, indent=1))
    (HERE / "most_vs_least.json").write_text(json.dumps(contrasts, indent=1))
    (Path(__file__).parent / "results/table.md").write_text("\n".join(header + lines) + "\n")
    for c in found:
        print(f"{c['run']:14s} {c['method']:18s} {c['score']:10s} vs {c['against']:9s} n={c['pairs']:4d} "
              f"rho={c['spearman']:+.3f} ({c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f})")
    for row in contrasts:
        print(row)
    for row in stats:
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    print("\n".join(header + lines))


if __name__ == "__main__":
    main()
