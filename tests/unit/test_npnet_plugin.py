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


@pytest.mark.parametrize(("argument", "spoil", "error", "message"), [
    ("noise", lambda x: x.long(), TypeError, "noise must be a floating-point tensor, got dtype torch.int64"),
    ("noise", lambda x: x > 0, TypeError, "noise must be a floating-point tensor, got dtype torch.bool"),
    ("noise", lambda x: x.index_fill(0, torch.tensor([1]), float("nan")), ValueError, "noise holds non-finite"),
    ("prompt_embeds", lambda e: e.index_fill(0, torch.tensor([0]), float("inf")), ValueError,
     "prompt_embeds holds non-finite"),
    ("prompt_embeds", lambda e: e.half().long(), TypeError, "prompt_embeds must be a floating-point tensor"),
    ("prompt_embeds", lambda e: e[:, :8], ValueError, r"prompt_embeds must have shape \(B, 16, 64\), got \(2, 8, 64\)"),
    ("prompt_embeds", lambda e: torch.cat([e, e]), ValueError, "prompt_embeds has batch 4 for 2 noises"),
])
def test_bad_noise_or_embeddings_are_refused_by_name(plugin, argument, spoil, error, message):
    inputs = {"noise": torch.randn(2, 4, 8, 8), "prompt_embeds": torch.randn(2, 16, 64)}
    inputs[argument] = spoil(inputs[argument])
    with pytest.raises(error, match=message):
        plugin(**inputs)
