"""Per-fact-type accuracy of an evaluation's kept images: which prompt facts does each method's noise get right?

Reads an evaluation folder run with ``save_images: all``, re-reads every stored image (uint8) with the exact shapes
reader and prints, per method, the accuracy over the facts of each kind (colour, shape, absolute position, relation
between two objects) and of the object count, then each method's paired difference to ``gaussian`` per kind (mean
over pairs that state the kind, 95 % bootstrap CI resampled by prompt) and, for the refiners, the share of
``cfg3``'s gain per kind. Also how often the re-read alignment equals the stored one (uint8 rounding may flip a
borderline read).

    python experiments/noiserefine_shapes/facts.py <evaluation folder> [<evaluation folder> ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from goldennoise.evaluation.job import read_outputs
from goldennoise.metrics import gain_share
from goldennoise.metrics.paired import paired_summary
from goldennoise.shapes.alignment import FACT_KINDS, alignment_scores

KINDS = (*FACT_KINDS, "count")


def per_pair_facts(folder: Path, batch: int = 512) -> tuple[dict[str, dict[str, torch.Tensor]], torch.Tensor, float]:
    """Re-read facts of every kept image.

    Returns:
        per method ``{"correct", "total"}`` (N, 5) per kind of :data:`KINDS`, pairs in item order; the pairs' prompt
        ids (N,); the share of images whose re-read alignment equals the stored one.
    """
    records, images = read_outputs(folder)
    methods = sorted({r["method"] for r in records}, key=[r["method"] for r in records].index)
    record = {(r["index"], r["method"]): r for r in records}
    out, agree, seen = {}, 0, 0
    for j, method in enumerate(methods):
        rows = (images["image_method"] == j).nonzero().flatten()
        rows = rows[images["image_index"][rows].argsort()]
        indices = images["image_index"][rows].tolist()
        prompts = [record[(i, method)]["prompt"] for i in indices]
        correct, total = [], []
        for start in range(0, len(rows), batch):
            part = images["images"][rows[start:start + batch]].float() / 255  # (b, 3, H, W)
            scores = alignment_scores(part, prompts[start:start + batch])
            correct.append(torch.cat([scores["correct"], scores["count_correct"].long()[:, None]], dim=1))
            total.append(torch.cat([scores["total"], torch.ones_like(scores["count_correct"]).long()[:, None]], 1))
            stored = torch.tensor([record[(i, method)]["scores"]["shapes_alignment/alignment"]
                                   for i in indices[start:start + batch]])
            agree += int(torch.isclose(scores["alignment"].float(), stored.float(), atol=1e-4).sum())
            seen += len(stored)
        out[method] = {"correct": torch.cat(correct), "total": torch.cat(total)}
    first = sorted({r["index"] for r in records})  # every method's pairs are in this item order
    groups = torch.tensor([record[(i, methods[0])]["prompt_id"] for i in first])
    return out, groups, agree / max(seen, 1)


def report(folder: Path) -> dict:
    """Accuracy per kind and method, paired Δ vs ``gaussian`` and share of ``cfg3``'s gain per kind."""
    facts, groups, agreement = per_pair_facts(folder)
    result = {"folder": str(folder), "pairs": len(groups), "reread_agreement": agreement, "accuracy": {},
              "delta_vs_gaussian": {}, "share_of_cfg3_gain": {}}
    for method, f in facts.items():
        result["accuracy"][method] = {k: float(f["correct"][:, i].sum() / f["total"][:, i].sum())
                                      for i, k in enumerate(KINDS)}
    base = facts["gaussian"]
    for i, kind in enumerate(KINDS):
        stated = base["total"][:, i] > 0
        acc = {m: (f["correct"][stated, i] / f["total"][stated, i]).double() for m, f in facts.items()}
        for method in facts:
            if method == "gaussian":
                continue
            summary = paired_summary(acc["gaussian"], acc[method], groups[stated])
            result["delta_vs_gaussian"].setdefault(method, {})[kind] = {
                "delta": summary["delta"], "ci95": summary["delta_ci95"], "pairs": int(stated.sum())}
            if method != "cfg3":
                share = gain_share(acc["gaussian"], acc["cfg3"], acc[method], groups[stated])
                result["share_of_cfg3_gain"].setdefault(method, {})[kind] = {
                    "share": share["share"], "ci95": share["share_ci95"], "cfg3_gain": share["reference_gain"]}
    return result


def main() -> None:
    """Print the report of each folder as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    for folder in parser.parse_args().folders:
        print(json.dumps(report(folder), indent=1))


if __name__ == "__main__":
    main()
