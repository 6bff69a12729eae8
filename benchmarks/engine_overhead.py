"""What the evaluation harness and the generation engine cost on top of the work they schedule.

1. Harness throughput without metrics ÷ raw batched sampling with goldennoise's DDIM loop at the same batch
   (prompt encoding, per-seed noise, N DDIM steps, decoding): the harness adds the method call, cost metering and
   records; target ≥ 0.95.
2. NPD collection through the engine (shards, hashes, lock, manifest, index, progress) ÷ the time the same run
   spends in the job's own batches (measured inside each run): target ≥ 0.97. The collection before the refactor
   paid for shard writing too, so this is a lower bound on the efficiency after ÷ before.

The harness and raw runs alternate so that load on a shared machine hits both alike; the engine's ratio is measured
inside each run. Medians' ratios are printed, of process CPU time (robust to other processes) and of wall-clock time.

    python benchmarks/engine_overhead.py [--batch 32] [--steps 10] [--repeats 5]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from goldennoise.backbones import load_backbone  # noqa: E402
from goldennoise.collection import CollectConfig, CollectionJob, ScorerSpec, build_items  # noqa: E402
from goldennoise.engine import EngineSettings, run_job  # noqa: E402
from goldennoise.evaluation.harness import MethodSpec, evaluate_batch  # noqa: E402
from goldennoise.noise import Gaussian, SamplerSettings  # noqa: E402
from goldennoise.sampling import noise_for_seeds, sample_ddim  # noqa: E402
from goldennoise.shapes import sample_scenes, to_prompt  # noqa: E402


def timed(fn):
    """(cpu seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def ratios(runs: list[tuple[tuple[float, float], tuple[float, float]]]) -> str:
    """Median baseline time ÷ median measured time, per clock: a throughput ratio (1 = no overhead)."""
    cells = []
    for k, clock in enumerate(("cpu", "wall")):
        measured = statistics.median(r[0][k] for r in runs)
        baseline = statistics.median(r[1][k] for r in runs)
        cells.append(f"{clock} {baseline / measured:.3f}")
    return ", ".join(cells)


def harness_vs_raw(backbone, prompts: list[str], steps: int, repeats: int) -> str:
    items = [(i, p, i) for i, p in enumerate(prompts)]
    methods, sampler = [MethodSpec("gaussian", Gaussian())], SamplerSettings(steps=steps)

    @torch.no_grad()
    def raw():
        cond, uncond = backbone.encode_prompt(prompts)
        noise = noise_for_seeds(list(range(len(prompts))), backbone.latent_shape())
        backbone.decode(sample_ddim(backbone.denoiser(cond, uncond, 1.0), noise, backbone.ddim_schedule(steps)))

    def harness():
        evaluate_batch(backbone, items, methods, [], sampler)

    harness(), raw()  # warm-up
    return ratios([(timed(harness), timed(raw)) for _ in range(repeats)])


class TimedJob:
    """A job proxy that adds up the (cpu, wall) seconds spent in the job's own per-batch work."""

    def __init__(self, job) -> None:
        self.job, self.work = job, [0.0, 0.0]

    def __getattr__(self, name: str):
        return getattr(self.job, name)

    def _timed(self, fn, *args):
        cpu, wall = time.process_time(), time.perf_counter()
        out = fn(*args)
        self.work[0] += time.process_time() - cpu
        self.work[1] += time.perf_counter() - wall
        return out

    def begin_shard(self, items):
        return self._timed(self.job.begin_shard, items)

    def run_batch(self, items, first_index):
        return self._timed(self.job.run_batch, items, first_index)


def engine_vs_direct(prompts: list[str], batch: int, steps: int, repeats: int) -> str:
    """Time in the job's batches ÷ time of the whole engine run, measured inside the same runs.

    Both sides of the ratio come from one run, so load on a shared machine cannot favour either; the engine's share
    is everything else: the lock, manifest, resume checks, shard hashing and writing, the index and the summary.
    """
    root = Path(tempfile.mkdtemp(prefix="engine_bench_"))

    def config(name: str) -> CollectConfig:
        return CollectConfig(output_dir=str(root / name), backbone="shapes", prompts=prompts, seeds="0",
                             num_steps=steps, batch_size=batch, shard_size=batch, storage_dtype="float32",
                             scorers=[ScorerSpec("shapes_alignment")], cache_embeddings=False, progress=False,
                             accelerator="cpu")

    job = TimedJob(CollectionJob(config("warmup")))
    job.setup(torch.device("cpu"))  # loaded once: the ratio is about collecting, not loading
    items = build_items(job.config)
    runs = []
    for k in range(repeats + 1):
        job.job.config, job.work = config(f"engine{k}"), [0.0, 0.0]
        total = timed(lambda k=k: run_job(job, items, EngineSettings(str(root / f"engine{k}"), batch, batch, "cpu",
                                                                      progress=False)))
        runs.append((total, tuple(job.work)))
    return ratios(runs[1:])  # the first run warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="batches per timed collection")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    backbone = load_backbone("shapes")
    prompts = [to_prompt(s.spec) for s in sample_scenes(range(args.batch * args.batches), "test")]
    print(f"shapes backbone, batch {args.batch}, {args.steps} DDIM steps, {args.repeats} alternating runs")
    harness = harness_vs_raw(backbone, prompts[:args.batch], args.steps, args.repeats)
    print(f"harness throughput / raw DDIM loop throughput: {harness}")
    engine = engine_vs_direct(prompts, args.batch, args.steps, args.repeats)
    print(f"engine NPD throughput / direct job batches: {engine}")


if __name__ == "__main__":
    main()
