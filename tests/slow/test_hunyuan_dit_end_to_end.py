"""configs/npd/hunyuan_dit.yaml → configs/npnet/hunyuan_dit.yaml → evaluate, end to end on the tiny Hunyuan-DiT.

The tiny model has the real first-encoder width (1024) and latent size (4 × 128 × 128), so the collected pairs and
the DiT-sized NPNet (29,839,643 parameters) are the real shapes; only the weights, prompts, steps and scorers are
swapped for offline ones.
"""

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from goldennoise.cli import main

ROOT = Path(__file__).resolve().parents[2]
NPD, SDXL, DIT = (ROOT / "configs" / "npd" / "hunyuan_dit.yaml", ROOT / "configs" / "npnet" / "sdxl.yaml",
                  ROOT / "configs" / "npnet" / "hunyuan_dit.yaml")
PROMPTS = ["a red fox in the snow", "一只猫"]
TINY_METRIC = {"class_path": "goldennoise.metrics.CLIPScore", "init_args": {"model": "tiny"}}


def _dit_overlay(tmp_path: Path, npd: Path) -> Path:
    """hunyuan_dit.yaml with its harness on the tiny model and the data on the collected pairs."""
    config = yaml.safe_load(DIT.read_text())
    config["trainer"]["callbacks"]["init_args"].update(  # the overlay changes sdxl.yaml's harness
        backbone="tiny-hunyuan-dit", backbone_dtype="float32", prompts=PROMPTS, steps=2, metrics=[TINY_METRIC])
    config["data"]["init_args"].update(path=str(npd), metric=None)
    config["model"]["init_args"] = {"backbone": None, "net": {"text_dim": 1024}}  # the hub config is offline
    path = tmp_path / "dit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_collect_fit_evaluate_on_the_tiny_hunyuan_dit(tmp_path):
    npd = tmp_path / "npd"
    collected = main(["collect", "--config", str(NPD), "--backbone", "tiny-hunyuan-dit", "--backbone_dtype", "float32",
                      "--prompt_source", "null", "--max_prompts", "null", "--prompts", yaml.safe_dump(PROMPTS),
                      "--seeds", "0-1", "--num_steps", "2", "--scorers", '[{"metric": "hpsv2", "model": "tiny"}]',
                      "--output_dir", str(npd), "--batch_size", "4", "--shard_size", "4", "--accelerator", "cpu",
                      "--mlflow_tracking_uri", "null", "--progress", "false"])
    assert collected["count"] == 4
    main(["fit", "--config", str(SDXL), "--config", str(_dit_overlay(tmp_path, npd)), "--trainer.logger=false",
          "--trainer.max_epochs=1", "--trainer.accelerator=cpu", "--model.init_args.swin_init=random",
          "--data.init_args.batch_size=2", "--data.init_args.num_workers=0", "--data.init_args.val_fraction=0.5",
          f"--trainer.default_root_dir={tmp_path / 'runs'}"])
    (checkpoint,) = (tmp_path / "runs").rglob("last*.ckpt")  # sdxl.yaml's checkpoints: per run, under runs/
    evaluation = {"name": "dit", "backbone": "tiny-hunyuan-dit", "prompts": PROMPTS, "seeds": "0", "steps": 2,
                  "methods": [{"name": "gaussian", "method": {"class_path": "goldennoise.noise.Gaussian"},
                               "guidance_scale": 5.0},
                              {"name": "npnet", "method": {"class_path": "goldennoise.noise.NPNetNoise",
                                                           "init_args": {"checkpoint": str(checkpoint)}},
                               "guidance_scale": 5.0}],
                  "metrics": [TINY_METRIC], "output_dir": str(tmp_path / "eval"), "mlflow_tracking_uri": None,
                  "progress": False, "save_images": "none", "bootstrap_resamples": 50, "accelerator": "cpu"}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(evaluation))
    assert main(["evaluate", "--config", str(path)])["items"] == 2
    table = pq.read_table(tmp_path / "eval" / "samples.parquet").to_pylist()
    assert {(r["method"], r["cost/method/evaluations"], r["cost/sampling/evaluations"]) for r in table} == {
        ("gaussian", 0.0, 4.0), ("npnet", 0.0, 4.0)}
