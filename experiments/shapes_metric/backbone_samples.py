"""Old (template) vs calibrated reader on the same backbone samples: how much the calibration moves the metric.

    HF_HUB_OFFLINE=1 python experiments/shapes_metric/backbone_samples.py --prompts 256 --seeds 2 --scales 1 3

Samples prompts 0…P-1 of the split, S seeds each (prompt p's k-th seed is p·S + k, as ``distinct_seeds`` in
``configs/eval/shapes.yaml``), with deterministic DDIM from Gaussian noise (``noise_for_seeds``) at each guidance
scale (1 = no guidance), reads every image with both readers and prints, per scale, the mean of each metric key
under each reader and the mean paired difference with a 95 % bootstrap interval resampled by prompt.
"""

import argparse
import time

import torch

from goldennoise.backbones import load_backbone
from goldennoise.metrics.paired import paired_bootstrap_ci
from goldennoise.metrics.shapes_alignment import shapes_alignment
from goldennoise.sampling import noise_for_seeds, sample_ddim
from goldennoise.shapes.alignment import summarize
from goldennoise.shapes.grammar import to_prompt
from goldennoise.shapes.reader import ReaderSettings
from goldennoise.shapes.splits import sample_scene

READERS = {"templates": ReaderSettings(shape_classifier=None), "calibrated": ReaderSettings()}
KEYS = ("alignment", "all_correct", "shape", "color", "position", "relation", "count")


@torch.inference_mode()
def sample(backbone, prompts: list[str], seeds: list[int], guidance_scale: float, steps: int) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] of ``prompts[i]`` from the noise of ``seeds[i]``."""
    cond, uncond = backbone.encode_prompt(prompts)
    noise = noise_for_seeds(seeds, backbone.latent_shape())
    latents = sample_ddim(backbone.denoiser(cond, uncond, guidance_scale), noise, backbone.ddim_schedule(steps))
    return backbone.decode(latents)


def main() -> None:
    """Sample, read with both readers and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="shapes")
    parser.add_argument("--split", default="test")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0], help="guidance scales (1: none)")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    backbone = load_backbone(args.backbone)
    pairs = [(to_prompt(sample_scene(p, args.split).spec), p * args.seeds + k)
             for p in range(args.prompts) for k in range(args.seeds)]
    print(f"{args.split} prompts 0-{args.prompts - 1} × {args.seeds} seeds each (seed p·S + k: independent pairs), "
          f"{args.steps} DDIM steps")
    print("| guidance | metric | templates reader | calibrated reader | calibrated − templates (95 % CI by prompt) |")
    print("|---|---|---|---|---|")
    for scale in args.scales:
        start = time.perf_counter()
        images = torch.cat([sample(backbone, [p for p, _ in chunk], [s for _, s in chunk], scale, args.steps)
                            for chunk in (pairs[i:i + args.batch_size] for i in range(0, len(pairs),
                                                                                       args.batch_size))])
        prompts = [p for p, _ in pairs]
        per_image = {name: shapes_alignment(images, prompts, settings, reduction="none")
                     for name, settings in READERS.items()}
        scores = {name: summarize(**values) for name, values in per_image.items()}
        guidance = "none" if scale == 1.0 else f"CFG {scale:g}"
        for key in KEYS:
            old, new = float(scores["templates"][key]), float(scores["calibrated"][key])
            interval = ""
            if key == "alignment":
                difference = per_image["calibrated"]["alignment"] - per_image["templates"]["alignment"]
                prompt_ids = torch.arange(args.prompts).repeat_interleave(args.seeds)
                interval = " ({:+.4f}, {:+.4f})".format(*paired_bootstrap_ci(difference, groups=prompt_ids))
            print(f"| {guidance} | {key} | {old:.4f} | {new:.4f} | {new - old:+.4f}{interval} |", flush=True)
        print(f"<!-- {guidance}: {len(pairs)} images, {time.perf_counter() - start:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
