"""``goldennoise evaluate`` end to end: a SIGKILLed run resumes to the same table; MLflow read back over REST."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from goldennoise.cli import main

PROMPTS = ["a red circle left of a blue square", "a green triangle at the top left", "a blue cross below a red square"]
CONFIG = {
    "name": "two-methods", "backbone": "shapes", "prompts": PROMPTS, "seeds": "0-1", "steps": 2,
    "methods": [{"name": "gaussian", "method": {"class_path": "goldennoise.noise.Gaussian"}, "guidance_scale": 1.0},
                {"name": "cfg3", "method": {"class_path": "goldennoise.noise.Gaussian"}, "guidance_scale": 3.0}],
    "metrics": [{"class_path": "goldennoise.metrics.ShapesAlignment"}],
    "batch_size": 2, "shard_size": 2, "accelerator": "cpu", "progress": False, "bootstrap_resamples": 200,
}
NUM_ITEMS, NUM_SHARDS = 6, 3
TABLE_COLUMNS = ["index", "prompt_id", "prompt", "seed", "method", "guidance_scale", "score/shapes_alignment/alignment",
                 "cost/method/evaluations", "cost/sampling/evaluations"]
"""The deterministic columns of the per-sample table (wall time and memory differ between runs)."""


def write_config(folder: Path, **overrides) -> Path:
    path = folder / "eval.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(folder / "eval"), "mlflow_tracking_uri": None,
                                    **overrides}))
    return path


def table(folder: Path) -> list[dict]:
    return pq.read_table(folder / "samples.parquet", columns=TABLE_COLUMNS).to_pylist()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    summary = main(["evaluate", "--config", str(write_config(folder))])
    assert summary["items"] == NUM_ITEMS
    return table(folder / "eval")


def test_killed_evaluation_resumes_to_the_uninterrupted_table(tmp_path, reference):
    config = write_config(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "goldennoise", "evaluate", "--config", str(config)],
                               env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    shards, deadline = tmp_path / "eval" / "shards", time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if shards.is_dir() and list(shards.glob("shard-*.safetensors")):
            break
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list(shards.glob("shard-*.safetensors")))
    assert 1 <= written < NUM_SHARDS, "the run should have been killed mid-evaluation"
    summary = main(["evaluate", "--config", str(config)])
    assert summary["produced_this_run"] == NUM_ITEMS - 2 * written
    assert table(tmp_path / "eval") == reference
    costs = {(r["method"], r["cost/sampling/evaluations"]) for r in reference}
    assert costs == {("gaussian", 2.0), ("cfg3", 4.0)}


@pytest.mark.slow  # starts an MLflow server (about 20 s); the sqlite store is tested in the default suite
def test_an_evaluation_logs_one_run_per_method_to_a_real_mlflow_server(tmp_path, mlflow_server):
    main(["evaluate", "--config", str(write_config(tmp_path, mlflow_tracking_uri=mlflow_server.url))])
    experiment = mlflow_server.experiment("two-methods")
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
    runs = {r["info"]["run_name"]: r for r in mlflow_server.runs(experiment["experiment_id"])}
    assert set(runs) == {"gaussian", "cfg3"}
    for name, run in runs.items():
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["backbone"] == "shapes" and tags["goldennoise.method"] == name
        assert metrics["cost/sampling/evaluations"] == (2.0 if name == "gaussian" else 4.0)
        assert 0 <= metrics["shapes_alignment/alignment/mean"] <= 1
        assert ("shapes_alignment/alignment/delta" in metrics) == (name == "cfg3")
        files = json.loads(mlflow_server.get("/api/2.0/mlflow/artifacts/list", run_id=run["info"]["run_id"]))
        assert {"samples.parquet", "grid.png", "manifest.json"} <= {f["path"] for f in files["files"]}
        data = mlflow_server.get("/get-artifact", path="samples.parquet", run_uuid=run["info"]["run_id"])
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        assert len(rows) == NUM_ITEMS and {r["method"] for r in rows} == {name}


def test_methods_built_in_code_are_evaluated_after_the_configs(tmp_path, reference, monkeypatch):
    import goldennoise.evaluation.run
    from goldennoise.evaluation.cli import evaluate_command
    from goldennoise.evaluation.harness import MethodSpec
    from goldennoise.noise import Gaussian

    argv, extra = ["--config", str(write_config(tmp_path))], [MethodSpec("again", Gaussian(), 3.0)]
    summary = evaluate_command(argv, extra)
    assert summary["items"] == NUM_ITEMS
    rows = table(tmp_path / "eval")
    assert sorted({r["method"] for r in rows}) == ["again", "cfg3", "gaussian"] and len(rows) == 3 * NUM_ITEMS
    again = sorted(({**r, "method": "cfg3"} for r in rows if r["method"] == "again"), key=lambda r: r["index"])
    assert again == sorted((r for r in reference if r["method"] == "cfg3"), key=lambda r: r["index"])  # alike
    seen = {}
    monkeypatch.setattr(goldennoise.evaluation.run, "evaluate", lambda config, params: seen.update(
        methods=[m.name for m in config.methods], params=params))
    evaluate_command(argv, extra)
    assert seen["methods"] == ["gaussian", "cfg3", "again"]
    assert seen["params"]["again"] == Gaussian().describe() and seen["params"]["cfg3"]["guidance_scale"] == 3.0
