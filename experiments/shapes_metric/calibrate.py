"""Fit the reader's shape classifier to renders and the embedded backbone's VAE round-trips of them (train split).

    HF_HUB_OFFLINE=1 python experiments/shapes_metric/calibrate.py \
        --out goldennoise/shapes/classifiers/shapes-vae.safetensors --overwrite-shipped

Fits on scenes 0…N-1 of ``--split`` (renders, each under one corruption in turn, and their VAE round-trips) and
prints the shape accuracy on the objects of ``--check`` scenes of the validation split, per form; the honest
numbers (other splits, per fact) come from ``benchmarks/shapes_metric_accuracy.py``. ``--hidden 0`` fits the
linear model the README compares with.
"""

import argparse
import time
from pathlib import Path

import torch

from goldennoise.backbones import load_backbone
from goldennoise.shapes.calibration import CLASSES, FORMS, calibration_data
from goldennoise.shapes.shape_classifier import fit_shape_classifier, save_shape_classifier
from goldennoise.shapes.splits import sample_scenes
from goldennoise.shapes.world import SHAPES
from goldennoise.shipped import export_target


def labelled_data(backbone, split: str, first: int, count: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`calibration_data` of scenes first…first+count-1 of a split, made ``chunk`` scenes at a time."""
    parts = [calibration_data(sample_scenes(range(start, min(start + chunk, first + count)), split), backbone,
                              seed=start) for start in range(first, first + count, chunk)]
    return torch.cat([p for p, _ in parts]), torch.cat([label for _, label in parts])


def main() -> None:
    """Fit, check on the validation split and write the classifier."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="shapes", help="backbone whose VAE draws the decoded objects")
    parser.add_argument("--split", default="train", help="split of the fitting scenes")
    parser.add_argument("--scenes", type=int, default=12_000, help="scenes 0…N-1 of the split")
    parser.add_argument("--check", type=int, default=2_000, help="validation scenes to check the fit on")
    parser.add_argument("--chunk", type=int, default=1_000, help="scenes rendered at a time")
    parser.add_argument("--hidden", type=int, default=16, help="hidden units (0: linear)")
    parser.add_argument("--pool", type=int, default=2, help="block side of the pooled patch input")
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--steps", type=int, default=500, help="L-BFGS iterations")
    parser.add_argument("--out", type=Path, default=None, help="the .safetensors file to write (none: only check)")
    parser.add_argument("--overwrite-shipped", action="store_true", help="allow --out inside the package")
    args = parser.parse_args()
    out = None if args.out is None else export_target(args.out, "--out", args.overwrite_shipped)
    torch.set_num_threads(1)
    start = time.perf_counter()
    backbone = load_backbone(args.backbone)
    patches, labels = labelled_data(backbone, args.split, 0, args.scenes, args.chunk)
    print(f"{len(patches)} patches from {args.scenes} {args.split} scenes ({time.perf_counter() - start:.0f} s)")
    description = (f"experiments/shapes_metric/calibrate.py: backbone {args.backbone}, {args.split} scenes "
                   f"0-{args.scenes - 1} (renders, each under one corruption in turn, and VAE round-trips), "
                   f"pool {args.pool}, hidden {args.hidden}, weight decay {args.weight_decay:g}, "
                   f"{args.steps} L-BFGS steps")
    classifier = fit_shape_classifier(patches, labels, CLASSES, pool=args.pool, hidden=args.hidden,
                                      weight_decay=args.weight_decay, steps=args.steps, description=description)
    check, check_labels = labelled_data(backbone, "validation", 0, args.check, args.chunk)
    shape_of = torch.tensor([SHAPES.index(shape) for shape, _ in CLASSES])
    with torch.no_grad():
        read = shape_of[classifier(check).argmax(dim=1)]
    params = sum(p.numel() for p in classifier.parameters())
    for form in FORMS:
        chosen = torch.tensor([CLASSES[c][1] == form for c in check_labels.tolist()])
        accuracy = (read[chosen] == shape_of[check_labels[chosen]]).float().mean()
        print(f"validation {form}: shape accuracy {accuracy:.4f} on {int(chosen.sum())} objects "
              f"(hidden {args.hidden}, {params} parameters)")
    print(f"{time.perf_counter() - start:.0f} s")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_shape_classifier(classifier, out)
        print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
