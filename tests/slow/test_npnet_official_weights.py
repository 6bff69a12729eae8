"""The released NPNet weights (sdxl.pth, dreamshaper.pth, dit.pth) load strictly and give unit-variance noise.

Opt in with ``-m slow`` and put the files in ``$GOLDENNOISE_NPNET_DIR`` (Google Drive link in the Golden-Noise README,
or the Hugging Face repo ``Klayand/GoldenNoiseModel``); missing files are skipped. Official outputs depend on the SVD
backend (docs/npnet.md §1.3), so this checks loading, dims and output statistics, not golden values.
"""

import os
from pathlib import Path

import pytest
import torch

from goldennoise.noise import NPNetPlugin, export_npnet, load_npnet, read_npnet_state

WEIGHTS = Path(os.environ.get("GOLDENNOISE_NPNET_DIR", "~/.cache/goldennoise/npnet")).expanduser()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "text_dim"), [("sdxl.pth", 2048), ("dreamshaper.pth", 2048), ("dit.pth", 1024)])
def test_official_weights_load_strictly(name, text_dim, tmp_path):
    path = WEIGHTS / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    net = load_npnet(path)  # strict
    assert net.config.text_dim == text_dim and net.config.latent_size == 128
    device = "cuda" if torch.cuda.is_available() else "cpu"
    plugin = NPNetPlugin(net.to(device))
    gen = torch.Generator().manual_seed(0)
    noise, embeds = torch.randn(1, 4, 128, 128, generator=gen), torch.randn(1, 77, text_dim, generator=gen)
    golden = plugin(noise.half(), embeds)
    assert golden.dtype == torch.float16 and torch.isfinite(golden).all()
    assert 0.5 < golden.float().std().item() < 2.0
    export_npnet(path, tmp_path / name)  # .pth → .pth reproduces every tensor
    exported = read_npnet_state(tmp_path / name)
    for key, value in read_npnet_state(path).items():
        assert torch.equal(exported[key], value), key
