"""``python -m goldennoise``: config composition, MLflow logging, checkpoints and errors, run from Python."""

import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from goldennoise.cli import GoldenNoiseCLI, main
from goldennoise.lit import RedenoiseRegressionModule

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
SHAPES_VAE = str(ROOT / "configs" / "backbone" / "shapes_vae.yaml")
NPNET_SHAPES = str(ROOT / "configs" / "npnet" / "shapes.yaml")
FAST = ["--trainer.max_epochs=1", "--data.init_args.seeds=0-1"]
CHECKPOINT = "lightning.pytorch.callbacks.ModelCheckpoint"


def smoke_runs(tracking_uri: str = "sqlite:///mlruns.db"):
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.search_runs(experiment_names=["smoke"])


@pytest.mark.slow  # a whole fit in a fresh process (about 25 s); in-process fits and a fresh --help run by default
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
    summary = result.stdout[result.stdout.index("fit finished"):].splitlines()  # the closing summary, labelled
    assert summary[1] == "  metrics:" and summary[2].split() == ["train/loss", f"{run['metrics.train/loss']:.4g}"]
    assert summary[5].startswith(f"  MLflow run: {run['run_id']} in experiment 'smoke'")
    assert summary[6] == f"  checkpoint: {checkpoints[0].relative_to(tmp_path)}"
    assert "Tip:" not in result.stderr and "LeafSpec" not in result.stderr  # Lightning's adverts, torch's deprecation


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
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: No model folder at '/no/such/model'")


def printed_config(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit) as info:
        main(["fit", *args, "--print_config"])
    assert info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_a_later_config_or_flag_replaces_the_callbacks_list(tmp_path, capsys):
    """shapes_vae.yaml's checkpoint callback sets save_last and save_top_k; a later list must not inherit them."""
    overlay = tmp_path / "callbacks.yaml"
    overlay.write_text(f"trainer:\n  callbacks:\n    - class_path: {CHECKPOINT}\n      init_args: {{dirpath: here}}\n")
    flag = f'[{{"class_path": "{CHECKPOINT}", "init_args": {{"dirpath": "here"}}}}]'
    for args in (["--config", str(overlay)], ["--trainer.callbacks", flag]):
        (callback,) = printed_config(capsys, "--config", SHAPES_VAE, *args)["trainer"]["callbacks"]
        assert callback["init_args"]["dirpath"] == "here"
        assert callback["init_args"]["save_last"] is None and callback["init_args"]["save_top_k"] == 1, args
    appended = printed_config(capsys, "--config", SHAPES_VAE, f"--trainer.callbacks+={CHECKPOINT}")
    assert [c["init_args"]["save_top_k"] for c in appended["trainer"]["callbacks"]] == [-1, 1]  # += appends


def test_a_later_metrics_list_replaces_the_earlier_one(capsys):
    """The harness callback (the last of shapes.yaml's callbacks) gets a tuned metrics list, then the default one."""
    tuned = ('--trainer.callbacks.init_args.metrics=[{"class_path": "goldennoise.metrics.ShapesAlignment", '
             '"init_args": {"settings": {"min_value": 0.5}}}]')
    harness = printed_config(capsys, "--config", NPNET_SHAPES, tuned)["trainer"]["callbacks"][-1]
    assert harness["init_args"]["metrics"][0]["init_args"]["settings"]["min_value"] == 0.5
    flag = '[{"class_path": "goldennoise.metrics.ShapesAlignment"}]'  # what shapes.yaml says: default settings
    reset = printed_config(capsys, "--config", NPNET_SHAPES, tuned,
                           f"--trainer.callbacks.init_args.metrics={flag}")["trainer"]["callbacks"][-1]
    original = printed_config(capsys, "--config", NPNET_SHAPES)["trainer"]["callbacks"][-1]
    assert reset["init_args"]["metrics"] == original["init_args"]["metrics"]
    assert reset["init_args"]["metrics"][0]["init_args"]["settings"] is None


