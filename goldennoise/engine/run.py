"""The engine loop: the item index cut into fixed shards, each written atomically; rank r of W takes shards r, r+W, ...

A rerun skips every shard that is complete and belongs to the same run (same content digest), so SIGKILL at any
moment followed by the same command yields exactly the uninterrupted output; the shard layout does not depend on W.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from goldennoise.data.folder_lock import FolderLock
from goldennoise.data.shards import ShardFormat, complete_shard, prepare_folder, shard_path, write_shard

Item = tuple[int, str, int]
"""``(prompt_id, prompt, seed)``."""


@dataclass
class EngineSettings:
    """Where and how a job runs.

    Args:
        output_dir: the run's folder (shards, manifest, the job's outputs).
        batch_size: items per batch.
        shard_size: items per shard file, the unit of crash recovery.
        accelerator: Lightning Fabric accelerator (``auto``, ``cpu``, ``cuda``, ...).
        devices: processes (ranks).
        strategy: Fabric strategy; ``auto`` spawns ``devices`` processes (gloo on CPU) or joins torchrun's.
        progress: show a progress bar with ETA on rank 0.
        unit: what the bar counts (``pair``, ``item``).
        description: the bar's label.
    """

    output_dir: str
    batch_size: int = 8
    shard_size: int = 256
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    progress: bool = True
    unit: str = "item"
    description: str = "generate"


@dataclass
class RunStats:
    """What this run did: items produced over all ranks and the slowest rank's seconds."""

    produced: int
    seconds: float


class GenerationJob(Protocol):
    """What a job tells the engine.

    Attributes:
        format: the shard format of its output folder (format name, manifest file, required tensors).
    """

    format: ShardFormat

    def digest(self, items: list[Item]) -> str:
        """Hash of everything that changes the output (settings and items): equal digests mean equal shards."""

    def manifest(self) -> dict[str, Any]:
        """The run's description, stored beside the shards (it must give ``shard_size``)."""

    def shard_meta(self) -> dict[str, str]:
        """Strings stored in every shard's header (e.g. the backbone id)."""

    def setup(self, device: torch.device) -> None:
        """Load what this rank needs (models, metrics), once, before its first batch."""

    def begin_shard(self, items: list[Item]) -> None:
        """Called with a shard's items before its first batch (e.g. to encode its distinct prompts once)."""

    def run_batch(self, items: list[Item], first_index: int) -> tuple[dict[str, torch.Tensor], list[dict]]:
        """Tensors and records of one batch; ``first_index`` is the index of ``items[0]`` in the run."""

    def finalize(self, output_dir: Path, stats: RunStats) -> dict[str, Any]:
        """On rank 0, once every shard exists: indexes, reports, logging; returns the summary."""


