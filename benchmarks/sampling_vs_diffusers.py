"""Time goldennoise's DDIM loop against diffusers' pipeline doing the same work on the tiny SDXL.

Both encode the prompts, run N DDIM steps with classifier-free guidance from the same latents and decode to
images. Runs alternate so that load on a shared machine hits both alike; the medians' ratios are printed, of
process CPU time (robust to other processes on a shared machine) and of wall-clock time.

    python benchmarks/sampling_vs_diffusers.py [--steps 20] [--batch 4] [--repeats 7]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from goldennoise.backbones import load_backbone  # noqa: E402
from goldennoise.sampling import noise_for_seeds, sample_ddim  # noqa: E402


def ours(backbone, prompts, noise, steps, guidance):
    cond, uncond = backbone.encode_prompt(prompts)
    latents = sample_ddim(backbone.denoiser(cond, uncond, guidance), noise, backbone.ddim_schedule(steps))
    return backbone.decode(latents)


def theirs(pipe, prompts, noise, steps, guidance):
    return pipe(prompt=prompts, latents=noise, num_inference_steps=steps, guidance_scale=guidance,
                output_type="pt").images


def timed(fn, *args):
    """``((cpu seconds, wall seconds), output)`` of one call without autograd."""
    cpu, wall = time.process_time(), time.perf_counter()
    with torch.no_grad():
        out = fn(*args)
    return (time.process_time() - cpu, time.perf_counter() - wall), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny-sdxl")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    backbone = load_backbone(args.backbone)
    pipe = backbone.pipeline("ddim")
    pipe.set_progress_bar_config(disable=True)
    prompts = [f"a photo of object number {i}" for i in range(args.batch)]
    noise = noise_for_seeds(range(args.batch), backbone.latent_shape())
    work = (prompts, noise, args.steps, args.guidance)

    timed(ours, backbone, *work), timed(theirs, pipe, *work)  # warm-up
    ours_s, theirs_s = [], []
    for _ in range(args.repeats):
        t_ours, image_ours = timed(ours, backbone, *work)
        t_theirs, image_theirs = timed(theirs, pipe, *work)
        ours_s.append(t_ours)
        theirs_s.append(t_theirs)
    print(f"{args.backbone}: batch {args.batch}, {args.steps} DDIM steps, CFG {args.guidance}, "
          f"{args.repeats} alternating runs, torch threads {torch.get_num_threads()}")
    print(f"max |image difference| {(image_ours - image_theirs).abs().max().item():.2e}")
    for k, clock in enumerate(("cpu", "wall")):
        ours_median = statistics.median(t[k] for t in ours_s)
        theirs_median = statistics.median(t[k] for t in theirs_s)
        print(f"{clock:>4}: goldennoise {ours_median:.3f} s, diffusers {theirs_median:.3f} s, "
              f"ratio goldennoise / diffusers = {ours_median / theirs_median:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main()
