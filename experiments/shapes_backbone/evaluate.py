"""Evaluate the embedded ``shapes`` backbone: CFG sweep, oracle best-of-N seeds, held-out combinations, speed, grid.

Every image of prompt ``p`` and seed ``s`` starts from ``noise_for_seeds([s])`` and is sampled with deterministic DDIM
(``goldennoise.sampling.sample_ddim``); alignment is the exact rule-based :func:`shapes_alignment`. Guidance scale 1
is "no guidance" (the conditional branch alone).

    HF_HUB_OFFLINE=1 python experiments/shapes_backbone/evaluate.py --prompts 512 --seeds 8 --scales 1 3 5 7.5

Writes ``results.json`` (every number), ``results.md`` (the table) and ``grid.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from goldennoise.backbones import load_backbone
from goldennoise.backbones.base import Backbone
from goldennoise.metrics.shapes_alignment import shapes_alignment
from goldennoise.sampling import noise_for_seeds, sample_ddim
from goldennoise.shapes.grammar import to_prompt
from goldennoise.shapes.splits import sample_scene

HERE = Path(__file__).resolve().parent


@dataclass
class SettingResult:
    """Alignment of one split at one guidance scale over ``prompts`` × ``seeds`` images."""

    split: str
    guidance_scale: float
    prompts: int
    seeds: int
    alignment: float
    all_correct: float
    oracle_best_of_seeds: float
    oracle_gain: float
    seconds: float


def split_prompts(split: str = "test", count: int = 512, first_seed: int = 0) -> list[str]:
    """The prompts of scenes ``first_seed`` … ``first_seed + count - 1`` of ``split``."""
    return [to_prompt(sample_scene(seed, split).spec) for seed in range(first_seed, first_seed + count)]


@torch.inference_mode()
def generate(backbone: Backbone, prompts: list[str], seeds: list[int], guidance_scale: float = 5.0,
             steps: int = 20) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1], sample ``i`` from ``prompts[i]`` and the noise of ``seeds[i]``."""
    cond, uncond = backbone.encode_prompt(prompts)
    noise = noise_for_seeds(seeds, backbone.latent_shape())  # (B, 4, 8, 8)
    latents = sample_ddim(backbone.denoiser(cond, uncond, guidance_scale), noise, backbone.ddim_schedule(steps))
    return backbone.decode(latents)


