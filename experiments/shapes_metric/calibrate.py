"""Fit the reader's shape classifier to renders and the embedded backbone's VAE round-trips of them (train split).

    HF_HUB_OFFLINE=1 python experiments/shapes_metric/calibrate.py \
        --out goldennoise/shapes/classifiers/shapes-vae.safetensors

Prints the fit's accuracy on its own patches; the honest numbers (other splits, per fact) come from
``benchmarks/shapes_metric_accuracy.py``.
"""

import argparse
import time
from pathlib import Path

import torch

from goldennoise.backbones import load_backbone
from goldennoise.shapes.calibration import CLASSES, calibration_data
from goldennoise.shapes.shape_classifier import fit_shape_classifier, save_shape_classifier
from goldennoise.shapes.splits import sample_scenes


def main() -> None:
    """Fit and write the classifier."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="shapes", help="backbone whose VAE draws the decoded objects")
    parser.add_argument("--split", default="train", help="split of the fitting scenes")
    parser.add_argument("--scenes", type=int, default=16_000, help="scenes 0…N-1 of the split")
    parser.add_argument("--chunk", type=int, default=4_000, help="scenes rendered at a time")
    parser.add_argument("--hidden", type=int, default=32, help="hidden units (0: linear templates)")
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--steps", type=int, default=1000, help="L-BFGS iterations")
    parser.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    backbone = load_backbone(args.backbone)
    parts = [calibration_data(sample_scenes(range(first, min(first + args.chunk, args.scenes)), args.split),
                              backbone, seed=first) for first in range(0, args.scenes, args.chunk)]
    patches, labels = torch.cat([p for p, _ in parts]), torch.cat([label for _, label in parts])
    print(f"{len(patches)} patches from {args.scenes} {args.split} scenes ({time.perf_counter() - start:.0f} s)")
    description = (f"experiments/shapes_metric/calibrate.py: backbone {args.backbone}, {args.split} scenes "
                   f"0-{args.scenes - 1} (renders, each under one corruption in turn, and VAE round-trips), "
                   f"hidden {args.hidden}, weight decay {args.weight_decay:g}, {args.steps} L-BFGS steps")
    classifier = fit_shape_classifier(patches, labels, CLASSES, hidden=args.hidden, weight_decay=args.weight_decay,
                                      steps=args.steps, description=description)
    with torch.no_grad():
        fitted = classifier(patches).argmax(dim=1).eq(labels).float().mean()
    print(f"fit accuracy over (shape, form) classes: {fitted:.4f} ({time.perf_counter() - start:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_shape_classifier(classifier, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
