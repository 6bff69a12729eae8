"""The engine loop: the item index cut into fixed shards, each written atomically; rank r of W takes shards r, r+W, ...

A rerun skips every shard that is complete and belongs to the same run (same content digest), so SIGKILL at any
moment followed by the same command yields exactly the uninterrupted output; the shard layout does not depend on W.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

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
    """What a job tells the engine."""

    def digest(self, items: list[Item]) -> str:
        """Hash of everything that changes the output (settings and items): equal digests mean equal shards."""

    def manifest(self) -> dict[str, Any]:
        """The run's description, stored beside the shards."""

    def setup(self, device: torch.device) -> None:
        """Load what this rank needs (models, metrics), once, before its first batch."""

    def run_batch(self, items: list[Item], first_index: int) -> tuple[dict[str, torch.Tensor], list[dict]]:
        """Tensors and records of one batch; ``first_index`` is the index of ``items[0]`` in the run."""

    def finalize(self, output_dir: Path, stats: RunStats) -> dict[str, Any]:
        """On rank 0, once every shard exists: indexes, reports, logging; returns the summary."""
