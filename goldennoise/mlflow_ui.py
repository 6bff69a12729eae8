"""goldennoise's MLflow experiments, marked as model development so the UI opens them on their runs.

MLflow 3's UI has two workflows: "GenAI apps & agents", whose experiment page opens on an (empty, for goldennoise)
Traces page and hides the runs behind a "Training runs" tab, and "Machine learning", which opens on the runs table
and its comparison view. Two things decide which one shows an experiment:

- the experiment tag ``mlflow.experimentKind`` (:data:`EXPERIMENT_KIND`), which MLflow 3 UIs before the
  workflow switch read per experiment (and which MLflow's own clients and search read as the experiment's type);
- from MLflow 3.1x on, the workflow switch at the top of the side bar, remembered by the browser and given in a URL by
  ``workflowType=machine_learning`` (:data:`ML_WORKFLOW_QUERY`): the links built here carry it.

Every experiment goldennoise writes to goes through :func:`experiment_id` or :func:`mark_experiment`. The UI's own
links (from the experiment list) drop the query, so ``python -m goldennoise.mlflow_ui`` (run by ``make ui``) prints
each experiment's runs link.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""The kind MLflow's UI shows as "Machine learning": runs, metrics and the run comparison first."""

ML_WORKFLOW_QUERY = "workflowType=machine_learning"
"""The UI URL query that opens MLflow 3's "Machine learning" workflow (runs) instead of GenAI (traces)."""


def mark_experiment(client: Any, experiment_id: str) -> None:
    """Tag an existing experiment as model development (idempotent).

    Args:
        client: an ``mlflow.MlflowClient``.
        experiment_id: the experiment to tag.
    """
    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def experiment_id(client: Any, name: str) -> str:
    """The id of experiment ``name``, created if missing, tagged as model development either way.

    Args:
        client: an ``mlflow.MlflowClient``.
        name: the experiment's name.
    """
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        mark_experiment(client, found.experiment_id)
    return found.experiment_id


def runs_url(server: str, experiment: str) -> str:
    """The UI page of one experiment's runs table (select runs there and press "Compare" for the comparison view)."""
    return f"{server.rstrip('/')}/#/experiments/{experiment}/runs?{ML_WORKFLOW_QUERY}"


def compare_url(server: str, run_ids: Sequence[str], experiment_ids: Sequence[str]) -> str:
    """The UI's run-comparison page of ``run_ids`` (parameters, metrics and plots side by side)."""
    query = f"runs={json.dumps(list(run_ids))}&experiments={json.dumps(list(experiment_ids))}"
    return f"{server.rstrip('/')}/#/compare-runs?{query}&{ML_WORKFLOW_QUERY}"


def experiment_links(tracking_uri: str, server: str) -> list[str]:
    """One line per experiment of the store: its name and its runs link on ``server``."""
    from mlflow import MlflowClient

    experiments = MlflowClient(tracking_uri).search_experiments()
    return [f"  {e.name}: {runs_url(server, e.experiment_id)}" for e in experiments if e.name != "Default"]


def main(argv: list[str]) -> None:
    """``python -m goldennoise.mlflow_ui [tracking_uri] [server]``: print the UI links of every experiment."""
    tracking_uri = argv[0] if argv else "sqlite:///mlruns.db"
    server = argv[1] if len(argv) > 1 else "http://127.0.0.1:5055"
    print(f"MLflow UI at {server}; each experiment's runs (the Machine-learning view):")
    print("\n".join(experiment_links(tracking_uri, server)) or "  (no experiment yet)")


if __name__ == "__main__":
    main(sys.argv[1:])