def score_grid(backbone: Backbone, prompts: list[str], num_seeds: int = 8, guidance_scale: float = 5.0,
               steps: int = 20, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image alignment and all-correct, each (P, S), for every prompt × seed ``0 … num_seeds - 1``."""
    pairs = [(p, s) for p in prompts for s in range(num_seeds)]
    alignment, correct = [], []
    for start in range(0, len(pairs), batch_size):
        batch_prompts, batch_seeds = zip(*pairs[start:start + batch_size], strict=True)
        images = generate(backbone, list(batch_prompts), list(batch_seeds), guidance_scale, steps)
        scores = shapes_alignment(images, list(batch_prompts), reduction="none")
        alignment.append(scores["alignment"])
        correct.append(scores["all_correct"].float())
    shape = (len(prompts), num_seeds)
    return torch.cat(alignment).view(shape), torch.cat(correct).view(shape)


def evaluate_setting(backbone: Backbone, split: str, prompts: list[str], num_seeds: int = 8,
                     guidance_scale: float = 5.0, steps: int = 20, batch_size: int = 64,
                     scores_dir: Path | None = None) -> SettingResult:
    """Mean alignment, all-correct rate and the per-prompt oracle best over seeds at one guidance scale.

    The per-image alignment (P, S) is saved to ``scores_dir/scores_<split>_<scale>.pt`` unless it is ``None``.
    """
    start = time.perf_counter()
    alignment, correct = score_grid(backbone, prompts, num_seeds, guidance_scale, steps, batch_size)
    if scores_dir is not None:
        torch.save({"prompts": prompts, "alignment": alignment, "all_correct": correct},
                   scores_dir / f"scores_{split}_{guidance_scale:g}.pt")
    oracle = alignment.max(dim=1).values.mean().item()
    mean = alignment.mean().item()
    return SettingResult(split, guidance_scale, len(prompts), num_seeds, mean, correct.mean().item(), oracle,
                         oracle - mean, time.perf_counter() - start)


def time_generation(backbone: Backbone, num_images: int = 64, steps: int = 20, guidance_scale: float = 5.0,
                    repeats: int = 2) -> float:
    """Best wall time in seconds of ``num_images`` images at ``steps`` DDIM steps with CFG (one batch)."""
    prompts = split_prompts("test", num_images)
    generate(backbone, prompts[:2], [0, 1], guidance_scale, 2)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate(backbone, prompts, list(range(num_images)), guidance_scale, steps)
        times.append(time.perf_counter() - start)
    return min(times)


def save_grid(backbone: Backbone, prompts: list[str], path: Path, num_seeds: int = 6, guidance_scale: float = 5.0,
              steps: int = 20, zoom: int = 2) -> None:
    """A PNG with one row per prompt: the prompt, then ``num_seeds`` images, each captioned with its alignment."""
    cell, text_width, caption = 32 * zoom, 250, 12
    canvas = Image.new("RGB", (text_width + num_seeds * (cell + 4), len(prompts) * (cell + caption + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, prompt in enumerate(prompts):
        images = generate(backbone, [prompt] * num_seeds, list(range(num_seeds)), guidance_scale, steps)
        scores = shapes_alignment(images, [prompt] * num_seeds, reduction="none")["alignment"]
        top = row * (cell + caption + 4)
        draw.text((4, top + cell // 2 - 6), prompt, fill="black")
        for col, (image, score) in enumerate(zip(images, scores.tolist(), strict=True)):
            pixels = (image.permute(1, 2, 0) * 255).round().byte().numpy()
            tile = Image.fromarray(pixels).resize((cell, cell), Image.NEAREST)
            left = text_width + col * (cell + 4)
            canvas.paste(tile, (left, top))
            draw.text((left + 2, top + cell), f"{score:.2f}", fill="black")
    canvas.save(path, optimize=True)


def markdown_table(results: list[SettingResult]) -> str:
    """The results as a Markdown table."""
    lines = ["| split | guidance | prompts × seeds | mean alignment | all correct | oracle best of seeds | "
             "oracle − mean | time (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        scale = "none (w = 1)" if r.guidance_scale == 1.0 else f"CFG {r.guidance_scale:g}"
        lines.append(f"| {r.split} | {scale} | {r.prompts} × {r.seeds} | {r.alignment:.3f} | {r.all_correct:.3f} | "
                     f"{r.oracle_best_of_seeds:.3f} | {r.oracle_gain:+.3f} | {r.seconds:.0f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="shapes", help="backbone name or model folder")
    parser.add_argument("--prompts", type=int, default=512, help="test prompts per guidance scale")
    parser.add_argument("--heldout-prompts", type=int, default=256, help="held-out-combination prompts")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per prompt (the oracle picks the best)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0, 5.0, 7.5], help="guidance scales")
    parser.add_argument("--heldout-scales", type=float, nargs="*", default=None,
                        help="guidance scales on the held-out split (default: 1 and the best test scale)")
    parser.add_argument("--best-scale", type=float, default=None,
                        help="guidance scale of the grid, speed test and held-out default (default: best test scale)")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps")
    parser.add_argument("--batch-size", type=int, default=64, help="images per sampler batch")
    parser.add_argument("--speed-images", type=int, default=64, help="images in the speed test (0 skips it)")
    parser.add_argument("--grid-prompts", type=int, default=12, help="rows of the PNG grid (0 skips it)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Evaluate, write ``results.json`` / ``results.md`` / ``grid.png`` to ``args.out`` and return the results."""
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    backbone = load_backbone(args.backbone)
    results = []
    test = split_prompts("test", args.prompts)
    for scale in args.scales:
        results.append(evaluate_setting(backbone, "test", test, args.seeds, scale, args.steps, args.batch_size,
                                        args.out))
        print(results[-1], flush=True)
    best_scale = args.best_scale or max((r for r in results if r.guidance_scale != 1.0), key=lambda r: r.alignment,
                                        default=results[-1]).guidance_scale
    heldout = split_prompts("heldout", args.heldout_prompts)
    heldout_scales = args.heldout_scales if args.heldout_scales is not None else sorted({1.0, best_scale})
    for scale in heldout_scales if args.heldout_prompts else []:
        results.append(evaluate_setting(backbone, "heldout", heldout, args.seeds, scale, args.steps, args.batch_size,
                                        args.out))
        print(results[-1], flush=True)
    seconds = time_generation(backbone, args.speed_images, 20, best_scale) if args.speed_images else None
    print(f"{args.speed_images} images x 20 DDIM steps with CFG: {seconds} s", flush=True)
    if args.grid_prompts:
        save_grid(backbone, test[:args.grid_prompts], args.out / "grid.png", guidance_scale=best_scale,
                  steps=args.steps)
    summary = {"settings": [asdict(r) for r in results], "best_test_scale": best_scale,
               "speed_images": args.speed_images, "speed_20_steps_cfg_seconds": seconds, "steps": args.steps,
               "threads": args.threads}
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    speed = "" if seconds is None else (f"{args.speed_images} images × 20 DDIM steps with CFG "
                                        f"{best_scale:g}: {seconds:.1f} s")
    (args.out / "results.md").write_text(f"{markdown_table(results)}\n\n{speed} ({args.threads} threads)\n")
    return summary


if __name__ == "__main__":
    run(parse_args())
