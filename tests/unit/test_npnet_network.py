"""NPNet network: official keys and sizes (docs/npnet.md §1.6, App. A), branch maths and parity quirks (§1.1–1.4)."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from npnet_official_table import official_table

from goldennoise.noise import PRESETS, NPNet, NPNetConfig
from goldennoise.noise.npnet import SVDBranch, tile_channels, untile_channels


@pytest.fixture(scope="module")
def sdxl_net():
    return NPNet.from_preset("sdxl")


@pytest.fixture
def small_net():
    torch.manual_seed(0)
    return NPNet.from_preset("shapes", swin=replace(PRESETS["shapes"].swin, drop_path_rate=0.0))


@pytest.mark.parametrize(("preset", "total"), [("sdxl", 30_470_427), ("hunyuan_dit", 29_839_643)])
def test_official_keys_shapes_and_totals(preset, total, request):
    net = request.getfixturevalue("sdxl_net") if preset == "sdxl" else NPNet.from_preset(preset)
    state = net.state_dict()
    expected = official_table(PRESETS[preset].text_dim)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    counts = {p: sum(k.startswith(p) for k in state) for p in ("unet_svd.", "unet_embedding.", "text_embedding.")}
    assert counts == {"unet_svd.": 22, "unet_embedding.": 177, "text_embedding.": 2}
    assert sum(p.numel() for p in net.parameters()) == total
    assert all(v.dtype == torch.float32 for k, v in state.items() if not k.endswith("num_batches_tracked"))
    buffers = dict(net.named_buffers())  # timm >= 0.9: index and masks exist but are not persistent
    assert sum(k.endswith("relative_position_index") for k in buffers) == 12
    assert sum(k.endswith("attn_mask") for k in buffers) == 5


def test_nhwc_resize_uses_every_sixth_feature(sdxl_net):
    """docs/npnet.md §1.4: out[b, h, i, j] = feat[b, h, floor(7i/128), 6j]; the input resize is legacy nearest."""
    branch, seen = sdxl_net.unet_embedding, {}
    forward_features = branch.swin.forward_features
    branch.swin.forward_features = lambda z: seen.setdefault("feat", forward_features(z))
    hooks = [branch.upconv.register_forward_pre_hook(lambda m, a: seen.setdefault("up", a[0])),
             branch.downconv.register_forward_pre_hook(lambda m, a: seen.setdefault("down", a[0]))]
    x = torch.randn(1, 4, 128, 128)
    try:
        with torch.no_grad():
            branch(x)
    finally:
        del branch.swin.forward_features
        for h in hooks:
            h.remove()
    feat = seen["feat"]
    assert feat.shape == (1, 7, 7, 768)
    rows, cols = (torch.arange(128) * 7) // 128, torch.arange(128) * 6
    assert torch.equal(seen["up"], feat[:, :, rows][:, :, :, cols])
    assert torch.equal(seen["down"], F.interpolate(x, size=(224, 224), mode="nearest"))
    assert not torch.equal(seen["down"], F.interpolate(x, size=(224, 224), mode="nearest-exact"))


def test_tiling_order_and_inverse():
    x = torch.arange(4 * 3 * 3, dtype=torch.float32).reshape(1, 4, 3, 3)
    m = tile_channels(x)  # (1, 6, 6)
    assert torch.equal(m[0, :3, :3], x[0, 0]) and torch.equal(m[0, :3, 3:], x[0, 1])
    assert torch.equal(m[0, 3:, :3], x[0, 2]) and torch.equal(m[0, 3:, 3:], x[0, 3])
    assert torch.equal(untile_channels(m, 4), x)


@pytest.mark.parametrize("batch", [1, 3])
def test_shapes_and_identity_at_init(small_net, batch):
    """α = β = 0 ⇒ the output is the SVD branch alone; with mlp4's last layer zeroed the SVD branch is the identity."""
    x, c = torch.randn(batch, 4, 8, 8), torch.randn(batch, 16, 64)
    out = small_net(x, c)
    assert out.shape == (batch, 4, 8, 8) and out.dtype == torch.float32
    assert torch.equal(out, small_net.unet_svd(x))
    with torch.no_grad():
        small_net.unet_svd.mlp4[2].weight.zero_()
        small_net.unet_svd.mlp4[2].bias.zero_()
    torch.testing.assert_close(small_net(x, c), x, atol=1e-5, rtol=1e-5)


