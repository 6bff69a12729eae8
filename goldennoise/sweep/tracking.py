"""A sweep in MLflow: one parent run per sweep, a child run per point (tag ``mlflow.parentRunId``).

Every run carries the tag ``goldennoise.sweep`` (the sweep's name); a child run also ``goldennoise.point`` (the
point's name), its overrides as params, its result metrics plus ``cost/seconds`` (wall time of the point's process),
and, when it failed, its error as the tag ``goldennoise.error`` and its log as an artifact. The runs a point's own
command wrote (an evaluation's method runs, a fit's run) are named in the tag ``goldennoise.point_runs``. Runs are
found again by these tags, so a rerun or a worker on another machine logs into the same parent and child runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goldennoise.evaluation.tracking import flatten
from goldennoise.mlflow_ui import experiment_id

SWEEP_TAG = "goldennoise.sweep"
POINT_TAG = "goldennoise.point"
ROLE_TAG = "goldennoise.sweep_role"
ERROR_TAG = "goldennoise.error"
POINT_RUNS_TAG = "goldennoise.point_runs"
PARENT_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class PointOutcome:
    """What one point did: ``status`` is ``done``, ``failed``, ``killed``, ``running`` (elsewhere) or ``pending``."""

    name: str
    status: str
    seconds: float | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None


class SweepTracker:
    """The MLflow parent run of a sweep and its child runs.

    Args:
        tracking_uri: MLflow tracking URI.
        experiment: experiment name (tagged as model development, so the UI opens on its runs).
        sweep: the sweep's name.
        params: the parent run's params (command, base configs, number of points).
        config_text: the resolved sweep config, logged to the parent as ``sweep.yaml``.
    """

    def __init__(self, tracking_uri: str, experiment: str, sweep: str, params: dict[str, Any],
                 config_text: str) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri)
        self.experiment_id = experiment_id(self.client, experiment)
        self.sweep = sweep
        self.parent_id = self._find({ROLE_TAG: "parent"})
        if self.parent_id is None:
            tags = {SWEEP_TAG: sweep, ROLE_TAG: "parent"}
            self.parent_id = self.client.create_run(self.experiment_id, tags=tags, run_name=sweep).info.run_id
            self._log_params(self.parent_id, params)
            self.client.log_text(self.parent_id, config_text, "sweep.yaml")

    def _find(self, tags: dict[str, str]) -> str | None:
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in {SWEEP_TAG: self.sweep, **tags}.items())
        found = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1)
        return found[0].info.run_id if found else None

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(run_id).data.params
        new = [Param(k, v) for k, v in flatten(params).items() if k not in existing]  # a param is written once
        self.client.log_batch(run_id, params=new)

    def start_point(self, name: str, overrides: dict[str, Any]) -> str:
        """The child run of point ``name`` (the existing one on a rerun), marked running; returns its id."""
        run_id = self._find({POINT_TAG: name})
        if run_id is None:
            tags = {SWEEP_TAG: self.sweep, POINT_TAG: name, ROLE_TAG: "point", PARENT_TAG: self.parent_id}
            run_id = self.client.create_run(self.experiment_id, tags=tags, run_name=name).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        self._log_params(run_id, {key: json.dumps(value) if not isinstance(value, str) else value
                                  for key, value in overrides.items()})
        return run_id

    def finish_point(self, run_id: str, result: dict[str, Any], seconds: float, error: str | None,
                     log: Path | None) -> None:
        """Log a point's metrics (or error and log) and end its child run as finished or failed."""
        from mlflow.entities import Metric

        metrics = {**result.get("metrics", {}), "cost/seconds": seconds}
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
        if result.get("mlflow_runs"):
            self.client.set_tag(run_id, POINT_RUNS_TAG, json.dumps(result["mlflow_runs"]))
        if error is not None:
            self.client.set_tag(run_id, ERROR_TAG, error[:5000])
            if log is not None and log.is_file():
                self.client.log_artifact(run_id, str(log))
        self.client.set_terminated(run_id, "FAILED" if error is not None else "FINISHED")

    def finish_sweep(self, outcomes: list[PointOutcome]) -> None:
        """Count the points by status on the parent run; end it once no point is left to run."""
        from mlflow.entities import Metric

        counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "failed")}
        self.client.log_batch(self.parent_id, metrics=[Metric(f"points/{k}", v, 0, 0) for k, v in counts.items()])
        if counts["done"] + counts["failed"] == len(outcomes):
            self.client.set_terminated(self.parent_id, "FAILED" if counts["failed"] else "FINISHED")
