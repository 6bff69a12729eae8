"""``python -m goldennoise test`` and ``predict`` of a noise-method module through the harness callback.

NPNet (random weights, the shapes dims) on the embedded shapes backbone, 2 prompts × 2 seeds, 2 sampler steps, the
exact shapes alignment; the CLI runs in-process on a config written to ``tmp_path`` and logs to a sqlite MLflow store.
"""

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from mlflow import MlflowClient
from PIL import Image

from goldennoise.cli import main
from goldennoise.data.integrity import read_tensors
from goldennoise.evaluation.harness import MethodSpec, evaluate_batch, initial_noise
from goldennoise.lit import NoiseMethodHarness, NoiseMethodModule
from goldennoise.lit.harness import Collected, merge_grid, merge_records
from goldennoise.metrics import ShapesAlignment
from goldennoise.noise import PRESETS, Gaussian, NoiseMethod, SamplerSettings

PROMPTS = ["a red circle at the center", "a blue square left of a green cross"]
ITEMS = [(p, prompt, seed) for p, prompt in enumerate(PROMPTS) for seed in (0, 1)]
KEY = "shapes_alignment/alignment"
STEPS = 2


def _config(tmp_path, harness: dict | None = None) -> str:
    net = json.loads(json.dumps(PRESETS["shapes"].to_dict()))  # tuples as lists
    harness_args = {"backbone": "shapes", "steps": STEPS, "grid_items": 2, "bootstrap_resamples": 200,
                    "metrics": [{"class_path": "goldennoise.metrics.ShapesAlignment"}],
                    "predict_dir": str(tmp_path / "predictions"), **(harness or {})}
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False,
            "logger": {"class_path": "lightning.pytorch.loggers.MLFlowLogger",
                       "init_args": {"experiment_name": "harness", "tracking_uri": f"sqlite:///{tmp_path}/mlruns.db"}},
            "callbacks": [{"class_path": "goldennoise.lit.NoiseMethodHarness", "init_args": harness_args}],
        },
        "model": {"class_path": "goldennoise.lit.NPNetModule", "init_args": {"net": net, "swin_init": "random"}},
        "data": {"class_path": "goldennoise.data.PromptSeedDataModule",
                 "init_args": {"prompts": PROMPTS, "seeds": "0-1", "batch_size": 3}},  # batches of 3 and 1 pairs
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _run(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    (run,) = client.search_runs([client.get_experiment_by_name("harness").experiment_id])
    return client, run


def test_test_logs_means_paired_delta_costs_and_artifacts(tmp_path, shapes, capsys):
    cli = main(["test", "--config", _config(tmp_path)])
    client, run = _run(tmp_path)
    metrics = run.data.metrics
    records, _ = evaluate_batch(shapes, ITEMS, [MethodSpec("gaussian", Gaussian()),
                                                MethodSpec("npnet", cli.model.noise_method())],
                                [ShapesAlignment()], SamplerSettings(steps=STEPS))
    expected = {m: sum(r["scores"][KEY] for r in records if r["method"] == m) / len(ITEMS)
                for m in ("gaussian", "npnet")}
    for method, mean in expected.items():  # the 4 pairs of the data module, whatever the batching
        assert metrics[f"test/{method}/{KEY}/mean"] == pytest.approx(mean)
    assert metrics[f"test/npnet/{KEY}/delta"] == pytest.approx(expected["npnet"] - expected["gaussian"])
    low, high = metrics[f"test/npnet/{KEY}/delta_ci95_low"], metrics[f"test/npnet/{KEY}/delta_ci95_high"]
    assert low <= metrics[f"test/npnet/{KEY}/delta"] <= high
    assert metrics["test/npnet/cost/sampling/evaluations"] == STEPS  # guidance 1: one evaluation a step
    assert f"test/gaussian/{KEY}/delta" not in metrics  # the baseline has no Δ against itself
    artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id, "test"))
    assert artifacts == ["test/grid.png", "test/samples.parquet", "test/table.txt"]
    import pyarrow.parquet as pq

    table = pq.read_table(client.download_artifacts(run.info.run_id, "test/samples.parquet")).to_pylist()
    assert sorted((r["method"], r["prompt_id"], r["seed"]) for r in table) == sorted(
        (m, p, s) for m in ("gaussian", "npnet") for p, _, s in ITEMS)
    out = capsys.readouterr().out
    assert "Test of npnet (4 prompt-seed pairs)" in out and "Δ vs gaussian" in out


