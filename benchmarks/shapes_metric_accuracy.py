"""Accuracy of the shapes alignment metric's reader on renders (clean, corrupted) and on VAE round-trips of them.

    HF_HUB_OFFLINE=1 python benchmarks/shapes_metric_accuracy.py --count 1000 --first 10000 --backbone shapes

Per split, reader and condition: the share of images read exactly (the bars, issue 3: >= 0.98 clean and >= 0.95 per
corruption) and the metric's per-fact accuracy on the true prompts (the bar, issue 11: >= 0.97 per fact on VAE
round-trips); then, per split and reader, the confusion matrix
of shapes on the VAE round-trips (rows: true shape, columns: shape read, "none": color not found) and the shape
accuracy on objects of held-out color-shape pairs apart from the others. ``--backbone``
adds the ``vae_roundtrip`` condition (encode and decode with that backbone's VAE: what generated images look like).
Readers: ``calibrated`` is ``ReaderSettings()`` (the fitted shape classifier decides shapes), ``templates`` is
``ReaderSettings(shape_classifier=None)`` (the weight-free reader every earlier result was measured with).
"""

import argparse
import time

import torch

from goldennoise.backbones import load_backbone
from goldennoise.shapes.accuracy import reader_report
from goldennoise.shapes.augment import CORRUPTIONS, vae_roundtrip
from goldennoise.shapes.reader import ReaderSettings
from goldennoise.shapes.splits import HELD_OUT_PAIRS, sample_scenes
from goldennoise.shapes.world import COLORS, SHAPES

READERS = {"calibrated": ReaderSettings(), "templates": ReaderSettings(shape_classifier=None)}
FACTS = ("color", "shape", "position", "relation", "count", "alignment")


def binding_accuracy(confusion: torch.Tensor) -> dict[str, str]:
    """Shape accuracy over objects of held-out pairs and over the others, from a per-color confusion."""
    held = torch.zeros(len(COLORS), len(SHAPES), dtype=torch.bool)
    for pair in HELD_OUT_PAIRS:
        held[list(COLORS).index(pair.color), SHAPES.index(pair.shape)] = True
    correct, total = confusion.diagonal(dim1=1, dim2=2), confusion.sum(dim=-1)  # (colors, shapes) each
    return {name: f"{int(correct[mask].sum()) / max(int(total[mask].sum()), 1):.4f} of {int(total[mask].sum())}"
            for name, mask in (("held-out pairs", held), ("seen pairs", ~held))}


def confusion_table(confusion: torch.Tensor) -> list[str]:
    """A Markdown table of a (true shape × read shape, plus "none") count matrix."""
    lines = ["| true \\ read | " + " | ".join([*SHAPES, "none"]) + " |", "|---" * (len(SHAPES) + 2) + "|"]
    for shape, row in zip(SHAPES, confusion, strict=True):
        lines.append(f"| {shape} | " + " | ".join(str(int(n)) for n in row) + " |")
    return lines


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="scenes per split")
    parser.add_argument("--first", type=int, default=0, help="first scene seed of each split")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--splits", nargs="+", default=["test", "heldout"])
    parser.add_argument("--readers", nargs="+", default=list(READERS), choices=list(READERS))
    parser.add_argument("--backbone", default=None, help="adds the vae_roundtrip condition with this backbone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    conditions = dict(CORRUPTIONS)
    if args.backbone:
        conditions["vae_roundtrip"] = vae_roundtrip(load_backbone(args.backbone))
    print("| split | reader | condition | exact reads | " + " | ".join(FACTS) + " |")
    print("|---" * (4 + len(FACTS)) + "|")
    confusions = {}
    for split in args.splits:
        scenes = sample_scenes(range(args.first, args.first + args.count), split)
        for reader in args.readers:
            start = time.perf_counter()
            reports = reader_report(scenes, conditions, args.size, settings=READERS[reader])
            for name, report in reports.items():
                cells = " | ".join(f"{report.facts[fact]:.4f}" for fact in FACTS)
                print(f"| {split} | {reader} | {name} | {report.exact:.4f} | {cells} |", flush=True)
            confusions[split, reader] = reports.get("vae_roundtrip")
            print(f"<!-- {split} {reader}: n={args.count} size={args.size} {time.perf_counter() - start:.0f} s -->")
    for (split, reader), report in confusions.items():
        if report is not None:
            print(f"\nShapes on VAE round-trips, {split}, {reader} reader:\n")
            print("\n".join(confusion_table(report.confusion.sum(dim=0))))
            print(f"\nshape accuracy by binding: {binding_accuracy(report.confusion)}")


if __name__ == "__main__":
    main()
