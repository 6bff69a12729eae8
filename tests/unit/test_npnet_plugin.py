"""NPNet plug-in (docs/npnet.md §5): batch, dtype and device handling and the latent-size policy."""

import pytest
import torch
import torch.nn.functional as F

from goldennoise.noise import NPNet, NPNetPlugin


@pytest.fixture
def plugin():
    torch.manual_seed(0)
    net = NPNet.from_preset("shapes")
    with torch.no_grad():
        net.alpha.fill_(0.5)
        net.beta.fill_(0.5)
    return NPNetPlugin(net)


def test_batch_dtype_and_one_prompt_for_many_noises(plugin):
    noise, embeds = torch.randn(3, 4, 8, 8, dtype=torch.float16), torch.randn(1, 16, 64)
    golden = plugin(noise, embeds)
    assert golden.shape == noise.shape and golden.dtype == torch.float16 and golden.device == noise.device
    expected = plugin.net(noise.float(), embeds.expand(3, -1, -1)).half()
    torch.testing.assert_close(golden, expected)
    assert not torch.equal(golden, noise)


def test_other_latent_sizes_error_by_default_or_resize_explicitly(plugin):
    noise, embeds = torch.randn(2, 4, 16, 16), torch.randn(2, 16, 64)
    with pytest.raises(ValueError, match=r"trained on 8x8 latents, got 16x16.*resize="):
        plugin(noise, embeds)
    resized = NPNetPlugin(plugin.net, resize="nearest-exact")
    golden = resized(noise, embeds)
    assert golden.shape == (2, 4, 16, 16)
    small = plugin.net(F.interpolate(noise, size=(8, 8), mode="nearest-exact"), embeds)
    torch.testing.assert_close(golden, F.interpolate(small, size=(16, 16), mode="nearest-exact"))
    with pytest.raises(ValueError, match=r"\(B, 4, h, w\)"):
        plugin(torch.randn(1, 3, 8, 8), embeds[:1])
    with pytest.raises(ValueError, match="resize policy"):
        NPNetPlugin(plugin.net, resize="bicubic")
