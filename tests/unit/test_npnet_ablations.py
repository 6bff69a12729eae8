"""NPNet's branch ablations (arXiv 2411.09502): without the SVD branch the noise stands in for SVD(x); without the
residual branch β·Swin(x + e) is gone; an ablated branch is frozen but keeps its weights (same checkpoint keys)."""

import torch

from goldennoise.noise.npnet import NPNet


def _inputs(net):
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(2, *net.latent_shape, generator=generator)
    embeds = torch.randn(2, net.config.text_len, net.config.text_dim, generator=generator)
    return noise, embeds


def _with_beta(net):
    with torch.no_grad():
        net.alpha.fill_(0.7)
        net.beta.fill_(0.3)  # both start at 0, which would hide the residual term
    return net


def test_without_the_svd_branch_the_noise_takes_its_place():
    torch.manual_seed(0)
    net = _with_beta(NPNet.from_preset("shapes", svd_branch=False)).eval()
    noise, embeds = _inputs(net)
    out = net.branches(noise, embeds)
    assert torch.equal(out["svd"], noise)
    expected = noise + (2 * torch.sigmoid(net.alpha) - 1) * out["text"] + net.beta * out["residual"]
    torch.testing.assert_close(net(noise, embeds), expected)
    assert not any(p.requires_grad for p in net.unet_svd.parameters())
    assert all(p.requires_grad for p in net.unet_embedding.swin.layers.parameters())


def test_without_the_residual_branch_golden_noise_is_svd_plus_text():
    torch.manual_seed(0)
    full = _with_beta(NPNet.from_preset("shapes")).eval()
    ablated = _with_beta(NPNet.from_preset("shapes", residual_branch=False)).eval()
    ablated.load_state_dict(full.state_dict())  # same keys: an ablated network loads a full one's weights
    noise, embeds = _inputs(full)
    branches = full.branches(noise, embeds)
    expected = branches["svd"] + (2 * torch.sigmoid(full.alpha) - 1) * branches["text"]
    torch.testing.assert_close(ablated(noise, embeds), expected)
    assert not torch.allclose(full(noise, embeds), expected)  # the residual term mattered
    assert not any(p.requires_grad for p in [*ablated.unet_embedding.parameters(), ablated.beta])
