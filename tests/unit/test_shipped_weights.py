"""Exports never overwrite the weights shipped inside the package unless asked to (``overwrite_shipped``)."""

import hashlib
import re
from pathlib import Path

import pytest
import torch
import yaml

from goldennoise import shipped
from goldennoise.backbones.loading import SHAPES_DIR
from goldennoise.lit.shapes_diffusion import ShapesDiffusionModule
from goldennoise.lit.shapes_vae import ShapesVAEModule
from goldennoise.noise.npnet_checkpoint import BUILTIN_WEIGHTS, save_npnet_state

ROOT = Path(__file__).resolve().parents[2]
REFUSED = r"inside the installed goldennoise package .* overwrite_shipped=True"


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def package_untouched():
    before = _digest(shipped.PACKAGE_DIR)
    yield
    assert _digest(shipped.PACKAGE_DIR) == before


def _tiny_diffusion(**kwargs) -> ShapesDiffusionModule:
    return ShapesDiffusionModule(vae=str(SHAPES_DIR / "vae"), block_out_channels=(16, 32), text_hidden_size=32,
                                 text_layers=1, **kwargs)


def test_training_modules_refuse_an_export_dir_in_the_package_before_training(package_untouched, monkeypatch):
    monkeypatch.chdir(shipped.PACKAGE_DIR.parent)  # the README's relative path, from a checkout
    with pytest.raises(ValueError, match=rf"export_dir 'goldennoise/backbones/weights/shapes' is {REFUSED}"):
        _tiny_diffusion(export_dir="goldennoise/backbones/weights/shapes")
    with pytest.raises(ValueError, match=rf"export_dir '{re.escape(str(SHAPES_DIR / 'vae'))}' is {REFUSED}"):
        ShapesVAEModule(export_dir=str(SHAPES_DIR / "vae"))
    assert _tiny_diffusion(export_dir=str(SHAPES_DIR), overwrite_shipped=True).hparams.overwrite_shipped


def test_exports_into_the_package_are_refused(package_untouched):
    module = _tiny_diffusion()
    with pytest.raises(ValueError, match=REFUSED):
        module.export(SHAPES_DIR)
    with pytest.raises(ValueError, match=REFUSED):
        save_npnet_state({"alpha": torch.zeros(())}, BUILTIN_WEIGHTS["shapes"])


def test_overwrite_shipped_writes_into_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "PACKAGE_DIR", tmp_path / "package")  # a stand-in package, not the real one
    target = tmp_path / "package" / "weights" / "npnet.safetensors"
    with pytest.raises(ValueError, match=REFUSED):
        save_npnet_state({"alpha": torch.zeros(())}, target)
    assert not target.exists()
    save_npnet_state({"alpha": torch.zeros(())}, target, overwrite_shipped=True)
    assert target.is_file()


def test_documented_commands_and_configs_export_outside_the_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [match[1] for match in re.finditer(r"--model\.init_args\.export_dir (\S+)(.*)", readme)
               if "overwrite_shipped true" not in match[2]]
    for config in sorted((ROOT / "configs").rglob("*.yaml")):
        args = (yaml.safe_load(config.read_text(encoding="utf-8")).get("model") or {}).get("init_args") or {}
        targets += [args["export_dir"]] if args.get("export_dir") and not args.get("overwrite_shipped") else []
    assert targets and not [t for t in targets if shipped.inside_package(ROOT / t)], targets
