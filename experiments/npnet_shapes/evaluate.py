"""Does a trained NPNet improve prompt alignment on the embedded ``shapes`` backbone (issue 6, "Effect")?

For each held-out prompt p and seed s, the image from ``noise_for_seeds([s])`` (Gaussian) and the image from NPNet's
golden noise of the same noise and prompt are sampled with the same DDIM settings; both are scored with the exact
shapes alignment. The paired differences (NPNet − Gaussian) get a percentile bootstrap 95 % CI of their mean.

    HF_HUB_OFFLINE=1 python experiments/npnet_shapes/evaluate.py --checkpoint runs/npnet_shapes/checkpoints/last.ckpt \
        --split test --prompts 256 --seeds 4

Writes ``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from goldennoise.backbones import generate, load_backbone
from goldennoise.noise import PRESETS, load_npnet
from goldennoise.sampling import noise_for_seeds
from goldennoise.shapes.alignment import alignment_scores
from goldennoise.shapes.grammar import to_prompt
from goldennoise.shapes.splits import sample_scene

HERE = Path(__file__).resolve().parent


def paired_bootstrap_ci(diffs: torch.Tensor, resamples: int = 10_000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of ``diffs.mean()`` (pairs resampled together, so the pairing is kept)."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(diffs), (resamples, len(diffs)), generator=gen)
    means = diffs.double()[idx].mean(dim=1)
    tail = (1 - level) / 2
    return means.quantile(tail).item(), means.quantile(1 - tail).item()


def alignment(backbone, prompts: list[str], noise: torch.Tensor, steps: int, guidance: float) -> torch.Tensor:
    """Per-image exact alignment (B,) of DDIM samples started from ``noise`` (B, C, h, w)."""
    pipeline = backbone.pipeline("ddim")
    pipeline.set_progress_bar_config(disable=True)
    images = generate(pipeline, prompts, noise, num_inference_steps=steps, guidance_scale=guidance)
    return alignment_scores(images.float().cpu(), prompts)["alignment"].float()  # (B,)


def main() -> None:
    """Parse the arguments, sample both noises per (prompt, seed), print and write the paired comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="NPNet weights: Lightning .ckpt, .pth or .safetensors")
    parser.add_argument("--split", default="test")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=4, help="noise seeds per prompt (offset by --seed-offset)")
    parser.add_argument("--seed-offset", type=int, default=1_000_000, help="keeps seeds away from the NPD's")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--guidance", type=float, default=5.5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone = load_backbone("shapes").to(device)
    net = load_npnet(args.checkpoint, config=PRESETS["shapes"]).to(device)
    pairs = [(to_prompt(sample_scene(i, args.split).spec), args.seed_offset + i * args.seeds + k)
             for i in range(args.prompts) for k in range(args.seeds)]
    gaussian, golden = [], []
    for start in range(0, len(pairs), args.batch):
        prompts, seeds = map(list, zip(*pairs[start:start + args.batch], strict=True))
        noise = noise_for_seeds(seeds, backbone.latent_shape(), device=device)
        with torch.no_grad():
            embeds = backbone.encode_prompt(prompts)[0].embeds.float()
            better = net(noise, embeds)
        gaussian.append(alignment(backbone, prompts, noise, args.steps, args.guidance))
        golden.append(alignment(backbone, prompts, better, args.steps, args.guidance))
    gaussian, golden = torch.cat(gaussian), torch.cat(golden)
    low, high = paired_bootstrap_ci(golden - gaussian)
    result = {"split": args.split, "pairs": len(pairs), "steps": args.steps, "guidance": args.guidance,
              "gaussian": gaussian.mean().item(), "npnet": golden.mean().item(),
              "delta": (golden - gaussian).mean().item(), "delta_ci95": [low, high],
              "checkpoint": str(args.checkpoint)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
