"""NPNet's official DiT network (77 × 1024 text, 4 × 128 × 128 noise) in front of a tiny Hunyuan-DiT.

The network has the real DiT dimensions and key layout (29,839,643 parameters, random weights; loading the official
``.pth`` layout strictly is tested in tests/unit/test_npnet_checkpoint.py); the tiny Hunyuan-DiT's first text
encoder has the real width 1024 and its latents the real 128 × 128 size, so the plug-in path is the one a user of
the real model takes.
"""

import pytest
import torch

from goldennoise.backbones import HunyuanDiTBackbone
from goldennoise.backbones.tiny_dit import tiny_hunyuan_dit
from goldennoise.noise import NPNet, NPNetNetworkNoise
from goldennoise.noise.base import NoiseContext, SamplerSettings
from goldennoise.sampling import noise_for_seeds

PROMPTS = ["a red fox in the snow", "一只猫"]


@pytest.fixture(scope="module")
def dit_method():
    """The DiT NPNet as a noise method, its text branch and residual switched on."""
    torch.manual_seed(0)
    net = NPNet.from_preset("hunyuan_dit")
    with torch.no_grad():
        net.alpha.fill_(2.0)  # 2σ(2) − 1 ≈ 0.76: the prompt-conditioned branch shows in the output
        net.beta.fill_(0.1)
    return NPNetNetworkNoise(net)


@pytest.fixture(scope="module")
def hunyuan_1024():
    return tiny_hunyuan_dit(text_dim=1024)


def golden(method, backbone, prompts, image_size=1024):
    ctx = NoiseContext.build(backbone, prompts, [0] * len(prompts), SamplerSettings(image_size=image_size))
    return method(noise_for_seeds([0] * len(prompts), ctx.latent_shape()), ctx)


def test_the_dit_npnet_plugs_into_hunyuan_dit_with_each_sample_its_own_prompt(dit_method, hunyuan_1024):
    assert isinstance(hunyuan_1024, HunyuanDiTBackbone)
    assert sum(p.numel() for p in dit_method.plugin.net.parameters()) == 29_839_643
    both = golden(dit_method, hunyuan_1024, PROMPTS)  # same seed, two prompts
    assert both.shape == (2, 4, 128, 128) and torch.isfinite(both).all()
    alone = golden(dit_method, hunyuan_1024, PROMPTS[1:])
    torch.testing.assert_close(both[1:], alone, rtol=1e-4, atol=1e-4)  # row 1 is conditioned on its own prompt
    assert (both[0] - both[1]).abs().max() > 1e-3  # same noise, different prompts: different golden noise


def test_another_text_width_or_latent_size_gets_npnets_explicit_error(dit_method, hunyuan_1024):
    with pytest.raises(ValueError, match=r"prompt_embeds.*1024"):
        golden(dit_method, tiny_hunyuan_dit(text_dim=32), PROMPTS)
    with pytest.raises(ValueError, match="trained on 128x128 latents, got 64x64"):
        golden(dit_method, hunyuan_1024, PROMPTS, image_size=512)
