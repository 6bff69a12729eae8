"""``python -m goldennoise``: config composition, MLflow logging, checkpoints and errors, run from Python."""

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from goldennoise.cli import main
from goldennoise.lit import RedenoiseRegressionModule

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
FAST = ["--trainer.max_epochs=1", "--data.init_args.seeds=0-1"]


def smoke_runs(tracking_uri: str = "sqlite:///mlruns.db"):
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.search_runs(experiment_names=["smoke"])


def test_smoke_config_runs_as_a_module_and_logs_to_mlflow(tmp_path):
    result = subprocess.run([sys.executable, "-m", "goldennoise", "fit", "--config", SMOKE], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = smoke_runs()
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED"
    assert run["params.config/model/init_args/backbone"] == "tiny-sd"
    assert run["metrics.val/mse"] < run["metrics.val/identity_mse"]  # two epochs already beat the identity map
    artifacts = [a.path for a in MlflowClient().list_artifacts(run["run_id"])]
    assert "config.yaml" in artifacts
    checkpoints = list((tmp_path / "runs").glob(f"*/{run['run_id']}/checkpoints/*.ckpt"))
    assert len(checkpoints) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlruns", "mlruns.db", "runs"]
    assert f"MLflow run {run['run_id']} in experiment 'smoke'" in result.stdout  # the closing summary
    assert f"checkpoint: {checkpoints[0].relative_to(tmp_path)}" in result.stdout


def test_configs_compose_and_dotted_flags_win(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("model:\n  init_args:\n    lr: 0.5\n    num_steps: 4\n")
    main(["fit", "--config", SMOKE, "--config", str(overlay), "--model.init_args.num_steps=6", *FAST])
    run = smoke_runs().iloc[0]
    assert run["params.config/model/init_args/lr"] == "0.5"
    assert run["params.config/model/init_args/num_steps"] == "6"


def test_checkpoint_holds_only_trained_weights_and_reloads_strictly(tmp_path):
    main(["fit", "--config", SMOKE, *FAST])
    (checkpoint,) = (tmp_path / "runs").glob("*/*/checkpoints/*.ckpt")
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    assert sorted(state) == ["mixer.bias", "mixer.weight"]
    model = RedenoiseRegressionModule.load_from_checkpoint(checkpoint)
    torch.testing.assert_close(model.mixer.weight, state["mixer.weight"])
    assert not torch.equal(state["mixer.weight"], torch.eye(4)[:, :, None, None])  # it trained


def test_tracking_uri_and_experiment_are_configurable(tmp_path):
    main(["fit", "--config", SMOKE, *FAST, "--trainer.logger.init_args.tracking_uri=sqlite:///elsewhere.db"])
    assert not (tmp_path / "mlruns.db").exists()
    assert len(smoke_runs("sqlite:///elsewhere.db")) == 1


def test_print_config_shows_the_resolved_config(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", SMOKE, "--model.init_args.lr=0.3", "--print_config"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "goldennoise.lit.RedenoiseRegressionModule" in out and "lr: 0.3" in out


@pytest.mark.parametrize("bad", ["--model.init_args.learning_rat=1", "--trainer.max_epoch=1"])
def test_unknown_key_is_named_and_exits_nonzero(capsys, bad):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", SMOKE, bad])
    assert info.value.code != 0
    assert bad.split("=")[0].split(".")[-1] in capsys.readouterr().err


def test_unknown_key_in_a_config_file_is_named(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("model:\n  init_args:\n    guidance: 3\n")
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", SMOKE, "--config", str(broken)])
    assert info.value.code != 0 and "guidance" in capsys.readouterr().err


def test_missing_backbone_gives_one_sentence(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", SMOKE, "--model.init_args.backbone=/no/such/model"])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: No model folder at '/no/such/model'")


def test_validate_subcommand_logs_validation_metrics():
    main(["validate", "--config", SMOKE, "--data.init_args.seeds=0-1"])
    run = smoke_runs().iloc[0]
    assert run["metrics.val/mse"] == pytest.approx(run["metrics.val/identity_mse"])  # untrained: the identity map