def shard_count(num_items: int, shard_size: int) -> int:
    """Shards of a run of ``num_items`` items."""
    return -(-num_items // shard_size)


def rank_shards(num_items: int, shard_size: int, rank: int, world: int) -> list[int]:
    """The shard ids rank ``rank`` of ``world`` produces: ``rank, rank + world, ...``."""
    return list(range(rank, shard_count(num_items, shard_size), world))


def _bar(total: int, settings: EngineSettings, rank: int) -> tqdm:
    return tqdm(total=total, unit=settings.unit, desc=f"{settings.description} rank {rank}",
                disable=not settings.progress or rank != 0,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]")


def produce_shards(job: GenerationJob, items: list[Item], todo: list[int], digest: str,
                   settings: EngineSettings, rank: int) -> tuple[int, float]:
    """Produce and write the shards ``todo`` in batches; returns (items produced, seconds)."""
    if not todo:
        return 0, 0.0
    size = settings.shard_size
    total = sum(len(items[k * size:(k + 1) * size]) for k in todo)
    bar = _bar(total, settings, rank)
    start = time.perf_counter()
    for k in todo:
        first = k * size
        shard_items = items[first:first + size]
        job.begin_shard(shard_items)
        tensors, records = [], []
        for offset in range(0, len(shard_items), settings.batch_size):
            batch = shard_items[offset:offset + settings.batch_size]
            batch_tensors, batch_records = job.run_batch(batch, first + offset)
            tensors.append(batch_tensors)
            records.extend(batch_records)
            bar.update(len(batch))
        write_shard(job.format, shard_path(settings.output_dir, k), _concat(tensors), records, digest,
                    job.shard_meta())
    bar.close()
    return total, time.perf_counter() - start


def _concat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate the batches' tensors key by key (a key absent from a batch contributes no rows)."""
    keys = sorted({key for part in parts for key in part})
    return {key: torch.cat([part[key] for part in parts if key in part]) for key in keys}


def run_rank(job: GenerationJob, items: list[Item], settings: EngineSettings, rank: int, world: int,
             device: torch.device, barrier: Callable[[], None] = lambda: None) -> dict | None:
    """This rank's missing shards; rank 0 holds the folder's lock for the run and then finalizes.

    The job is set up (models loaded) before the folder is prepared, so a run that fails to load leaves no manifest
    behind, and the lock removes a folder it created for nothing.

    Returns:
        The job's summary on rank 0, ``None`` elsewhere.
    """
    digest = job.digest(items)
    with FolderLock(settings.output_dir) if rank == 0 else nullcontext():  # the run holds the lock through rank 0
        job.setup(device)
        if rank == 0:
            prepare_folder(job.format, settings.output_dir, digest, len(items), job.manifest())
        barrier()
        todo = [k for k in rank_shards(len(items), settings.shard_size, rank, world)
                if not complete_shard(job.format, shard_path(settings.output_dir, k), digest)]
        produced, seconds = produce_shards(job, items, todo, digest, settings, rank)
        barrier()
        stats = RunStats(*_sum_over_ranks(produced, seconds, world))
        if rank != 0:
            return None
        return job.finalize(Path(settings.output_dir), stats)


def _sum_over_ranks(produced: int, seconds: float, world: int) -> tuple[int, float]:
    """Items produced by all ranks in this run and the slowest rank's time (a no-op for one process)."""
    if world == 1 or not torch.distributed.is_initialized():
        return produced, seconds
    count, slowest = torch.tensor([produced], dtype=torch.float64), torch.tensor([seconds], dtype=torch.float64)
    torch.distributed.all_reduce(count)
    torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
    return int(count.item()), float(slowest.item())


def _fabric_main(fabric: Any, job: GenerationJob, items: list[Item], settings: EngineSettings) -> dict | None:
    """One process's run; a rank other than 0 leaves its process group explicitly before its process exits.

    Those ranks finish while rank 0 still finalizes. Left to the interpreter's teardown, their gloo group now and then
    aborted the process at exit ("terminate called without an active exception", SIGABRT: 1 of 20 runs of a minimal
    two-process CPU job; 0 of 40 with the explicit exit), which failed a run whose shards were all written.
    """
    summary = run_rank(job, items, settings, fabric.global_rank, fabric.world_size, fabric.device, fabric.barrier)
    if fabric.global_rank != 0 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return summary


def run_job(job: GenerationJob, items: list[Item], settings: EngineSettings) -> dict | None:
    """Run ``job`` over ``items`` on ``settings.devices`` processes (Lightning Fabric; gloo on CPU).

    Returns:
        The job's summary (on the launching process).
    """
    if not items:
        raise ValueError("Nothing to generate: the run has no (prompt, seed) items.")
    if settings.devices == 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return run_rank(job, items, settings, 0, 1, _device(settings.accelerator))
    from lightning.fabric import Fabric

    strategy = settings.strategy
    if strategy == "auto":
        strategy = "ddp" if "LOCAL_RANK" in os.environ else "ddp_spawn"
    fabric = Fabric(accelerator=settings.accelerator, devices=settings.devices, strategy=strategy)
    return fabric.launch(_fabric_main, job, items, settings)


def _device(accelerator: str) -> torch.device:
    if accelerator not in ("auto", "gpu"):
        return torch.device(accelerator)
    found = torch.accelerator.current_accelerator(check_available=True)
    return found if found is not None else torch.device("cpu")