def test_predict_writes_images_and_noises(tmp_path, shapes, capsys):
    cli = main(["predict", "--config", _config(tmp_path, {"guidance_scale": 3.0})])
    assert f"of npnet in {tmp_path / 'predictions'}" in capsys.readouterr().out
    folder = tmp_path / "predictions"
    names = [f"{i:06d}.{ext}" for i in range(len(ITEMS)) for ext in ("png", "safetensors")]
    assert sorted(p.name for p in folder.iterdir()) == names
    for index, (_, prompt, seed) in enumerate(ITEMS):
        image = Image.open(folder / f"{index:06d}.png")
        assert image.size == (32, 32) and image.text["prompt"] == prompt and image.text["seed"] == str(seed)
        tensors = read_tensors(folder / f"{index:06d}.safetensors")
        ctx, noise = initial_noise(shapes, [prompt], [seed], SamplerSettings(steps=STEPS))
        torch.testing.assert_close(tensors["noise"], noise[0])
        torch.testing.assert_close(tensors["method_noise"], cli.model.noise_method()(noise, ctx)[0])


def test_predict_without_a_folder_and_test_without_the_harness_are_refused(tmp_path, capsys):
    for command, overrides, message in (("predict", {"predict_dir": None}, "NoiseMethodHarness needs predict_dir"),
                                        ("test", None, "add goldennoise.lit.NoiseMethodHarness")):
        extra = ["--trainer.callbacks=[]"] if command == "test" else []
        with pytest.raises(SystemExit) as info:  # a user error: one line, exit code 2
            main([command, "--config", _config(tmp_path, overrides or {}), *extra])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.glob("predictions"))


class StepDownhill(NoiseMethod):
    """A method that needs gradients: one gradient step on ‖x − 1‖² from the noise (then back to unit variance)."""

    def forward(self, noise, ctx):
        with torch.enable_grad():
            x = noise.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad((x - 1).pow(2).sum(), x)
        out = x.detach() - 0.1 * grad
        return (out - out.mean()) / out.std()


class Downhill(NoiseMethodModule):
    method_name = "downhill"

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def noise_method(self) -> NoiseMethod:
        return StepDownhill()


@pytest.mark.parametrize("inference_mode", [True, False])
def test_a_method_that_needs_gradients_runs_under_either_inference_mode(inference_mode):
    from goldennoise.data import PromptSeedDataModule

    harness = NoiseMethodHarness(backbone="shapes", steps=STEPS, metrics=[ShapesAlignment()], bootstrap_resamples=50)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[harness],
                        inference_mode=inference_mode)
    trainer.test(Downhill(), PromptSeedDataModule(prompts=PROMPTS, seeds="0", batch_size=2))
    logged = trainer.callback_metrics
    assert f"test/downhill/{KEY}/mean" in logged and f"test/downhill/{KEY}/delta" in logged


