"""NPNet in front of flow-matching transformers (tiny FLUX.1-schnell, tiny SD3): a network sized for the model's
unpacked latents (C × 8 × 8) and its token embeddings (L × D) changes the noise, per sample its own prompt, at no
denoiser evaluation; one sized for another model is refused with NPNet's shape policy error."""

import pytest
import torch

from goldennoise.backbones import load_backbone
from goldennoise.evaluation.harness import MethodSpec, evaluate_batch
from goldennoise.noise import Gaussian, NPNetNetworkNoise, SamplerSettings
from goldennoise.noise.base import NoiseContext
from goldennoise.noise.npnet import SMALL_SWIN, NPNet, NPNetConfig

ITEMS = [(0, "a red fox", 0), (1, "a blue bird", 1)]


def small_npnet(ctx: NoiseContext) -> NPNet:
    channels, size, _ = ctx.latent_shape()
    tokens, width = ctx.cond.embeds.shape[1:]
    torch.manual_seed(0)
    return NPNet(NPNetConfig(text_dim=width, text_len=tokens, latent_channels=channels, latent_size=size,
                             svd_mlp4_hidden=64, swin=SMALL_SWIN))


@pytest.mark.parametrize("name", ["tiny-flux-schnell", "tiny-sd3"])
def test_npnet_runs_on_a_flow_backbone_at_no_denoiser_cost(name):
    backbone = load_backbone(name)
    sampler = SamplerSettings(steps=2, scheduler="flow_euler", image_size=8 * backbone.vae_scale_factor)
    ctx = NoiseContext.build(backbone, [p for _, p, _ in ITEMS], [s for *_, s in ITEMS], sampler)
    method = NPNetNetworkNoise(small_npnet(ctx))
    records, images = evaluate_batch(backbone, ITEMS, [MethodSpec("gaussian", Gaussian()), MethodSpec("npnet", method)],
                                     [], sampler)
    cost = {r["method"]: (r["cost"]["method/evaluations"], r["cost"]["sampling/evaluations"]) for r in records}
    assert cost == {"gaussian": (0, 2), "npnet": (0, 2)}
    assert not torch.equal(images["gaussian"], images["npnet"])
    noise = torch.randn(2, *ctx.latent_shape())
    with torch.no_grad():
        both, first = method(noise, ctx), method(noise[:1], ctx.rows([0]))
    torch.testing.assert_close(both[:1], first, rtol=1e-4, atol=1e-5)  # each sample reads its own prompt
    wrong = NoiseContext.build(backbone, ["a red fox"], [0], SamplerSettings(steps=2, scheduler="flow_euler",
                                                                             image_size=16 * backbone.vae_scale_factor))
    with pytest.raises(ValueError, match="latent"):
        method(torch.randn(1, *wrong.latent_shape()), wrong)
