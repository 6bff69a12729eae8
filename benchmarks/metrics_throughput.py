"""Images per second of every goldennoise metric on this machine, tiny and real architecture size (random weights).

Run: ``HF_HUB_OFFLINE=1 python benchmarks/metrics_throughput.py [--batch 4] [--repeats 3] [--no-real]``.
Prints one table measured in one run; the real/tiny ratio is the number to compare across machines.
"""

import argparse
import gc
import time

import torch

from goldennoise.metrics import AestheticScore, CLIPScore, HPSv2Score, ImageReward, PickScore
from goldennoise.metrics import tiny as tiny_metrics

METRICS = {
    "hpsv2": (HPSv2Score, tiny_metrics.hpsv2_scorer),
    "pickscore": (PickScore, tiny_metrics.pickscore_scorer),
    "image_reward": (ImageReward, tiny_metrics.image_reward_scorer),
    "aesthetic": (AestheticScore, tiny_metrics.aesthetic_scorer),
    "clip_score": (CLIPScore, tiny_metrics.clip_scorer),
}


def images_per_second(metric, batch: int, repeats: int, size: int) -> float:
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    prompts = ["a photo of a cat sitting on a red car"] * batch
    with torch.no_grad():
        metric.update(images, prompts)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            metric.update(images, prompts)
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512, help="input image side (resized by each metric)")
    parser.add_argument("--no-real", action="store_true", help="skip the real-size architectures")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch}, {args.size}px inputs, {args.repeats} repeats")
    print(f"{'metric':<14}{'tiny img/s':>12}{'real img/s':>12}{'tiny/real':>11}{'real params':>13}")
    for name, (metric_class, build) in METRICS.items():
        tiny = images_per_second(metric_class(model=build()), args.batch, args.repeats, args.size)
        real = params = float("nan")
        if not args.no_real:
            scorer = build(real_size=True)
            params = sum(p.numel() for p in scorer.parameters()) / 1e6
            real = images_per_second(metric_class(model=scorer), args.batch, max(1, args.repeats // 3), args.size)
            del scorer
            gc.collect()
        print(f"{name:<14}{tiny:>12.1f}{real:>12.2f}{tiny / real:>11.0f}{params:>12.0f}M", flush=True)


if __name__ == "__main__":
    main()
