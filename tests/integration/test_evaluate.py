"""``goldennoise evaluate`` end to end: a SIGKILLed run resumes to the same table; MLflow read back over REST."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                               f"sqlite:///{tmp_path / 'mlflow.db'}", "--artifacts-destination",
                               str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1"], cwd=tmp_path, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow server did not start within 120 s")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _get(url: str, endpoint: str, **query) -> bytes:
    return urllib.request.urlopen(f"{url}{endpoint}?{urllib.parse.urlencode(query)}", timeout=30).read()


def _post(url: str, endpoint: str, body: dict) -> dict:
    request = urllib.request.Request(f"{url}{endpoint}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def test_an_evaluation_logs_one_run_per_method_to_a_real_mlflow_server(tmp_path, mlflow_server):
    main(["evaluate", "--config", str(write_config(tmp_path, mlflow_tracking_uri=mlflow_server))])
    experiment = json.loads(_get(mlflow_server, "/api/2.0/mlflow/experiments/get-by-name",
                                 experiment_name="two-methods"))["experiment"]
    runs = _post(mlflow_server, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]})
    runs = {r["info"]["run_name"]: r for r in runs["runs"]}
    assert set(runs) == {"gaussian", "cfg3"}
    for name, run in runs.items():
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["backbone"] == "shapes" and tags["goldennoise.method"] == name
        assert metrics["cost/sampling/evaluations"] == (2.0 if name == "gaussian" else 4.0)
        assert 0 <= metrics["shapes_alignment/alignment/mean"] <= 1
        assert ("shapes_alignment/alignment/delta" in metrics) == (name == "cfg3")
        files = json.loads(_get(mlflow_server, "/api/2.0/mlflow/artifacts/list", run_id=run["info"]["run_id"]))
        assert {"samples.parquet", "grid.png", "manifest.json"} <= {f["path"] for f in files["files"]}
        data = _get(mlflow_server, "/get-artifact", path="samples.parquet", run_uuid=run["info"]["run_id"])
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        assert len(rows) == NUM_ITEMS and {r["method"] for r in rows} == {name}
