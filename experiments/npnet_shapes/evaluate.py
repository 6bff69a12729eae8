"""Does a trained NPNet improve prompt alignment on the embedded ``shapes`` backbone (issue 6, "Effect")?

For each prompt p of a split and seed s, the image from ``noise_for_seeds([s])`` (Gaussian), the image from NPNet's
noise of the same noise and prompt, and (``--teacher``) the image from the re-denoise golden noise NPNet imitates are
sampled through the diffusers DDIM pipeline with the same settings, at every ``--guidance``; all are scored with the
exact shapes alignment. Per guidance, the paired differences (method − Gaussian) get a bootstrap 95 % CI of their mean.

    HF_HUB_OFFLINE=1 python experiments/npnet_shapes/evaluate.py --checkpoint shapes --split test \
        --first-prompt 1000 --prompts 512 --seeds 4 --guidance 1 3 5.5 --teacher --out results/report_test.json

Writes ``--out`` (JSON) and prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from goldennoise.backbones import Backbone, generate, load_backbone
from goldennoise.metrics import paired_summary
from goldennoise.noise import PRESETS, NPNetPlugin, load_npnet
from goldennoise.sampling import noise_for_seeds, redenoise_step
from goldennoise.shapes.alignment import alignment_scores
from goldennoise.shapes.grammar import to_prompt
from goldennoise.shapes.splits import sample_scene

HERE = Path(__file__).resolve().parent


def alignment(backbone: Backbone, prompts: list[str], noise: torch.Tensor, steps: int, guidance: float) -> torch.Tensor:
    """Per-image exact alignment (B,) of DDIM samples started from ``noise`` (B, C, h, w)."""
    pipeline = backbone.pipeline("ddim")
    pipeline.set_progress_bar_config(disable=True)
    images = generate(pipeline, prompts, noise, num_inference_steps=steps, guidance_scale=guidance)
    return alignment_scores(images.float().cpu(), prompts)["alignment"].float()  # (B,)


def teacher_noise(backbone: Backbone, prompts: list[str], noise: torch.Tensor,
                  args: argparse.Namespace) -> torch.Tensor:
    """The re-denoise golden noise of ``noise`` (B, C, h, w): the NPD's target, which NPNet learns to predict."""
    cond, uncond = backbone.encode_prompt(prompts)
    return redenoise_step(backbone.denoiser(cond, uncond, args.teacher_guidance),
                          backbone.denoiser(cond, uncond, 1.0), noise, backbone.ddim_schedule(args.steps),
                          args.teacher_convention)


def noises(backbone: Backbone, plugin: NPNetPlugin, prompts: list[str], seeds: list[int],
           args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """The starting noises (B, C, h, w) of one batch by source: ``gaussian``, ``npnet`` and maybe ``teacher``."""
    gaussian = noise_for_seeds(seeds, backbone.latent_shape(), device=args.device)
    with torch.no_grad():
        out = {"gaussian": gaussian, "npnet": plugin.for_pipeline(backbone, prompts, gaussian)}
        if args.teacher:
            out["teacher"] = teacher_noise(backbone, prompts, gaussian, args)
    return out


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True,
                        help="NPNet weights: Lightning .ckpt, .pth, .safetensors, or 'shapes' (the shipped network)")
    parser.add_argument("--split", default="test", help="shapes split: test (unseen scenes) or heldout (unseen pairs)")
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--first-prompt", type=int, default=0,
                        help="scene index of the first prompt: keep model selection and the report on disjoint sets")
    parser.add_argument("--seeds", type=int, default=4, help="noise seeds per prompt (offset by --seed-offset)")
    parser.add_argument("--seed-offset", type=int, default=1_000_000, help="keeps seeds away from the NPD's")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0, 5.5])
    parser.add_argument("--teacher", action="store_true", help="also score the re-denoise golden noise itself")
    parser.add_argument("--teacher-guidance", type=float, default=5.5, help="ω_l of the teacher's re-denoise step")
    parser.add_argument("--teacher-convention", default="official", choices=["official", "textbook"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    return parser.parse_args()


def main() -> None:
    """Sample every noise source per (prompt, seed) and guidance; print and write the paired comparisons."""
    args = parse_args()
    backbone = load_backbone("shapes").to(args.device)
    plugin = NPNetPlugin(load_npnet(args.checkpoint, config=PRESETS["shapes"]).to(args.device))
    pairs = [(to_prompt(sample_scene(i, args.split).spec), args.seed_offset + i * args.seeds + k)
             for i in range(args.first_prompt, args.first_prompt + args.prompts) for k in range(args.seeds)]
    scores: dict[tuple[float, str], list[torch.Tensor]] = {}
    for start in range(0, len(pairs), args.batch):
        prompts, seeds = map(list, zip(*pairs[start:start + args.batch], strict=True))
        for source, noise in noises(backbone, plugin, prompts, seeds, args).items():
            for guidance in args.guidance:
                scores.setdefault((guidance, source), []).append(
                    alignment(backbone, prompts, noise, args.steps, guidance))
    result = {"split": args.split, "prompts": [args.first_prompt, args.first_prompt + args.prompts],
              "pairs": len(pairs), "steps": args.steps, "checkpoint": str(args.checkpoint),
              "teacher": {"guidance": args.teacher_guidance, "convention": args.teacher_convention} if args.teacher
              else None, "by_guidance": {}}
    for guidance in args.guidance:
        gaussian = torch.cat(scores[guidance, "gaussian"])
        result["by_guidance"][str(guidance)] = {
            source: paired_summary(gaussian, torch.cat(scores[guidance, source]))
            for source in ("npnet", "teacher") if (guidance, source) in scores}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
