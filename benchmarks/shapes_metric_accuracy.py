"""Exact-read accuracy of the shapes alignment metric on held-out renders, clean and corrupted.

    python benchmarks/shapes_metric_accuracy.py --count 2000 --size 32

Prints one line per split and condition; the bar (issue 3) is >= 0.98 clean and >= 0.95 per corruption.
"""

import argparse
import time

import torch

from goldennoise.shapes.accuracy import reader_accuracy
from goldennoise.shapes.splits import sample_scenes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="scenes per split")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--splits", nargs="+", default=["test", "heldout"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for split in args.splits:
        start = time.perf_counter()
        accuracy = reader_accuracy(sample_scenes(range(args.count), split), args.size)
        seconds = time.perf_counter() - start
        cells = "  ".join(f"{name} {value:.4f}" for name, value in accuracy.items())
        print(f"{split:8s} n={args.count} size={args.size}  {cells}  ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