def test_an_overlay_with_init_args_only_changes_the_last_callback(tmp_path, capsys):
    """npnet/shapes.yaml's harness is its last callback: init_args alone in a later file change it, as the flag does."""
    overlay = tmp_path / "harness.yaml"
    overlay.write_text("trainer:\n  callbacks:\n    init_args:\n"
                       "      guidance_scale: 3.0\n      prompts: [a red circle]\n")
    original = printed_config(capsys, "--config", NPNET_SHAPES)["trainer"]["callbacks"]
    changed = printed_config(capsys, "--config", NPNET_SHAPES, "--config", str(overlay))["trainer"]["callbacks"]
    flagged = printed_config(capsys, "--config", NPNET_SHAPES, "--trainer.callbacks.init_args.guidance_scale=3.0",
                             "--trainer.callbacks.init_args.prompts=[a red circle]")["trainer"]["callbacks"]
    assert changed == flagged and changed[:-1] == original[:-1] and len(changed) == len(original)
    assert changed[-1]["init_args"] == {**original[-1]["init_args"], "guidance_scale": 3.0,
                                        "prompts": ["a red circle"]}


@pytest.mark.parametrize(("args", "message"), [
    (["--model.init_args.lr=abc"], 'error: Parser key "model": '),
    (["--model.init_args.backbone_dtype=float17"], "error: Unknown dtype 'float17'"),
    (["--data.init_args.seeds=5-1"], "error: Seed range '5-1' in '5-1' runs backwards"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", SMOKE, *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and [line for line in err.splitlines() if line.startswith("error:")] == [
        err.strip().splitlines()[-1]]
    assert err.strip().splitlines()[-1].startswith(message)


def test_yaml_error_in_the_second_config_names_the_file(tmp_path, capsys):
    broken = tmp_path / "second.yaml"
    broken.write_text("model:\n  init_args:\n    lr: [1, 2\n")
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", SMOKE, "--config", str(broken)])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {broken}: not valid YAML: did not find expected ',' or ']' (line 4, column 1)")


def test_truncated_ckpt_path_names_the_file(tmp_path, capsys):
    torch.save({"state_dict": {"mixer.weight": torch.zeros(4, 4, 1, 1)}}, tmp_path / "full.ckpt")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((tmp_path / "full.ckpt").read_bytes()[:200])
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", SMOKE, f"--ckpt_path={truncated}"])
    assert info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith(f"error: Cannot read the checkpoint '{truncated}'")


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "{fit,validate,test,predict,collect,collect-teacher,evaluate,export-refiner,sweep}" in out
    assert "collect Collect a noise prompt dataset (NPD)" in out
    assert "export-refiner Write a NoiseRefine fit's checkpoint as the diffusers/PEFT LoRA file" in out
    assert "sweep Run a fit, collect or evaluate config at every point" in out


def test_fit_help_lists_the_shipped_modules_in_a_fresh_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "goldennoise", "fit", "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = "".join(result.stdout.split())  # help wraps long class paths

    def known_subclasses(base: str) -> list[str]:
        return re.search(rf"type:Optional\[{base}\],default:null,knownsubclasses:([^)]*)\)", out)[1].split(",")

    assert {"goldennoise.lit.NPNetModule", "goldennoise.lit.RedenoiseRegressionModule"} <= set(
        known_subclasses("LightningModule"))
    assert {"goldennoise.data.NoisePairDataModule", "goldennoise.data.ShapesDataModule"} <= set(
        known_subclasses("LightningDataModule"))


def test_a_max_steps_run_shows_no_negative_epoch_total(capsys):
    main(["fit", "--config", SMOKE, "--trainer.max_epochs=null", "--trainer.max_steps=2",
          "--trainer.enable_progress_bar=true", "--data.init_args.seeds=0-1"])
    out = capsys.readouterr().out
    assert re.search(r"Epoch 1 +━", out) and "Epoch 1/" not in out  # Lightning's rich bar: "Epoch 1/-2"
    silent = GoldenNoiseCLI(args=["--config", SHAPES_VAE, "--trainer.enable_progress_bar=false"], run=False)
    assert silent.trainer.progress_bar_callback is None