def test_ranks_merge_in_item_order_without_padded_duplicates():
    def records(items, method="m"):
        return [{"prompt": prompt, "seed": seed, "method": method} for _, prompt, seed in items]

    image = {"m": torch.zeros(2, 3, 4, 4)}
    rank0, rank1 = Collected(), Collected()
    # 3 items over 2 ranks: rank 0 takes items 0 and 2, rank 1 takes item 1 and item 0 again (sampler padding)
    rank0.add([ITEMS[0], ITEMS[2]], records([ITEMS[0], ITEMS[2]]), image, rank=0, world=2, grid_items=2)
    rank1.add([ITEMS[1], ITEMS[0]], records([ITEMS[1], ITEMS[0]]), image, rank=1, world=2, grid_items=2)
    merged = merge_records([rank1, rank0])
    assert [(r["prompt"], r["seed"], r["index"]) for r in merged] == [
        (ITEMS[0][1], 0, 0), (ITEMS[1][1], 1, 1), (ITEMS[2][1], 0, 2)]
    assert [r["prompt_id"] for r in merged] == [0, 0, 1]
    labels, grid = merge_grid([rank1, rank0], grid_items=2)
    assert labels == [f"{ITEMS[0][1]} (seed 0)", f"{ITEMS[1][1]} (seed 1)"] and grid["m"].shape == (2, 3, 4, 4)


@pytest.mark.slow  # spawns two gloo processes: half a minute on 2 cores
def test_ddp_ranks_log_what_one_process_logs(tmp_path):
    """2 gloo processes split the validation items and the test batches, gather them and log one process's numbers."""
    worker = Path(__file__).with_name("harness_ddp_worker.py")
    result = subprocess.run([sys.executable, str(worker), str(tmp_path)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    single, *ranks = (torch.load(tmp_path / name, weights_only=True)
                      for name in ("1proc_rank0.pt", "2proc_rank0.pt", "2proc_rank1.pt"))
    assert f"val/gen/delta/{KEY}" in single and f"test/npnet/{KEY}/delta_ci95_low" in single
    assert ranks[0] == ranks[1] == pytest.approx(single)


def test_the_shipped_shapes_config_tests_on_a_prompt_list(tmp_path, capsys):
    """The command line of configs/npnet/shapes.yaml's header: its harness evaluates, the data module swapped."""
    config = Path(__file__).resolve().parents[2] / "configs" / "npnet" / "shapes.yaml"
    main(["test", "--config", str(config), "--data", "goldennoise.data.PromptSeedDataModule",
          f"--data.prompts=[{PROMPTS[0]}]", "--data.seeds=0",
          f"--trainer.logger.init_args.tracking_uri=sqlite:///{tmp_path}/shipped.db"])
    client = MlflowClient(f"sqlite:///{tmp_path}/shipped.db")
    (run,) = client.search_runs([client.get_experiment_by_name("npnet").experiment_id])
    assert run.data.metrics["test/npnet/cost/sampling/evaluations"] == 10  # the config's 10 steps without guidance
    assert f"test/npnet/{KEY}/delta" in run.data.metrics
    assert "Test of npnet (1 prompt-seed pairs)" in capsys.readouterr().out


@pytest.mark.parametrize(("settings", "message"), [
    ({"methods": [MethodSpec("gaussian", Gaussian())]}, "names must be unique"),
    ({"methods": [MethodSpec("a/b", Gaussian())]}, "Method names may hold"),
    ({"budget": 0}, "budget must be positive"),
])
def test_further_methods_and_budget_are_checked_before_anything_loads(settings, message):
    with pytest.raises(ValueError, match=message):
        NoiseMethodHarness(backbone="shapes", **settings)


def test_the_final_evaluation_pairs_every_prompt_with_its_own_seeds():
    from goldennoise.lit.harness import FinalEvaluation

    final = FinalEvaluation(prompt_source="shapes:test:0-2", seeds="10-11")
    assert [(p, seed) for p, _, seed in final.items()] == [(0, 10), (0, 11), (1, 12), (1, 13), (2, 14), (2, 15)]
    with pytest.raises(ValueError, match="weights must be 'best' or 'last'"):
        FinalEvaluation(prompt_source="shapes:test:0-2", weights="worst")
    with pytest.raises(ValueError, match="shapes:<split>"):
        FinalEvaluation(prompt_source="shapes:tset:0-2")
