"""Every configs/noiserefine/*.yaml parses and builds its NoiseRefineModule, harness and data through the CLI, and
its training step (gradient checkpointing where the config asks for it) backpropagates into the LoRA.

The SD configs name hub models that are not on disk in tests: their backbones are swapped for the tiny SD model
(rank 4) and their CLIPScore for tiny random weights; everything else is the config's own.
"""

from pathlib import Path

import pytest
import yaml
from noiserefine_data import teacher_loader, teacher_records

from goldennoise.cli import GoldenNoiseCLI
from goldennoise.lit import NoiseMethodHarness, NoiseRefineModule
from goldennoise.noise.noiserefine import lora_parameters

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "noiserefine"
CASES = {  # config files (composed left to right) → (rank, rollout steps, lr, harness baselines, checkpointing)
    "shapes": (["shapes.yaml"], 32, 20, 1e-3, {"gaussian": 1.0, "cfg3": 3.0}, False),
    "sd21": (["sd21.yaml"], 128, 10, 1e-4, {"gaussian": 1.0, "cfg7.5": 7.5}, True),
    "sd21_768v": (["sd21.yaml", "sd21_768v.yaml"], 128, 10, 1e-4, {"gaussian": 1.0, "cfg7.5": 7.5}, True),
}


def _offline_copy(name: str, tmp_path: Path) -> Path:
    """The config with offline stand-ins: tiny SD for hub backbones, tiny weights for non-shapes metrics."""
    config = yaml.safe_load((CONFIGS / name).read_text())
    model = config.get("model", {}).get("init_args", {})
    if model.get("backbone", "shapes") != "shapes":
        model.update(backbone="tiny-sd")
    for callback in config.get("trainer", {}).get("callbacks") or []:
        args = callback.get("init_args", {})
        if args.get("backbone", "shapes") != "shapes":
            args["backbone"] = "tiny-sd"
        for metric in args.get("metrics") or []:
            if metric["class_path"] != "goldennoise.metrics.ShapesAlignment":
                metric.setdefault("init_args", {})["model"] = "tiny"
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_builds_the_refiner_and_the_harness(name, tmp_path):
    files, rank, steps, lr, baselines, checkpointing = CASES[name]
    args = [a for f in files for a in ("--config", str(_offline_copy(f, tmp_path)))]
    if name != "shapes":
        args += ["--model.rank", "4"]  # the tiny UNet's layers allow no more
    cli = GoldenNoiseCLI(args=[*args, "--trainer.logger=false"], run=False)
    model = cli.model
    assert isinstance(model, NoiseRefineModule)
    assert model.config.rank == (rank if name == "shapes" else 4) and model.config.output == "residual"
    assert model.hparams.rollout_steps == steps and model.hparams.lr == lr
    assert model.hparams.gradient_checkpointing == checkpointing
    assert model.config.refiner_timestep(model.backbone) == 999
    harness = [c for c in cli.trainer.callbacks if isinstance(c, NoiseMethodHarness)]
    assert len(harness) == 1 and harness[0].baselines == baselines and harness[0].guidance_scale == 1.0
    if name == "shapes":
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 970_240

    records = teacher_records(model.backbone, ["a red circle left of a blue square", "a green cross"], [0, 1],
                              image_size=model.backbone.default_size if name == "shapes" else 64)
    model.training_step(next(iter(teacher_loader(records))), 0).backward()
    assert all(p.grad is not None for p in lora_parameters(model.backbone))
