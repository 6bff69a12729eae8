"""An evaluation in MLflow: one experiment per evaluation, one run per method, its numbers and artifacts.

Per method run: params (the method's resolved configuration, flattened), tags (backbone, prompt set, evaluation
id, method), metrics (per score: mean and 95 % CI, and against the baseline the paired Δ with its CI resampled by
prompt and the win/tie/loss shares; per-image costs) and artifacts (the method's per-sample table
``samples.parquet``, the evaluation's image grid and resolved config). A rerun of the same evaluation updates its
runs rather than adding new ones.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RUN_TAG = "goldennoise.evaluation"
METHOD_TAG = "goldennoise.method"


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts and lists as ``{"a/b/0": "text"}`` params (MLflow caps a param value at 6000 characters)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return {prefix or "value": str(value)[:6000]}
    out: dict[str, str] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}/{key}" if prefix else str(key)))
    return out


def summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The MLflow metrics of one method's summary (see the module docstring)."""
    metrics = {f"cost/{key}": float(value) for key, value in summary["cost"].items()}
    for key, stats in summary["scores"].items():
        metrics[f"{key}/mean"] = stats["mean"]
        metrics[f"{key}/ci95_low"], metrics[f"{key}/ci95_high"] = stats["ci95"]
        if "delta" in stats:
            metrics[f"{key}/delta"] = stats["delta"]
            metrics[f"{key}/delta_ci95_low"], metrics[f"{key}/delta_ci95_high"] = stats["delta_ci95"]
            for share in ("wins", "ties", "losses"):
                metrics[f"{key}/{share}"] = stats[share]
    return metrics


def _run_id(client: Any, experiment_id: str, evaluation_id: str, method: str, run_name: str,
            tags: dict[str, str]) -> str:
    """The run of ``method`` in this evaluation: the existing one (a rerun), else a new one."""
    query = f"tags.`{RUN_TAG}` = '{evaluation_id}' and tags.`{METHOD_TAG}` = '{method}'"
    found = client.search_runs([experiment_id], filter_string=query, max_results=1)
    if found:
        return found[0].info.run_id
    run_tags = {**tags, RUN_TAG: evaluation_id, METHOD_TAG: method}
    return client.create_run(experiment_id, tags=run_tags, run_name=run_name).info.run_id


def log_evaluation(tracking_uri: str, experiment: str, evaluation_id: str, summaries: Sequence[dict[str, Any]],
                   rows: Sequence[dict[str, Any]], method_params: dict[str, Any], tags: dict[str, str],
                   artifacts: Sequence[Path] = ()) -> dict[str, str]:
    """Log every method's run; returns the run id of each method.

    Args:
        tracking_uri: the MLflow tracking URI (``sqlite:///mlruns.db``, ``http://127.0.0.1:5000``, ...).
        experiment: the experiment name (one per evaluation).
        evaluation_id: the evaluation's content hash (reruns of the same evaluation update the same runs).
        summaries: :func:`~goldennoise.evaluation.report.summarize` output.
        rows: the flat per-sample rows of every method.
        method_params: each method's resolved configuration, by method name.
        tags: tags of every run (backbone, prompt set).
        artifacts: files logged to every run (the image grid, the resolved config).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    runs = {}
    for summary in summaries:
        method = summary["method"]
        run_id = _run_id(client, experiment_id, evaluation_id, method, method, tags)
        params = [Param(k, v) for k, v in flatten(method_params.get(method, {})).items()]
        existing = client.get_run(run_id).data.params
        params = [p for p in params if p.key not in existing]  # a param is written once
        metrics = [Metric(k, v, 0, 0) for k, v in summary_metrics(summary).items()]
        client.log_batch(run_id, metrics=metrics, params=params)
        client.log_text(run_id, json.dumps(summary, indent=1), "summary.json")
        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "samples.parquet"
            pq.write_table(pa.Table.from_pylist([r for r in rows if r["method"] == method]), table)
            client.log_artifact(run_id, str(table))
        for path in artifacts:
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id)
        runs[method] = run_id
    return runs
