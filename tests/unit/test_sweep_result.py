"""What a command reports to a sweep: an evaluation's per-method metrics, a collection's numbers, a fit's final
metrics, written only where GOLDENNOISE_RESULT_FILE points."""

import json
from types import SimpleNamespace

import torch

from goldennoise.sweep.result import RESULT_FILE_ENV, point_result, read_result, write_result


def test_an_evaluation_reports_each_methods_metrics_under_its_name():
    method = {"method": "npnet", "cost": {"evaluations": 10.0},
              "scores": {"align": {"mean": 0.5, "ci95": [0.4, 0.6], "delta": 0.1, "delta_ci95": [0.0, 0.2],
                                   "wins": 0.3, "ties": 0.6, "losses": 0.1}}}
    result = point_result({"methods": [method], "mlflow_runs": {"npnet": "abc"}})
    assert result["mlflow_runs"] == {"npnet": "abc"}
    assert result["metrics"]["npnet/align/delta"] == 0.1 and result["metrics"]["npnet/cost/evaluations"] == 10.0
    assert result["metrics"]["npnet/align/delta_ci95_low"] == 0.0 and len(result["metrics"]) == 10


def test_a_collection_reports_its_finite_numbers():
    summary = {"count": 8, "kept_fraction": 0.25, "filter_metric": "hpsv2", "pairs_per_s": None,
               "flag": True, "nan": float("nan")}
    assert point_result(summary)["metrics"] == {"count": 8.0, "kept_fraction": 0.25}


def test_a_fit_reports_the_trainers_final_metrics():
    trainer = SimpleNamespace(callback_metrics={"val/mse": torch.tensor(0.25)}, loggers=[])
    assert point_result(SimpleNamespace(trainer=trainer)) == {"metrics": {"val/mse": 0.25}, "mlflow_runs": {}}


def test_the_result_is_written_only_where_the_sweep_asks(tmp_path, monkeypatch):
    monkeypatch.delenv(RESULT_FILE_ENV, raising=False)
    write_result({"count": 1})
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "point" / "result.json"
    monkeypatch.setenv(RESULT_FILE_ENV, str(path))
    write_result({"count": 1})
    assert json.loads(path.read_text()) == read_result(path) == {"metrics": {"count": 1.0}, "mlflow_runs": {}}
    assert read_result(tmp_path / "missing.json") == {"metrics": {}, "mlflow_runs": {}}
