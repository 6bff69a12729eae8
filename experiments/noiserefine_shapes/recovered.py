"""Share of CFG's alignment gain that refined noise reaches without guidance, with a bootstrap CI by prompt.

Reads an evaluation's ``samples.parquet`` (methods ``gaussian``, ``cfg3`` and one or more refiners, e.g.
``noiserefine``, on the same pairs) and prints, for each refiner, ``(refined − gaussian) / (cfg − gaussian)`` of the
mean exact alignment, each method's evaluations per image, and, with several refiners, each one's paired difference
to the reference refiner (``--reference``, default ``noiserefine``), all with 95 % bootstrap CIs resampled by prompt.
With ``--best`` it prints only the name of the refiner with the highest mean alignment (the selection of
``candidates.py``). With ``--pool`` the files' pairs (disjoint evaluations of the same methods, e.g. three ranges
of held-out scenes) make one estimate, still resampled by prompt; a pair in two files counts once. Usage:
``python experiments/noiserefine_shapes/recovered.py [--best] [--pool] [--reference NAME] <samples.parquet> [...]``.
"""

import argparse
import json
import sys

import pyarrow.parquet as pq
import torch

from goldennoise.metrics import gain_share
from goldennoise.metrics.paired import paired_summary

SCORE = "score/shapes_alignment/alignment"


def per_method(paths: list[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, float]]:
    """Scores by method (pairs in one order), the pairs' prompt ids and each method's evaluations per image.

    Several files are read as one set of pairs. A (prompt, seed) pair in two of them (scene ranges draw the same
    seeds, so a prompt that recurs at the same offset in two ranges is the same pair) counts once when its scores
    agree, the same deterministic image; differing scores are refused. A method that lacks some of the pairs (one
    that only some of the files evaluated) is left out, and named on stderr.
    """
    rows = [row for path in paths for row in pq.read_table(path).to_pylist()]
    by_method: dict[str, dict[tuple, dict]] = {}
    for row in rows:
        pairs = by_method.setdefault(row["method"], {})
        key = (row["prompt"], row["seed"])
        if key in pairs and pairs[key][SCORE] != row[SCORE]:
            raise SystemExit(f"pair {key} of method {row['method']!r} has two different scores in {', '.join(paths)}")
        pairs[key] = row
    keys = sorted(set.union(*(set(pairs) for pairs in by_method.values())))
    partial = sorted(m for m, pairs in by_method.items() if len(pairs) < len(keys))
    if partial:  # e.g. a refiner that only one of the pooled evaluations ran
        print(f"left out, not evaluated on every pair: {', '.join(partial)}", file=sys.stderr)
    by_method = {m: pairs for m, pairs in by_method.items() if m not in partial}
    prompts = {prompt: i for i, prompt in enumerate(sorted({p for p, _ in keys}))}
    scores = {m: torch.tensor([by_method[m][k][SCORE] for k in keys]) for m in by_method}
    evaluations = {m: next(iter(r.values())).get("cost/evaluations", float("nan")) for m, r in by_method.items()}
    return scores, torch.tensor([prompts[p] for p, _ in keys]), evaluations


def main() -> None:
    """Print the share and its CI per evaluation."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("samples", nargs="+", help="samples.parquet of an evaluation")
    parser.add_argument("--best", action="store_true", help="print only the refiner with the highest mean")
    parser.add_argument("--pool", action="store_true", help="one estimate over all the files' pairs")
    parser.add_argument("--reference", default="noiserefine", help="the refiner the others are paired against")
    args = parser.parse_args()
    for paths in [args.samples] if args.pool else [[path] for path in args.samples]:
        label = " + ".join(paths)
        scores, groups, evaluations = per_method(paths)
        refiners = [m for m in scores if m not in ("gaussian", "cfg3")]
        means = {m: s.double().mean().item() for m, s in scores.items()}
        if args.best:
            print(max(refiners, key=means.__getitem__))
            continue
        shares = {m: gain_share(scores["gaussian"], scores["cfg3"], scores[m], groups) for m in refiners}
        report = {"samples": label, "means": means, "evaluations_per_image": evaluations}
        if refiners == ["noiserefine"]:
            report.update(shares["noiserefine"])
        else:
            if args.reference not in refiners:
                parser.error(f"{label} has no refiner named {args.reference!r} (it has {', '.join(refiners)})")
            report["shares"] = shares
            report[f"vs_{args.reference}"] = {m: paired_summary(scores[args.reference], scores[m], groups)
                                               for m in refiners if m != args.reference}
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
