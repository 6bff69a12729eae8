"""Run an evaluation on the generation engine: sharded per-sample records, resumable, then the report."""

from __future__ import annotations

from typing import Any

from goldennoise.engine import EngineSettings, run_job
from goldennoise.evaluation.config import EvaluateConfig
from goldennoise.evaluation.job import EvaluationJob


def evaluate(config: EvaluateConfig, method_params: dict[str, Any] | None = None) -> dict | None:
    """Evaluate every method of ``config``; returns the summary (per-method scores, Δ with CIs, costs).

    Args:
        config: the evaluation.
        method_params: each method's resolved configuration for MLflow params (the CLI's parsed config).
    """
    items = config.items()
    settings = EngineSettings(output_dir=config.folder, batch_size=config.batch_size, shard_size=config.shard_size,
                              accelerator=config.accelerator, devices=config.devices, strategy=config.strategy,
                              progress=config.progress, unit="pair", description=f"evaluate {config.name}")
    return run_job(EvaluationJob(config, method_params), items, settings)