def test_branches_combine_as_in_the_paper(small_net):
    with torch.no_grad():
        small_net.alpha.fill_(0.7)
        small_net.beta.fill_(-0.3)
    x, c = torch.randn(2, 4, 8, 8), torch.randn(2, 16, 64)
    b = small_net.branches(x, c)
    expected = b["svd"] + (2 * torch.sigmoid(torch.tensor(0.7)) - 1) * b["text"] - 0.3 * b["residual"]
    torch.testing.assert_close(small_net(x, c), expected)


def test_adagroupnorm_matches_hand_computation(small_net):
    x, c = torch.randn(2, 4, 8, 8), torch.randn(2, 16, 64)
    lin = small_net.text_embedding.linear
    scale_shift = c.flatten(1) @ lin.weight.T + lin.bias  # (2, 8)
    scale, shift = scale_shift[:, :4, None, None], scale_shift[:, 4:, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = x.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
    expected = (x - mean) / torch.sqrt(var + 1e-6) * (1 + scale) + shift
    torch.testing.assert_close(small_net.text_embedding(x, c), expected, atol=1e-5, rtol=1e-5)
    # per-sample conditioning: each noise gets its own prompt's scale and shift
    other = small_net.text_embedding(x, c[:1].expand(2, -1, -1))
    assert not torch.allclose(other[1], expected[1])


def test_gradients_at_init_reach_only_alpha_beta_and_svd(small_net):
    x, c, target = torch.randn(2, 4, 8, 8), torch.randn(2, 16, 64), torch.randn(2, 4, 8, 8)
    F.mse_loss(small_net(x, c), target).backward()
    assert small_net.alpha.grad.abs().item() > 0 and small_net.beta.grad.abs().item() > 0
    assert small_net.unet_svd.mlp4[2].weight.grad.abs().sum() > 0
    for module in (small_net.text_embedding, small_net.unet_embedding):
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in module.parameters())


def test_wo_attention_changes_forward_not_keys():
    torch.manual_seed(0)
    a = SVDBranch(4, 8, attention=True, mlp4_hidden=64)
    b = SVDBranch(4, 8, attention=False, mlp4_hidden=64)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(2, 4, 8, 8)
    assert not torch.allclose(a(x), b(x))


def test_svd_branch_stays_fp32_under_autocast(small_net):
    x, c = torch.randn(2, 4, 8, 8), torch.randn(2, 16, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert small_net.unet_svd(x.bfloat16()).dtype == torch.float32
        out = small_net(x, c)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, small_net(x, c), atol=0, rtol=0)  # α = β = 0: exactly the fp32 SVD branch


def test_rejects_wrong_shapes(small_net):
    with pytest.raises(ValueError, match=r"noise \(B, 4, 8, 8\)"):
        small_net(torch.randn(1, 4, 16, 16), torch.randn(1, 16, 64))
    with pytest.raises(ValueError, match=r"\(B, 16, 64\)"):
        small_net(torch.randn(1, 4, 8, 8), torch.randn(1, 77, 64))
    with pytest.raises(ValueError, match="not a square"):
        NPNet(NPNetConfig(latent_channels=3, latent_size=8, text_dim=8))


def test_untrained_output_is_unit_variance_noise(small_net):
    """NPNet maps unit-variance noise to unit-variance noise (NoiseMethod contract), here at initialisation."""
    gen = torch.Generator().manual_seed(0)
    x, c = torch.randn(64, 4, 8, 8, generator=gen), torch.randn(64, 16, 64, generator=gen)
    with torch.no_grad():
        out = small_net(x, c)
    assert abs(out.mean().item()) < 0.05 and abs(out.std().item() - 1) < 0.05
