"""The study's numbers from the evaluate runs' per-sample tables and summaries (results/<run>.parquet, .json).

1. Spearman correlation of each recorded stability score of the Gaussian noise (``s``, ``s_traj``, the partial
   ``s_partial``) with the exact alignment of its image, and of ``s_partial`` with ``s``, per run (split, steps,
   guidance), with a 95 % percentile bootstrap CI resampling whole prompts (all seeds of a drawn prompt).
2. Per method, the mean of every recorded per-sample statistic (stability of the picks; norm, mean and std of the
   optimised noise against the Gaussian's √d, 0 and 1).
3. Paired contrasts between the selections: most − least stable (the paper's comparison) and most stable − random.
4. Δ alignment broken down by fact kind: per kind (colour, shape, position, relation), the change of the share of
   that kind's facts satisfied, over the pairs whose prompt states it, and the change of the right-count rate; paired
   against the run's baseline, CI resampled by prompt.
5. One table over every run: method, evaluations and backward passes per image, seconds per image, mean alignment,
   Δ alignment against the run's baseline with its CI (from the harness's summary).

    python experiments/stability_shapes/analyse.py

It writes results/table.md and results/{correlation,stats,contrasts,facts}.json.
"""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from goldennoise.metrics.paired import paired_summary
from goldennoise.noise import StabilitySelection
from goldennoise.shapes import FACT_KINDS, parse_prompt

HERE = Path(__file__).parent / "results"
TABLE = HERE.parent / "results/table.md"  # the README shows it
ALIGNMENT = "score/shapes_alignment/alignment"
SCORES = ("stat/stability/s", "stat/stability/s_traj", "stat/stability/s_partial")
RESAMPLES = 2000
RUNS = ("main", "heldout", "corr-steps20", "corr-cfg3", "sel-steps20", "sel-cfg3", "k8", "k16", "opt")
"""Every run of run.sh, in the order of the tables."""


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N (N,) with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    group = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1  # tie group of each sorted value
    counts = np.bincount(group)
    average = np.cumsum(counts) - (counts - 1) / 2  # mean 1-based rank of each tie group
    out = np.empty(len(values))
    out[order] = average[group]
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation: the Pearson correlation of the (tie-averaged) ranks."""
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / max(np.linalg.norm(rx) * np.linalg.norm(ry), 1e-12))


def prompt_bootstrap(x: np.ndarray, y: np.ndarray, prompts: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % CI of Spearman(x, y) over resamples of whole prompts."""
    gen = np.random.default_rng(seed)
    ids = np.unique(prompts)
    members = [np.flatnonzero(prompts == p) for p in ids]
    stats = []
    for _ in range(RESAMPLES):
        index = np.concatenate([members[i] for i in gen.integers(len(ids), size=len(ids))])
        stats.append(spearman(x[index], y[index]))
    low, high = np.quantile(stats, [0.025, 0.975])
    return float(low), float(high)


def rows_of(table: dict[str, list], method: str) -> dict[tuple[int, int], int]:
    """(prompt id, seed) → row index of one method's rows."""
    return {(p, s): i for i, (m, p, s) in enumerate(zip(table["method"], table["prompt_id"], table["seed"],
                                                        strict=True)) if m == method}


def correlations(table: dict[str, list], run: str) -> list[dict]:
    """Every score's correlation with alignment (and s_partial's with s) for methods that score the Gaussian noise."""
    out = []
    methods = [m for m in dict.fromkeys(table["method"]) if SCORES[1] in table
               and table[SCORES[1]][next(iter(rows_of(table, m).values()))] is not None]
    for method in methods:
        rows = list(rows_of(table, method).values())
        prompts = np.array([table["prompt_id"][i] for i in rows])
        column = {key: np.array([table[key][i] for i in rows], dtype=np.float64)
                  for key in (ALIGNMENT, *SCORES) if key in table and table[key][rows[0]] is not None}
        for key in SCORES:
            if key not in column:
                continue
            against = [("alignment", column[ALIGNMENT])] + ([("s", column[SCORES[0]])]
                                                            if key == SCORES[2] else [])
            for name, target in against:
                low, high = prompt_bootstrap(column[key], target, prompts)
                out.append({"run": run, "method": method, "score": key.removeprefix("stat/stability/"),
                            "against": name, "pairs": len(rows), "spearman": spearman(column[key], target),
                            "ci95": [low, high]})
    return out


