"""An image grid of the report set without guidance: Gaussian vs the shipped NPNet's noise, same prompt and seed.

Usage::

    HF_HUB_OFFLINE=1 python experiments/npnet_shapes/grid.py --rows 8 --out experiments/npnet_shapes/grid.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from goldennoise.backbones import load_backbone
from goldennoise.evaluation.grid import save_image_grid
from goldennoise.evaluation.harness import MethodSpec, evaluate_batch
from goldennoise.noise import Gaussian, NPNetNoise, SamplerSettings
from goldennoise.shapes.grammar import to_prompt
from goldennoise.shapes.splits import sample_scene


def main() -> None:
    """Sample ``--rows`` report-set pairs from both noises and save the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--first-prompt", type=int, default=1000, help="the report set starts at scene 1000")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--guidance", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "grid.png")
    args = parser.parse_args()

    scenes = range(args.first_prompt, args.first_prompt + args.rows)
    items = [(k, to_prompt(sample_scene(i, "test").spec), 1_000_000 + 4 * i)  # each prompt's first seed
             for k, i in enumerate(scenes)]
    methods = [MethodSpec("Gaussian", Gaussian(), args.guidance),
               MethodSpec("NPNet", NPNetNoise("shapes"), args.guidance)]
    _, images = evaluate_batch(load_backbone("shapes"), items, methods, [], SamplerSettings(steps=args.steps))
    save_image_grid(args.out, [f"{prompt} (seed {seed})" for _, prompt, seed in items], images)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
