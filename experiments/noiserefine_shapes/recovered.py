"""Share of CFG's alignment gain that refined noise reaches without guidance, with a bootstrap CI by prompt.

Reads an evaluation's ``samples.parquet`` (methods ``gaussian``, ``cfg3``, ``noiserefine`` on the same pairs) and
prints ``(refined − gaussian) / (cfg − gaussian)`` of the mean exact alignment, and each method's evaluations per
image. Usage: ``python experiments/noiserefine_shapes/recovered.py <samples.parquet> [<samples.parquet> ...]``.
"""

import argparse
import json

import pyarrow.parquet as pq
import torch

from goldennoise.metrics import gain_share

SCORE = "score/shapes_alignment/alignment"


def per_method(path: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, float]]:
    """Scores by method (pairs in one order), the pairs' prompt ids and each method's evaluations per image."""
    rows = pq.read_table(path).to_pylist()
    by_method: dict[str, dict[tuple, dict]] = {}
    for row in rows:
        by_method.setdefault(row["method"], {})[(row["prompt"], row["seed"])] = row
    keys = sorted(by_method["gaussian"])
    prompts = {prompt: i for i, prompt in enumerate(sorted({p for p, _ in keys}))}
    scores = {m: torch.tensor([by_method[m][k][SCORE] for k in keys]) for m in by_method}
    evaluations = {m: next(iter(r.values())).get("cost/evaluations", float("nan")) for m, r in by_method.items()}
    return scores, torch.tensor([prompts[p] for p, _ in keys]), evaluations


def main() -> None:
    """Print the share and its CI per evaluation."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("samples", nargs="+", help="samples.parquet of an evaluation")
    for path in parser.parse_args().samples:
        scores, groups, evaluations = per_method(path)
        share = gain_share(scores["gaussian"], scores["cfg3"], scores["noiserefine"], groups)
        means = {m: s.double().mean().item() for m, s in scores.items()}
        print(json.dumps({"samples": path, "means": means, "evaluations_per_image": evaluations, **share}, indent=1))


if __name__ == "__main__":
    main()
