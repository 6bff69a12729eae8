"""Every configs/npnet/*.yaml parses and builds its NPNetModule through the CLI (backbones off: offline, no weights)."""

from pathlib import Path

import pytest

from goldennoise.cli import GoldenNoiseCLI
from goldennoise.lit.npnet import NPNetModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "npnet"
CASES = {  # config files (composed left to right) → expected NPNet parameter total
    "sdxl": (["sdxl.yaml"], 30_470_427),
    "dreamshaper_xl": (["sdxl.yaml", "dreamshaper_xl.yaml"], 30_470_427),
    "hunyuan_dit": (["sdxl.yaml", "hunyuan_dit.yaml"], 29_839_643),
    "shapes": (["shapes.yaml"], None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_builds_the_network(name):
    files, total = CASES[name]
    args = [a for f in files for a in ("--config", str(CONFIGS / f))]
    args += ["--model.init_args.backbone=null", "--model.init_args.metrics=null", "--trainer.logger=false",
             "--trainer.callbacks=[]"]
    cli = GoldenNoiseCLI(args=args, run=False)
    assert isinstance(cli.model, NPNetModule)
    params = sum(p.numel() for p in cli.model.net.parameters())
    if total is not None:
        assert params == total
    else:
        assert cli.model.net.latent_shape == (4, 8, 8) and params < 300_000
    assert cli.model.hparams.lr == 1e-4 and cli.model.hparams.weight_decay == 0.01
