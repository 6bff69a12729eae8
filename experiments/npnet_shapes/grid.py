"""An image grid of the report set without guidance: Gaussian vs the shipped NPNet's noise, same prompt and seed.

Usage::

    HF_HUB_OFFLINE=1 python experiments/npnet_shapes/grid.py --rows 8 --out experiments/npnet_shapes/grid.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from goldennoise.backbones import generate, load_backbone
from goldennoise.lit.npnet import comparison_figure
from goldennoise.noise import NPNetPlugin, load_npnet
from goldennoise.sampling import noise_for_seeds
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

    backbone = load_backbone("shapes")
    scenes = range(args.first_prompt, args.first_prompt + args.rows)
    prompts = [to_prompt(sample_scene(i, "test").spec) for i in scenes]
    noise = noise_for_seeds([1_000_000 + 4 * i for i in scenes], backbone.latent_shape())  # each prompt's first seed
    golden = NPNetPlugin(load_npnet("shapes")).for_pipeline(backbone, prompts, noise)
    pipeline = backbone.pipeline("ddim")
    pipeline.set_progress_bar_config(disable=True)
    images = [generate(pipeline, prompts, x, num_inference_steps=args.steps, guidance_scale=args.guidance)
              for x in (noise, golden)]
    comparison_figure(prompts, *images).savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
