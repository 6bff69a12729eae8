"""One generation engine over (prompt, seed) items: batched, sharded, resumable after SIGKILL, split over ranks.

A :class:`GenerationJob` says what one batch of items produces (tensors and records) and what to do once every shard
exists; :func:`run_job` does the rest. NPD collection and evaluation are two jobs of this engine.
"""

from goldennoise.engine.run import EngineSettings, GenerationJob, Item, RunStats, run_job

__all__ = ["EngineSettings", "GenerationJob", "Item", "RunStats", "run_job"]
