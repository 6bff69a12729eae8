"""The main job, ``python -m goldennoise fit --config configs/quickstart.yaml``: collect (or reuse) an NPD, train NPNet,
evaluate every method on the same pairs at the end of the fit, all in MLflow.

The fast test runs the shipped config on a shrunk setting (4 NPD pairs at 2 steps, one epoch, 2 × 2 final pairs at
2 sampler steps, a budget of 8 evaluations); the slow one runs the config as shipped.
"""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from mlflow import MlflowClient

from goldennoise.cli import main
from goldennoise.collection import CollectConfig
from goldennoise.data import NoisePairDataModule

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
KEY = "shapes_alignment/alignment"
GOLDEN = ("npnet", "npnet_shipped", "noiserefine_shipped", "stability_k4", "bestofn_soft")
"""The golden-noise and search methods of the final evaluation (beside the baselines gaussian and cfg3)."""


def _harness(config: dict) -> dict:
    (harness,) = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("NoiseMethodHarness")]
    return harness["init_args"]


def shrunk_config(tmp_path: Path) -> tuple[Path, dict]:
    """configs/quickstart.yaml with every size shrunk, MLflow in ``tmp_path``; returns its path and its harness."""
    config = yaml.safe_load(QUICKSTART.read_text())
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    config["trainer"].update(max_epochs=1, check_val_every_n_epoch=1, enable_progress_bar=False,
                             enable_model_summary=False)
    config["trainer"]["logger"]["init_args"]["tracking_uri"] = uri
    harness = _harness(config)
    harness.update(steps=2, budget=8, batch_size=3, grid_items=2, bootstrap_resamples=200,
                   final={**harness["final"], "prompt_source": "shapes:test:0-1", "seeds": "0-1"})
    stability = next(m for m in harness["methods"] if m["name"] == "stability_k4")
    stability["method"]["init_args"]["score"]["init_args"]["steps"] = 1  # a round trip of 2 evaluations
    data = config["data"]["init_args"]
    data.update(batch_size=2, val_fraction=0.25)
    data["collect"].update(prompt_source="shapes:train:4", num_steps=2, batch_size=2, shard_size=2,
                           mlflow_tracking_uri=uri, progress=False)
    path = tmp_path / "quickstart_small.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, harness


def expected_evaluations(harness: dict) -> dict[str, float]:
    """Denoiser evaluations per image of each method, from the settings (one evaluation a step without guidance)."""
    steps, budget, round_trip = harness["steps"], harness["budget"], 2 * 1  # 1-step round trip: down and back up
    k = (budget - steps) // round_trip  # stability: round trips the budget pays after the final sampling
    n = budget // steps  # best-of-n: full samplings the budget pays
    return {"gaussian": steps, "cfg3": 2 * steps, "npnet": steps, "npnet_shipped": steps,
            "noiserefine_shipped": steps + 2,  # one refiner call: the LoRA UNet and the base UNet
            "stability_k4": k * round_trip + steps, "bestofn_soft": n * steps}


def test_quickstart_collects_trains_and_evaluates_every_method_into_mlflow(tmp_path, capsys):
    config, harness = shrunk_config(tmp_path)
    main(["fit", "--config", str(config)])
    out = capsys.readouterr().out
    shards = sorted((tmp_path / "data" / "npd" / "quickstart").rglob("shard-*.safetensors"))
    assert len(shards) == 2 and "NPD: collecting into data/npd/quickstart" in out

    table = out[out.index("Final evaluation (4 prompt-seed pairs"):].splitlines()
    rows = {line.split()[0]: line.split() for line in table[3:10]}
    expected = expected_evaluations(harness)
    assert list(rows) == list(expected)  # every method: the baselines, the trained NPNet, the configured ones
    for method, evaluations in expected.items():
        assert float(rows[method][2]) == evaluations, method
    assert "MLflow UI: make ui" not in out  # the store is not the default one: the full command is printed
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlruns.db" in out

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    (fit,) = [r for r in runs if r.info.run_name == "quickstart"]
    (collection,) = [r for r in runs if r.info.run_name == "collect-quickstart"]
    assert collection.data.metrics["count"] == 4
    assert fit.data.params["config/data/init_args/collect/prompt_source"] == "shapes:train:4"
    for method, evaluations in expected.items():
        assert fit.data.metrics[f"test/{method}/cost/evaluations"] == evaluations
    for method in GOLDEN + ("cfg3",):
        low, high = (fit.data.metrics[f"test/{method}/{KEY}/delta_ci95_{end}"] for end in ("low", "high"))
        assert low <= fit.data.metrics[f"test/{method}/{KEY}/delta"] <= high
    artifacts = {a.path for a in client.list_artifacts(fit.info.run_id)}
    (best,) = [path for path in artifacts if path.startswith("epoch=")]  # the checkpoints' folders
    for checkpoint in (best, "last"):
        assert f"{checkpoint}/{checkpoint}.ckpt" in {a.path for a in client.list_artifacts(fit.info.run_id, checkpoint)}
    assert "config.yaml" in artifacts
    assert {a.path for a in client.list_artifacts(fit.info.run_id, "test")} == {
        "test/grid.png", "test/samples.parquet", "test/table.txt"}
    samples = pq.read_table(client.download_artifacts(fit.info.run_id, "test/samples.parquet", str(tmp_path)))
    assert samples.num_rows == 4 * len(expected)  # every pair of every method

    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == fit.info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(expected)
    child = next(r for r in children if r.info.run_name == "noiserefine_shipped")
    assert child.data.metrics[f"{KEY}/delta"] == fit.data.metrics[f"test/noiserefine_shipped/{KEY}/delta"]

    data = yaml.safe_load(config.read_text())["data"]["init_args"]  # a second run's data module reuses the NPD
    written = [p.stat().st_mtime_ns for p in shards]
    NoisePairDataModule(**{**data, "collect": CollectConfig(**data["collect"])}).prepare_data()
    assert "NPD: reusing the complete collection in data/npd/quickstart" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in shards] == written


def test_the_npd_is_collected_into_the_dataset_path_only(tmp_path):
    with pytest.raises(ValueError, match=r"collect.output_dir \(elsewhere\) is not the dataset's path"):
        NoisePairDataModule("data/npd/a", collect=CollectConfig(output_dir="elsewhere", backbone="shapes"))
    data = NoisePairDataModule("data/npd/a", collect=CollectConfig(backbone="shapes"))
    assert data.collect.output_dir == "data/npd/a"


@pytest.mark.slow
def test_quickstart_as_shipped_finds_a_golden_noise_method_ahead_of_gaussian(tmp_path):
    """The shipped config end to end (minutes on a CPU), as ``make quickstart`` runs it."""
    result = subprocess.run([sys.executable, "-m", "goldennoise", "fit", "--config", str(QUICKSTART)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MLflow UI: make ui" in result.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    (fit,) = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id],
                                filter_string="attributes.run_name = 'quickstart'")
    metrics = fit.data.metrics
    ahead = [m for m in GOLDEN if metrics[f"test/{m}/{KEY}/delta_ci95_low"] > 0]
    assert ahead, json.dumps({m: metrics[f"test/{m}/{KEY}/delta"] for m in GOLDEN})
    assert metrics[f"test/cfg3/{KEY}/delta_ci95_low"] > 0  # the guided reference beats unguided sampling
