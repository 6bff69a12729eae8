"""What inversion-stability optimisation (arXiv 2407.14041, docs/stability.md) costs in memory and time.

1. Peak memory of one ``full``-mode optimisation step (gradient through all 2T denoiser calls, each checkpointed) at
   T = 50 ÷ at T = 5, same batch: per-call checkpointing keeps only the 2T + 2 latents, so the ratio should stay near
   1 (target ≤ 1.5). Each T runs in a fresh process; the peak is the CUDA peak on a GPU, else the process's resident
   peak minus its resident size just before the step (model loaded, one warm-up step at T = 1 done).
2. Seconds per ``full``-mode optimisation step ÷ seconds of one plain (no-grad) sampling at the same T and batch:
   about 2 (the round trip) × 2–3 (backward and recompute).

    python benchmarks/stability_memory.py [--backbone shapes] [--batch 16] [--image-size 64] [--device cpu]
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from goldennoise.backbones import load_backbone  # noqa: E402
from goldennoise.backbones.cost import process_peak_memory  # noqa: E402
from goldennoise.noise import NoiseContext, SamplerSettings, StabilityOptimization  # noqa: E402
from goldennoise.sampling import noise_for_seeds, sample_ddim  # noqa: E402


def one_step(args: argparse.Namespace, steps: int) -> dict[str, float]:
    """Peak memory (bytes above the start) of three full-mode steps, seconds per step (3 steps − 1 step, halved) and
    seconds of one plain sampling."""
    device = torch.device(args.device)
    backbone = load_backbone(args.backbone, device=device)
    prompts = [f"a red circle at the top left {i}" for i in range(args.batch)]
    seeds = list(range(args.batch))

    def context(t: int) -> NoiseContext:
        return NoiseContext.build(backbone, prompts, seeds, SamplerSettings(steps=t, image_size=args.image_size))

    noise = noise_for_seeds(seeds, context(1).latent_shape(), device=device)
    StabilityOptimization(steps=1, gradient_mode="full")(noise, context(1))  # warm-up
    ctx = context(steps)
    start = time.perf_counter()
    StabilityOptimization(steps=1, gradient_mode="full")(noise, ctx)  # one SGD step + the last iterate's score
    one = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start_memory = torch.cuda.memory_allocated(device)
    else:
        start_memory = process_peak_memory()
    start = time.perf_counter()
    StabilityOptimization(steps=3, gradient_mode="full")(noise, ctx)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - start_memory
    else:
        peak = process_peak_memory() - start_memory
    step_seconds = (time.perf_counter() - start - one) / 2  # two more SGD steps, the same scoring
    with torch.no_grad():
        start = time.perf_counter()
        sample_ddim(backbone.denoiser(ctx.cond), noise, backbone.ddim_schedule(steps))
        sample_seconds = time.perf_counter() - start
    return {"peak_bytes": peak, "step_seconds": step_seconds, "sample_seconds": sample_seconds}


def in_subprocess(args: argparse.Namespace, steps: int) -> dict[str, float]:
    """:func:`one_step` in a fresh interpreter (a process's resident peak never goes down)."""
    cmd = [sys.executable, __file__, "--child", str(steps), "--backbone", args.backbone, "--batch", str(args.batch),
           "--device", args.device] + ([] if args.image_size is None else ["--image-size", str(args.image_size)])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="shapes")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(one_step(args, args.child)))
        return
    short, long = in_subprocess(args, 5), in_subprocess(args, 50)
    print(f"backbone {args.backbone}, batch {args.batch}, image {args.image_size} px, {args.device}")
    for name, run in (("T=5", short), ("T=50", long)):
        print(f"{name}: peak +{run['peak_bytes'] / 2**20:.1f} MiB, {run['step_seconds']:.2f} s per optimisation step "
              f"(forward with grad + backward), {run['sample_seconds']:.2f} s per plain "
              f"sampling; step / sampling = {run['step_seconds'] / run['sample_seconds']:.2f}")
    ratio = long["peak_bytes"] / max(short["peak_bytes"], 1)
    print(f"peak memory T=50 / T=5 = {ratio:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
