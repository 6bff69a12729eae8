"""NPNet plug-in in front of a diffusers pipeline (docs/npnet.md §5): the pipeline's own prompt encoding, latents=."""

from dataclasses import replace

import pytest
import torch

from goldennoise.backbones import generate
from goldennoise.noise import PRESETS, NPNet, NPNetPlugin, encode_for_npnet

TEXT_DIMS = {"tiny_sd": 32, "tiny_sdxl": 64}  # both 4×32×32 latents and 77 tokens


@pytest.mark.parametrize("backbone_name", sorted(TEXT_DIMS))
def test_plugs_into_a_diffusers_pipeline(backbone_name, request):
    backbone = request.getfixturevalue(backbone_name)
    net = NPNet(replace(PRESETS["shapes"], text_dim=TEXT_DIMS[backbone_name], text_len=77, latent_size=32))
    with torch.no_grad():
        net.alpha.fill_(0.5)
    plugin = NPNetPlugin(net)
    pipeline = backbone.pipeline("ddim")
    pipeline.set_progress_bar_config(disable=True)
    prompts = ["a red circle", "a blue square"]
    embeds = encode_for_npnet(pipeline, prompts)
    torch.testing.assert_close(embeds, backbone.encode_prompt(prompts)[0].embeds)  # the pipeline's own encoder
    torch.testing.assert_close(encode_for_npnet(backbone, prompts), embeds)
    noise = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    images = plugin.generate(pipeline, prompts, noise, num_inference_steps=2, guidance_scale=3.0)
    baseline = backbone.pipeline("ddim")
    baseline.set_progress_bar_config(disable=True)
    reference = generate(baseline, prompts, plugin(noise, embeds), num_inference_steps=2, guidance_scale=3.0)
    assert images.shape == (2, 3, 64, 64)
    torch.testing.assert_close(images, reference)
