"""NPD collection efficiency: how close batched collection gets to the raw batched UNet throughput.

    efficiency = (pairs/s × UNet evaluations per pair) / (raw batched UNet evaluations/s at the same batch size)

A pair costs ``repeats·(c(ω_l) + c(ω_w)) + 2·N·c(ω_l)`` per-sample UNet evaluations (c = 2 with CFG, else 1): the
re-denoise step plus both N-step images (docs/npnet.md §2.5). The raw rate is the UNet alone on the sampling loop's own
batch, 2B latents with CFG (4B rows), the call that dominates collection; collection adds the re-denoise step at
smaller batches, text encoding, VAE decoding, scoring, noise drawing and shard writes. Target ≥ 0.85 on the
embedded backbone. Both rates are measured in one process, alternating, and the medians' ratio is printed, of process
CPU time (robust on a shared machine) and of wall-clock time.

    python benchmarks/npd_collection_efficiency.py [--backbone shapes] [--batch 16] [--steps 10] [--repeats 3]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from goldennoise.backbones import load_backbone  # noqa: E402
from goldennoise.backbones.cost import evaluations_per_step  # noqa: E402
from goldennoise.collection import CollectConfig, ScorerSpec, unet_evals_per_pair  # noqa: E402
from goldennoise.collection.collect import collect_shard  # noqa: E402
from goldennoise.collection.config import prompt_list  # noqa: E402
from goldennoise.collection.scoring import build_scorers  # noqa: E402
from goldennoise.data.npd_store import shard_path, write_shard  # noqa: E402


def timed(fn):
    """(cpu seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.process_time() - cpu, time.perf_counter() - wall


def make_config(args) -> CollectConfig:
    shapes = args.backbone == "shapes"
    scorer = ScorerSpec("shapes_alignment") if shapes else ScorerSpec("hpsv2", model="tiny")
    return CollectConfig(backbone=args.backbone, image_size=args.image_size, num_steps=args.steps,
                         prompt_source="shapes:train:4096", seeds=None, batch_size=args.batch,
                         shard_size=args.batch * args.batches, scorers=[scorer], storage_dtype="float32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="shapes", help="shapes (the embedded backbone), tiny-sd, tiny-sdxl")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16, help="pairs per batch B")
    parser.add_argument("--batches", type=int, default=2, help="batches per timed collection run")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = make_config(args)
    device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")
    backbone = load_backbone(config.backbone, dtype=config.backbone_dtype, device=device)
    scorers = build_scorers(config.scorers)
    schedule = backbone.ddim_schedule(config.num_steps)
    shape = backbone.latent_shape(config.image_size, config.image_size)
    source = prompt_list(config)
    n = config.shard_size
    items = [(i, p, s) for i, (p, s) in enumerate(zip(source.prompts[:n], source.seeds[:n], strict=True))]
    out = tempfile.mkdtemp(prefix="npd_bench_")

    @torch.inference_mode()
    def collection():
        tensors, records = collect_shard(backbone, items, 0, config, schedule, scorers, shape)
        write_shard(shard_path(out, 0), tensors, records, config.backbone, "bench")

    cond, uncond = backbone.encode_prompt([p for _, p, _ in items[: config.batch_size]] * 2)
    latents = torch.randn(2 * config.batch_size, *shape, device=device)  # (2B, C, h, w): both images of B pairs
    denoise = backbone.denoiser(cond, uncond, config.denoise_guidance)
    calls = args.batches * 2 * config.num_steps

    @torch.inference_mode()
    def raw_unet():
        for i in range(calls):
            denoise(latents, schedule.timesteps[i % len(schedule.timesteps)])

    collection(), raw_unet()  # warm-up
    runs = [(timed(collection), timed(raw_unet)) for _ in range(args.repeats)]
    evals_per_pair = unet_evals_per_pair(config)
    raw_evals = calls * 2 * config.batch_size * evaluations_per_step(config.denoise_guidance)
    print(f"backbone={config.backbone} device={device} B={config.batch_size} N={config.num_steps} "
          f"pairs/run={n} UNet evals/pair={evals_per_pair} raw UNet rows/call={2 * config.batch_size * 2}")
    for k, name in enumerate(("cpu", "wall")):
        collect_s = statistics.median(r[0][k] for r in runs)
        raw_s = statistics.median(r[1][k] for r in runs)
        pairs_per_s, raw_per_s = n / collect_s, raw_evals / raw_s
        print(f"[{name}] collection {pairs_per_s:.3f} pairs/s, raw UNet {raw_per_s:.1f} evals/s, "
              f"efficiency = {pairs_per_s * evals_per_pair / raw_per_s:.3f}")


if __name__ == "__main__":
    main()
