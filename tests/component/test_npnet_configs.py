"""Every configs/npnet/*.yaml parses and builds its NPNetModule and callbacks through the CLI (offline, no weights)."""

from pathlib import Path

import pytest
import yaml

from goldennoise.cli import GoldenNoiseCLI
from goldennoise.lit import NoiseMethodHarness
from goldennoise.lit.npnet import NPNetModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "npnet"
CASES = {  # config files (composed left to right) → expected NPNet parameter total, harness (backbone, guidance)
    "sdxl": (["sdxl.yaml"], 30_470_427, ("stabilityai/stable-diffusion-xl-base-1.0", 5.5)),
    "dreamshaper_xl": (["sdxl.yaml", "dreamshaper_xl.yaml"], 30_470_427, ("lykon/dreamshaper-xl-v2-turbo", 3.5)),
    "hunyuan_dit": (["sdxl.yaml", "hunyuan_dit.yaml"], 29_839_643, ("Tencent-Hunyuan/HunyuanDiT-v1.2-Diffusers", 5.0)),
    "shapes": (["shapes.yaml"], None, ("shapes", 1.0)),
}


def _offline_copy(name: str, tmp_path: Path) -> Path:
    """The config with tiny random scorer weights for the harness metrics (the real ones would download)."""
    config = yaml.safe_load((CONFIGS / name).read_text())
    for callback in config["trainer"].get("callbacks") or []:
        for metric in callback.get("init_args", {}).get("metrics") or []:
            if metric["class_path"] != "goldennoise.metrics.ShapesAlignment":
                metric.setdefault("init_args", {})["model"] = "tiny"
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_builds_the_network_and_the_harness(name, tmp_path):
    files, total, harness = CASES[name]
    args = [a for f in files for a in ("--config", str(_offline_copy(f, tmp_path)))]
    cli = GoldenNoiseCLI(args=[*args, "--trainer.logger=false"], run=False)
    assert isinstance(cli.model, NPNetModule)
    params = sum(p.numel() for p in cli.model.net.parameters())
    if total is not None:
        assert params == total
    else:
        assert cli.model.net.latent_shape == (4, 8, 8) and params < 300_000
    assert cli.model.hparams.lr == 1e-4 and cli.model.hparams.weight_decay == 0.01
    found = [c for c in cli.trainer.callbacks if isinstance(c, NoiseMethodHarness)]
    assert [(c.backbone_name, c.guidance_scale) for c in found] == ([harness] if harness else [])
    assert all(c.backbone is None and len(c.prompts) == 4 and c.metrics for c in found)  # the backbone loads in setup
