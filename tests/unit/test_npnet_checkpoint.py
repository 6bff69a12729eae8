"""NPNet checkpoint I/O (docs/npnet.md §1.6): official nested .pth, both flat safetensors layouts, Lightning keys."""

import re

import pytest
import torch
from npnet_official_table import official_table, synthetic_official_checkpoint
from safetensors.torch import load_file, save_file

from goldennoise.errors import CheckpointError, MissingWeightsError
from goldennoise.noise import NPNet, NPNetConfig, config_from_state, export_npnet, load_npnet, read_npnet_state
from goldennoise.noise.npnet_checkpoint import flatten_official, nest_official, normalize_flat


def _assert_nested_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _assert_nested_equal(a[key], b[key])
        else:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_official_pth_round_trip(tmp_path):
    """Synthetic official .pth (DiT dims) → strict load → export → reload: same keys, same tensors."""
    nested = synthetic_official_checkpoint(text_dim=1024)
    torch.save(nested, tmp_path / "dit.pth")
    net = load_npnet(tmp_path / "dit.pth")  # strict; dims inferred from the tensors
    assert net.config.text_dim == 1024 and net.config.latent_size == 128
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == official_table(1024)
    export_npnet(net, tmp_path / "out.pth")
    reloaded = torch.load(tmp_path / "out.pth", map_location="cpu", weights_only=True)
    _assert_nested_equal(reloaded, nested)
    assert list(reloaded) == ["unet_svd", "unet_embedding", "embeeding", "alpha", "beta"]
    assert reloaded["alpha"].shape == (1,) and reloaded["alpha"].requires_grad


@pytest.mark.parametrize("layout", ["embeeding", "text_embedding"])
def test_safetensors_layouts_round_trip(tmp_path, layout):
    """Both community layouts (LucipherDev ``embeeding.*``, asagi4 ``text_embedding.*``) load strictly and export."""
    net = NPNet.from_preset("shapes")
    with torch.no_grad():
        net.alpha.fill_(0.25)
    path = export_npnet(net, tmp_path / "npnet.safetensors", layout=layout)
    flat = load_file(str(path))
    assert f"{layout}.linear.weight" in flat and "alpha" in flat and len(flat) == len(net.state_dict())
    other = NPNet.from_preset("shapes")
    other.load_state_dict(read_npnet_state(path), strict=True)
    for key, value in net.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    export_npnet(path, tmp_path / "npnet.pth")  # file → official nested file, no network involved
    nested = torch.load(tmp_path / "npnet.pth", map_location="cpu", weights_only=True)
    assert torch.equal(nested["embeeding"]["linear.weight"], net.text_embedding.linear.weight)


def test_pure_conversions_are_inverse():
    nested = synthetic_official_checkpoint(text_dim=8)
    flat = flatten_official(nested)
    assert "text_embedding.linear.weight" in flat and not any(k.startswith("embeeding") for k in flat)
    _assert_nested_equal(nest_official(flat), nested)
    lightning = {f"net.{k}": v for k, v in flat.items()}
    assert normalize_flat(lightning).keys() == flat.keys()


def test_config_inference_and_lightning_checkpoint(tmp_path):
    net = NPNet.from_preset("shapes")
    state = net.state_dict()
    config = config_from_state(state, text_len=16, swin=net.config.swin)
    assert config == net.config
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "last.ckpt")
    loaded = load_npnet(tmp_path / "last.ckpt", config=net.config)
    assert not loaded.training
    x, c = torch.randn(1, 4, 8, 8), torch.randn(1, 16, 64)
    torch.testing.assert_close(loaded(x, c), net.eval()(x, c))


def test_missing_file_names_the_file_and_where_to_get_it(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"sdxl\.pth.*Klayand/GoldenNoiseModel"):
        read_npnet_state(tmp_path / "sdxl.pth")


def test_not_official_nested_dict_is_rejected():
    with pytest.raises(KeyError, match="embeeding"):
        flatten_official({"unet_svd": {}, "unet_embedding": {}, "alpha": torch.zeros(1), "beta": torch.zeros(1)})


def test_imagenet_swin_init_offline_error_and_local_file(tmp_path, monkeypatch):
    import timm
    from huggingface_hub import constants

    from goldennoise.noise.npnet_checkpoint import init_swin_from_imagenet

    net = NPNet(NPNetConfig(text_dim=8, text_len=1, latent_size=8, svd_mlp4_hidden=8))  # Swin-T, small rest
    reference = timm.create_model("swin_tiny_patch4_window7_224")
    save_file(reference.state_dict(), str(tmp_path / "swin.safetensors"))
    init_swin_from_imagenet(net, tmp_path / "swin.safetensors")
    for key, value in reference.state_dict().items():
        assert torch.equal(net.unet_embedding.swin.state_dict()[key], value), key
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_hf_home" / "hub"))
    with pytest.raises(MissingWeightsError, match="swin_init='random'"):
        init_swin_from_imagenet(net)
    with pytest.raises(ValueError, match="custom Swin"):
        init_swin_from_imagenet(NPNet.from_preset("shapes"))


@pytest.mark.parametrize("name", ["sdxl.pth", "npnet.safetensors", "last.ckpt"])
def test_truncated_checkpoint_names_the_file(tmp_path, name):
    net = NPNet.from_preset("shapes")
    full = tmp_path / f"full_{name}"
    if name.endswith(".ckpt"):
        torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, full)
    else:
        export_npnet(net, full)
    truncated = tmp_path / name
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"Cannot read the checkpoint '{re.escape(str(truncated))}'"):
        load_npnet(truncated, config=net.config)


def test_checkpoint_of_another_network_names_the_file_and_the_missing_keys(tmp_path):
    """Inferring the config used to fail with a bare KeyError: 'unet_embedding.upconv.weight'."""
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"other\.safetensors' holds no NPNet weights: .*unet_embedding\.upconv"):
        load_npnet(tmp_path / "other.safetensors")
    nested = synthetic_official_checkpoint(text_dim=8)
    del nested["alpha"]
    torch.save(nested, tmp_path / "no_alpha.pth")
    with pytest.raises(CheckpointError, match=r"no_alpha\.pth': Not an official NPNet checkpoint.*alpha"):
        read_npnet_state(tmp_path / "no_alpha.pth")


def test_checkpoint_that_does_not_fit_the_network_names_the_file(tmp_path):
    export_npnet(NPNet.from_preset("shapes"), tmp_path / "shapes.safetensors")
    other = NPNetConfig(text_dim=8, text_len=1, latent_size=8, svd_mlp4_hidden=8, swin=NPNet.from_preset(
        "shapes").config.swin)
    with pytest.raises(CheckpointError, match=r"weights in '.*shapes\.safetensors' do not fit this NPNet"):
        load_npnet(tmp_path / "shapes.safetensors", config=other)


def test_metric_weight_reader_names_a_truncated_file(tmp_path):
    from goldennoise.metrics.loading import load_state_dict

    save_file({"w": torch.zeros(64, 64)}, str(tmp_path / "head.safetensors"))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes((tmp_path / "head.safetensors").read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"truncated\.safetensors"):
        load_state_dict(truncated)