def stat_means(table: dict[str, list], run: str) -> list[dict]:
    """Per method, the mean of every recorded ``stat/`` column but the per-candidate records."""
    out = []
    for method in dict.fromkeys(table["method"]):
        rows = list(rows_of(table, method).values())
        means = {key.removeprefix("stat/"): float(np.mean([table[key][i] for i in rows]))
                 for key in table if key.startswith("stat/") and "candidate" not in key
                 and table[key][rows[0]] is not None}
        if means:
            out.append({"run": run, "method": method, "pairs": len(rows), **means})
    return out


def outcome_columns(table: dict[str, list], method: str, pairs: list, prefix: str) -> dict[str, np.ndarray]:
    """Per pair (P,): alignment, count_correct and each fact kind's share satisfied (NaN if the prompt states none)."""
    rows = rows_of(table, method)
    index = [rows[p] for p in pairs]
    stated = [Counter(parse_prompt(table["prompt"][i]).facts) for i in index]
    out = {key: np.array([table[f"{prefix}shapes_alignment/{key}"][i] for i in index], dtype=np.float64)
           for key in ("alignment", "count_correct")}
    for kind in FACT_KINDS:
        correct = np.array([table[f"{prefix}shapes_alignment/{kind}_correct"][i] for i in index], dtype=np.float64)
        total = np.array([c[kind] for c in stated], dtype=np.float64)
        out[kind] = np.where(total > 0, correct / np.maximum(total, 1), np.nan)
    return out


def candidates(table: dict[str, list], pairs: list) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray] | None:
    """The recorded candidates: stability s (P, K), outcomes by key (P, N, ...) and soft scores (P, N); or None."""
    most, best = rows_of(table, "most-stable"), rows_of(table, "bestofn-exact")
    if not most or "stat/stability/candidate0/s" not in table or "stat/candidate0/soft_shapes_alignment" not in table:
        return None
    k = sum(1 for key in table if key.startswith("stat/stability/candidate") and key.endswith("/s"))
    n = sum(1 for key in table if key.startswith("stat/candidate") and key.endswith("/soft_shapes_alignment"))
    s = np.array([[table[f"stat/stability/candidate{j}/s"][most[p]] for j in range(k)] for p in pairs])
    soft = np.array([[table[f"stat/candidate{j}/soft_shapes_alignment"][best[p]] for j in range(n)] for p in pairs])
    outcomes = [outcome_columns(table, "bestofn-exact", pairs, f"stat/candidate{j}/") for j in range(n)]
    return s, {key: np.stack([o[key] for o in outcomes], axis=1) for key in outcomes[0]}, soft


def random_picks(seeds: list[int], k: int) -> np.ndarray:
    """The random rule's pick among k candidates, as StabilitySelection(k, pick="random") draws it."""
    return StabilitySelection(k=k, pick="random")._random_picks(seeds).numpy()


def derived_methods(table: dict[str, list], pairs: list, ks: tuple[int, ...] = (4, 8, 16)) -> dict[str, dict]:
    """Per derived method (picks among the recorded candidates), its per-pair outcomes and its cost in samplings.

    For each k the run recorded: the most / least stable and the random pick among candidates 0..k-1, and best-of-n
    among candidates 0..n-1 (n = 2k + 1, k's budget: k round trips of two samplings each plus the final one) by the
    soft surrogate and by the exact alignment; cost ``samplings`` per image.
    """
    recorded = candidates(table, pairs)
    if recorded is None:
        return {}
    s, outcomes, soft = recorded
    seeds = [seed for _, seed in pairs]
    rows = np.arange(len(pairs))
    out = {}
    for k in (k for k in ks if k <= s.shape[1] and 2 * k + 1 <= soft.shape[1]):
        n = 2 * k + 1
        picks = {f"most-stable k={k}": s[:, :k].argmax(1), f"least-stable k={k}": s[:, :k].argmin(1),
                 f"random-pick k={k}": random_picks(seeds, k),
                 f"bestofn-soft n={n}": soft[:, :n].argmax(1),
                 f"bestofn-exact n={n}": outcomes["alignment"][:, :n].argmax(1)}
        for name, pick in picks.items():
            out[name] = {"outcomes": {key: value[rows, pick] for key, value in outcomes.items()}, "k": k,
                         "samplings": n, "selection": not name.startswith("bestofn")}
    return out


