"""How a command reports its result to a sweep: a JSON file of flat metrics, at the path the sweep gives.

The sweep runs each point as ``python -m goldennoise <command> ...`` with :data:`RESULT_FILE_ENV` set; when the command
returns, :func:`goldennoise.cli.main` writes :func:`point_result` of what it returned there:

- ``evaluate``: every method's summary metrics as ``<method>/<metric>`` (means, CIs, paired Δ with CIs, costs);
- ``collect``: the collection summary's numbers (count, kept fraction, mean scores, pairs/s);
- trainer subcommands (``fit``, ``validate``, ``test``): the trainer's final logged metrics (``callback_metrics``).

Each also names the MLflow runs the command wrote (``mlflow_runs``), so the sweep's child run can point at them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

RESULT_FILE_ENV = "GOLDENNOISE_RESULT_FILE"
"""Environment variable naming the JSON file a command writes its result to (set by the sweep for each point)."""


def point_result(returned: object) -> dict[str, Any]:
    """``{"metrics": {name: float}, "mlflow_runs": {label: run id}}`` of what a command returned."""
    if isinstance(returned, dict) and "methods" in returned:
        return _evaluation_result(returned)
    if isinstance(returned, dict):
        return {"metrics": _numbers(returned), "mlflow_runs": {}}
    trainer = getattr(returned, "trainer", None)
    if trainer is not None:
        return _trainer_result(trainer)
    return {"metrics": {}, "mlflow_runs": {}}


def _evaluation_result(summary: dict[str, Any]) -> dict[str, Any]:
    from goldennoise.evaluation.tracking import summary_metrics

    metrics = {f"{method['method']}/{key}": value for method in summary["methods"]
               for key, value in summary_metrics(method).items()}
    return {"metrics": metrics, "mlflow_runs": dict(summary.get("mlflow_runs", {}))}


def _trainer_result(trainer: Any) -> dict[str, Any]:
    from lightning.pytorch.loggers import MLFlowLogger

    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    runs = {f"logger{k}": logger.run_id for k, logger in enumerate(trainer.loggers)
            if isinstance(logger, MLFlowLogger)}
    return {"metrics": metrics, "mlflow_runs": runs}


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    """The finite numeric (not boolean) entries of a summary."""
    return {key: float(value) for key, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)}


def write_result(returned: object) -> None:
    """Write :func:`point_result` of ``returned`` to the file :data:`RESULT_FILE_ENV` names (nothing if unset)."""
    path = os.environ.get(RESULT_FILE_ENV)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(point_result(returned), indent=1))


def read_result(path: Path) -> dict[str, Any]:
    """A result file's content (empty metrics when the command wrote none)."""
    if not path.is_file():
        return {"metrics": {}, "mlflow_runs": {}}
    return json.loads(path.read_text())
