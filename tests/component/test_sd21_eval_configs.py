"""configs/eval/sd21_coco.yaml with its DrawBench overlay through ``goldennoise evaluate`` on the tiny SD model.

The real backbone, refiner and scorers need weights; the copies here swap in the tiny SD model, a rank-4 refiner of
it exported like a trained one (the file named by ``NOISEREFINE_SD21``, as on a GPU machine), tiny random scorers,
one prompt × two seeds and 2 steps, and keep every method with its guidance. The cost columns must follow the
formulas: a guided step costs 2 evaluations, the refiner one LoRA call and its base call per image.
"""

from pathlib import Path

import pyarrow.parquet as pq
import yaml

from goldennoise.backbones import load_backbone
from goldennoise.cli import main
from goldennoise.noise import RefinerConfig, export_refiner
from goldennoise.noise.noiserefine import inject_refiner

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "eval"
STEPS = 2


def _tiny_metrics(metrics: list[dict]) -> list[dict]:
    return [{**m, "init_args": {**m.get("init_args", {}), "model": "tiny"}} for m in metrics]


def test_sd21_eval_configs_run_with_a_refiner_file_and_count_costs(tmp_path, monkeypatch):
    backbone = load_backbone("tiny-sd")
    inject_refiner(backbone, RefinerConfig(rank=4))
    monkeypatch.setenv("NOISEREFINE_SD21", str(export_refiner(backbone, RefinerConfig(rank=4),
                                                              tmp_path / "refiner.safetensors", "tiny-sd")))
    config = yaml.safe_load((CONFIGS / "sd21_coco.yaml").read_text())
    config.update(yaml.safe_load((CONFIGS / "sd21_drawbench.yaml").read_text()))  # the overlay replaces keys whole
    assert config["backbone"] == "stabilityai/stable-diffusion-2-1-base" and config["steps"] == 20
    assert (config["prompt_source"], config["seeds"], config["distinct_seeds"]) == ("drawbench", "0-4", True)
    config.update(backbone="tiny-sd", metrics=_tiny_metrics(config["metrics"]), prompt_source=None,
                  max_prompts=None, prompts=["a red fox"], seeds="0-1", steps=STEPS, output_dir=str(tmp_path / "eval"),
                  mlflow_tracking_uri=None, progress=False, save_images="none", bootstrap_resamples=50,
                  accelerator="cpu")
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["evaluate", "--config", str(path)])["items"] == 2
    table = pq.read_table(tmp_path / "eval" / "samples.parquet").to_pylist()
    costs = {(r["method"], r["guidance_scale"], r["cost/method/evaluations"], r["cost/sampling/evaluations"])
             for r in table}
    assert costs == {("gaussian", 1.0, 0, STEPS), ("cfg7.5", 7.5, 0, 2 * STEPS), ("cfg3", 3.0, 0, 2 * STEPS),
                     ("noiserefine", 1.0, 2, STEPS)}
    assert len({key for r in table for key in r if key.startswith("score/")}) >= 6  # every Table 1 metric scored
