"""Time goldennoise's sampling loop against the diffusers pipeline doing the same work, per new backbone family.

For each tiny model (SD3, FLUX.1-dev, FLUX.1-schnell, Hunyuan-DiT) both sides encode the prompts, run N steps
from the same latents (flow Euler on SD3 / FLUX, DDIM on Hunyuan-DiT) with the family's guidance and decode to
images. Runs alternate so that load on a shared machine hits both alike; the medians' ratios are printed, of process
CPU time (robust to other processes) and wall-clock time, with the largest image difference.

    python benchmarks/flow_sampling.py [--steps 10] [--batch 2] [--repeats 5] [--families sd3 flux]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from goldennoise.backbones import load_backbone  # noqa: E402
from goldennoise.backbones.flux import pack_latents  # noqa: E402
from goldennoise.sampling import noise_for_seeds, sample  # noqa: E402

FAMILIES = {  # name → (backbone, guidance ω, pipeline keywords for the same ω)
    "sd3": ("tiny-sd3", 4.0, {"guidance_scale": 4.0}),
    "flux": ("tiny-flux", 3.5, {"guidance_scale": 3.5}),
    "flux-schnell": ("tiny-flux-schnell", 3.0, {"true_cfg_scale": 3.0, "negative_prompt": ""}),
    "hunyuan-dit": ("tiny-hunyuan-dit", 5.0, {"guidance_scale": 5.0}),
}


def ours(backbone, prompts, noise, steps, guidance):
    cond, uncond = backbone.encode_prompt(prompts)
    schedule = backbone.schedule(steps, tuple(noise.shape[-2:]))
    return backbone.decode(sample(backbone.denoiser(cond, uncond, guidance), noise, schedule))


def theirs(pipe, prompts, latents, steps, size, extra):
    return pipe(prompt=prompts, latents=latents, num_inference_steps=steps, height=size, width=size,
                output_type="pt", **extra).images


def timed(fn, *args):
    """``((cpu seconds, wall seconds), output)`` of one call without autograd."""
    cpu, wall = time.process_time(), time.perf_counter()
    with torch.no_grad():
        out = fn(*args)
    return (time.process_time() - cpu, time.perf_counter() - wall), out


def bench(family, steps, batch, repeats):
    name, guidance, extra = FAMILIES[family]
    backbone = load_backbone(name)
    flow = backbone.schedule_kind == "flow"
    pipe = backbone.pipeline() if flow else backbone.pipeline("ddim")
    pipe.set_progress_bar_config(disable=True)
    if flow:
        extra = {**extra, "max_sequence_length": backbone.max_sequence_length}
    prompts = [f"a photo of object number {i}" for i in range(batch)]
    noise = noise_for_seeds(range(batch), backbone.latent_shape())
    latents = pack_latents(noise) if name.startswith("tiny-flux") else noise
    mine = (backbone, prompts, noise, steps, guidance)
    other = (pipe, prompts, latents, steps, backbone.default_size, extra)
    timed(ours, *mine), timed(theirs, *other)  # warm-up
    ours_s, theirs_s = [], []
    for _ in range(repeats):
        t_ours, image_ours = timed(ours, *mine)
        t_theirs, image_theirs = timed(theirs, *other)
        ours_s.append(t_ours)
        theirs_s.append(t_theirs)
    print(f"{name}: batch {batch}, {steps} steps, ω {guidance}, {repeats} alternating runs, "
          f"max |image difference| {(image_ours - image_theirs).abs().max().item():.2e}")
    for k, clock in enumerate(("cpu", "wall")):
        ours_median = statistics.median(t[k] for t in ours_s)
        theirs_median = statistics.median(t[k] for t in theirs_s)
        print(f"  {clock:>4}: goldennoise {ours_median:.3f} s, diffusers {theirs_median:.3f} s, "
              f"ratio goldennoise / diffusers = {ours_median / theirs_median:.3f} (target <= 1.1)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}")
    for family in args.families:
        bench(family, args.steps, args.batch, args.repeats)


if __name__ == "__main__":
    main()