def consistency(table: dict[str, list], pairs: list, derived: dict[str, dict]) -> dict[str, float]:
    """Share of pairs where a derived pick's alignment equals the run's own method's (same images, same picks)."""
    checks = {}
    own = {"most-stable": "most-stable k=", "bestofn-exact": "bestofn-exact n="}
    for method, prefix in own.items():
        mine = [name for name in derived if name.startswith(prefix)]
        if mine and rows_of(table, method):
            largest = max(mine, key=lambda name: derived[name]["samplings"])
            ran = outcome_columns(table, method, pairs, "score/")["alignment"]
            checks[f"{largest} = {method}"] = float(np.mean(derived[largest]["outcomes"]["alignment"] == ran))
    return checks


def summary_cost(summary: dict) -> dict[str, dict]:
    """Per run method: its summary's cost (evaluations, backward, seconds per image, sampling seconds)."""
    return {m["method"]: m["cost"] for m in summary["methods"]}


def derived_cost(entry: dict, cost: dict[str, dict], baseline: str) -> dict[str, float]:
    """Evaluations (exact: samplings × one sampling's) and seconds per image (pro rata of the run's own method)."""
    sampling = cost[baseline]["sampling/evaluations"]
    if entry["selection"]:
        ran = cost["most-stable"]
        per_round_trip = (ran["method/seconds"]) / ((ran["method/evaluations"]) / (2 * sampling))
        seconds = ran["sampling/seconds"] + entry["k"] * per_round_trip
    else:
        ran = cost["bestofn-exact"]
        seconds = ran["seconds"] * entry["samplings"] / (ran["evaluations"] / sampling)
    return {"evaluations": entry["samplings"] * sampling, "backward": 0.0, "seconds": seconds}


def delta(base: np.ndarray, other: np.ndarray, prompts: list[int]) -> dict | None:
    """paired_summary of two per-pair outcome arrays over the pairs where both are defined (or None), CI by prompt."""
    keep = ~(np.isnan(base) | np.isnan(other))
    if not keep.any():
        return None
    return paired_summary(torch.tensor(base[keep]), torch.tensor(other[keep]),
                          groups=torch.tensor(np.array(prompts)[keep]), resamples=10_000)


def compare(table: dict[str, list], summary: dict, run: str) -> tuple[list[dict], dict]:
    """Every method of a run (its own and the derived picks) against the run's baseline, with costs."""
    baseline = summary["methods"][0]["method"]
    pairs = sorted(rows_of(table, baseline))
    prompts = [p for p, _ in pairs]
    base = outcome_columns(table, baseline, pairs, "score/")
    cost = summary_cost(summary)
    methods = {m: {"outcomes": outcome_columns(table, m, pairs, "score/"), "cost": cost[m], "derived": False}
               for m in cost}
    derived = derived_methods(table, pairs)
    sizes = {"most-stable": max((e["k"] for e in derived.values() if e["selection"]), default=None),
             "bestofn-exact": max((e["samplings"] for e in derived.values()), default=None)}
    label = {"most-stable": f"most-stable k={sizes['most-stable']}",
             "bestofn-exact": f"bestofn-exact n={sizes['bestofn-exact']}"}
    for name, entry in derived.items():
        methods[name] = {"outcomes": entry["outcomes"], "cost": derived_cost(entry, cost, baseline), "derived": True}
    rows = []
    for name, entry in methods.items():
        shown = label.get(name, name) if derived and not entry["derived"] else name
        row = {"run": run, "method": shown, "derived": entry["derived"], "pairs": len(pairs),
               "evaluations": entry["cost"]["evaluations"], "backward": entry["cost"]["backward"],
               "seconds": entry["cost"]["seconds"], "alignment": float(entry["outcomes"]["alignment"].mean())}
        if name != baseline:
            for key in ("alignment", "count_correct", *FACT_KINDS):
                d = delta(base[key], entry["outcomes"][key], prompts)
                if d is not None:  # None: no prompt of the run states that kind
                    row[f"delta_{key}"] = {k: d[k] for k in ("baseline", "delta", "delta_ci95", "wins", "losses",
                                                              "pairs")}
        rows.append(row)
    checks = consistency(table, pairs, derived)
    if derived:
        zero = candidates(table, pairs)[1]["alignment"][:, 0]
        checks["candidate 0 = baseline"] = float(np.mean(zero == base["alignment"]))
        k = candidates(table, pairs)[0].shape[1]
        recorded = np.array([table["stat/stability/pick_random"][rows_of(table, "most-stable")[p]] for p in pairs])
        checks[f"random pick k={k} = recorded"] = float(np.mean(random_picks([s for _, s in pairs], k) == recorded))
    duplicates = {name.split(" = ")[0] for name in checks if " = " in name and name.split(" = ")[1] in cost}
    return [r for r in rows if not (r["derived"] and r["method"] in duplicates)], checks


