"""Every configs/npnet/*.yaml parses and builds its NPNetModule and callbacks through the CLI (offline, no weights)."""

import json
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

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


SDXL_FILES = {"unet/config.json": {"in_channels": 4, "sample_size": 128, "cross_attention_dim": 2048},
              "tokenizer/tokenizer_config.json": {"model_max_length": 77}}
STAND_INS = {  # the config values of the hub backbones NPNet reads its dimensions from (no weights)
    "stabilityai/stable-diffusion-xl-base-1.0": SDXL_FILES,
    "lykon/dreamshaper-xl-v2-turbo": SDXL_FILES,
    "Tencent-Hunyuan/HunyuanDiT-v1.2-Diffusers": {"transformer/config.json": {
        "in_channels": 4, "sample_size": 128, "cross_attention_dim": 1024, "text_len": 77, "text_len_t5": 256}},
}
DIMS = {"sdxl": (77, 2048), "dreamshaper_xl": (77, 2048), "hunyuan_dit": (77, 1024), "shapes": (16, 64)}


def _stand_in(backbone: str, tmp_path: Path) -> str:
    """A folder holding only the config files of ``backbone`` (offline tests cannot reach the hub)."""
    folder = tmp_path / backbone.replace("/", "--")
    for name, content in STAND_INS[backbone].items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(content))
    return str(folder)


def _offline_copy(name: str, tmp_path: Path) -> Path:
    """The config with tiny random scorer weights for the harness metrics (the real ones would download) and
    stand-in folders for the hub backbones NPNet takes its dimensions from."""
    config = yaml.safe_load((CONFIGS / name).read_text())
    model = (config.get("model") or {}).get("init_args") or {}
    if model.get("backbone") in STAND_INS:
        model["backbone"] = _stand_in(model["backbone"], tmp_path)
    callbacks = config["trainer"].get("callbacks") or []
    for callback in [callbacks] if isinstance(callbacks, dict) else callbacks:  # an overlay's {init_args: ...}
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
    net = cli.model.net.config
    assert (net.text_len, net.text_dim) == DIMS[name] and cli.model.hparams.net["text_dim"] == DIMS[name][1]
    found = [c for c in cli.trainer.callbacks if isinstance(c, NoiseMethodHarness)]
    assert [(c.backbone_name, c.guidance_scale) for c in found] == ([harness] if harness else [])
    assert all(c.backbone is None and len(c.prompts) == 4 and c.metrics for c in found)  # the backbone loads in setup
    checkpoints = [c for c in cli.trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert len(checkpoints) == 2 and all(c.dirpath is None for c in checkpoints)  # per run, under default_root_dir
    assert cli.trainer.default_root_dir == f"runs/npnet_{name}"


def test_npnet_dimensions_come_from_the_backbone(shapes):
    from goldennoise.lit.npnet import backbone_dims

    dims = backbone_dims("shapes")
    cond, _ = shapes.encode_prompt(["a red circle"])
    assert (dims["latent_channels"], dims["latent_size"], dims["latent_size"]) == shapes.latent_shape()
    assert (dims["text_len"], dims["text_dim"]) == tuple(cond.embeds.shape[1:])
    explicit = NPNetModule(net={"text_dim": 64, "text_len": 16, "latent_channels": 4, "latent_size": 8},
                           swin_init="random")  # no backbone: the dimensions given are kept
    assert explicit.net.config == NPNetModule(backbone="shapes", net={"text_dim": 1}, swin_init="random").net.config


def test_unreadable_backbone_dimensions_are_named(tmp_path):
    with pytest.raises(ValueError, match="Cannot read NPNet's dimensions from backbone .*model.init_args.net"):
        NPNetModule(backbone=str(tmp_path / "nothing-here"), swin_init="random")