def contrasts(rows: list[dict], table: dict[str, list], summary: dict, run: str) -> list[dict]:
    """The paper's comparison (most − least stable) and most stable − random pick, per k, paired, CI by prompt."""
    baseline = summary["methods"][0]["method"]
    pairs = sorted(rows_of(table, baseline))
    derived = derived_methods(table, pairs)
    out = []
    for name in (n for n in derived if n.startswith("most-stable")):
        k = derived[name]["k"]
        for other in (f"least-stable k={k}", f"random-pick k={k}"):
            d = delta(derived[other]["outcomes"]["alignment"], derived[name]["outcomes"]["alignment"],
                      [p for p, _ in pairs])
            out.append({"run": run, "comparison": f"{name} - {other}", **{key: d[key] for key in (
                "delta", "delta_ci95", "wins", "ties", "losses", "pairs")}})
    return out


def table_lines(rows: list[dict]) -> list[str]:
    """Markdown rows: method, evaluations and backward passes per image, seconds per image, alignment, Δ (CI)."""
    lines = []
    for r in rows:
        d = r.get("delta_alignment")
        delta_text = "—" if d is None else f"{d['delta']:+.3f} ({d['delta_ci95'][0]:+.3f}, {d['delta_ci95'][1]:+.3f})"
        seconds = f"{'≈' if r['derived'] else ''}{r['seconds']:.3f}"
        lines.append(f"| {r['run']} | {r['method']} | {r['pairs']} | {r['evaluations']:.0f} | {r['backward']:.0f} | "
                     f"{seconds} | {r['alignment']:.3f} | {delta_text} |")
    return lines


def main() -> None:
    """Write results/{correlation,stats,contrasts,comparison,checks}.json and results/table.md, and print them."""
    found, stats, contrast, comparison, checks = [], [], [], [], {}
    header = ["| run | method | pairs | evals/img | backward/img | s/img | alignment | Δ alignment (95 % CI) |",
              "|---|---|---|---|---|---|---|---|"]
    for run in RUNS:
        path = HERE / f"{run}.parquet"
        if not path.exists():
            continue
        table = pq.read_table(path).to_pydict()
        summary = json.loads(path.with_suffix(".json").read_text())
        found += correlations(table, run)
        stats += stat_means(table, run)
        rows, checks[run] = compare(table, summary, run)
        comparison += rows
        contrast += contrasts(rows, table, summary, run)
    for name, data in (("correlation", found), ("stats", stats), ("contrasts", contrast),
                       ("comparison", comparison), ("checks", checks)):
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=1))
    lines = header + table_lines(comparison)
    TABLE.write_text("\n".join(lines) + "\n")
    for c in found:
        print(f"{c['run']:13s} {c['method']:9s} {c['score']:9s} vs {c['against']:9s} n={c['pairs']:4d} "
              f"rho={c['spearman']:+.3f} ({c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f})")
    for row in contrast:
        print(f"{row['run']:13s} {row['comparison']:40s} {row['delta']:+.3f} ({row['delta_ci95'][0]:+.3f}, "
              f"{row['delta_ci95'][1]:+.3f}) n={row['pairs']}")
    for row in comparison:
        print(f"{row['run']:13s} {row['method']:22s} " + " ".join(
            f"{k.removeprefix('delta_')}={v['delta']:+.3f}({v['delta_ci95'][0]:+.3f},{v['delta_ci95'][1]:+.3f})"
            for k, v in row.items() if k.startswith("delta_") and k != "delta_alignment"))
    for row in stats:
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    print(json.dumps(checks))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
