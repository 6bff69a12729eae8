"""Noise methods: networks and procedures that map initial noise (and the prompt) to better initial noise.

| method | module | paper |
|---|---|---|
| :class:`NPNet` | :mod:`~goldennoise.noise.npnet`, :mod:`~goldennoise.noise.npnet_checkpoint` | arXiv 2411.09502 |
| :class:`RewardOptimization` | :mod:`~goldennoise.noise.reward` | ReNO, arXiv 2406.04312 |
| :class:`BestOfN` (one verifier or a mean-rank ensemble) | :mod:`~goldennoise.noise.selection` | arXiv 2501.09732 |
| :class:`StabilitySelection`, :class:`StabilityOptimization` | :mod:`~goldennoise.noise.stability` | arXiv 2407.14041 |
| :class:`NoiseRefineNoise` | :mod:`~goldennoise.noise.noiserefine`, :mod:`~goldennoise.noise.msd` | arXiv 2412.03895 |

Every method takes and returns unit-variance noise (:class:`NoiseMethod`); :class:`NPNetPlugin` runs a trained NPNet
in front of any diffusers pipeline::

    from goldennoise.backbones import load_backbone
    from goldennoise.noise import NPNetPlugin, load_npnet

    backbone = load_backbone("stabilityai/stable-diffusion-xl-base-1.0", "float16").to("cuda")
    plugin = NPNetPlugin(load_npnet("sdxl.pth").to("cuda"))          # official weights, loaded strictly
    pipeline = backbone.pipeline("dpm_solver")
    noise = torch.randn(2, 4, 128, 128, device="cuda")
    images = plugin.generate(pipeline, ["a cat", "a dog"], noise, num_inference_steps=50, guidance_scale=5.5)

Train with ``python -m goldennoise fit --config configs/npnet/sdxl.yaml`` (:class:`goldennoise.lit.npnet.NPNetModule`)
and export with :func:`export_npnet` (official nested ``.pth`` or either flat safetensors layout).
"""

from goldennoise.noise.base import Compose, Gaussian, NoiseContext, NoiseMethod, SamplerSettings
from goldennoise.noise.noiserefine import (
    NoiseRefineNoise,
    RefinedNoise,
    RefinerConfig,
    export_refiner,
    load_refiner,
    refine_with_pipeline,
)
from goldennoise.noise.npnet import PRESETS, SMALL_SWIN, NPNet, NPNetConfig, SwinConfig
from goldennoise.noise.npnet_checkpoint import (
    config_from_state,
    export_npnet,
    init_swin_from_imagenet,
    load_npnet,
    read_npnet_state,
    save_npnet_state,
)
from goldennoise.noise.plugin import NPNetNetworkNoise, NPNetNoise, NPNetPlugin, encode_for_npnet
from goldennoise.noise.redenoise import Redenoise
from goldennoise.noise.reward import RewardOptimization
from goldennoise.noise.selection import BestOfN
from goldennoise.noise.stability import StabilityOptimization, StabilityScore, StabilitySelection

__all__ = [
    "PRESETS",
    "BestOfN",
    "Compose",
    "Gaussian",
    "NPNetNetworkNoise",
    "NPNetNoise",
    "NoiseContext",
    "NoiseRefineNoise",
    "RefinedNoise",
    "RefinerConfig",
    "Redenoise",
    "RewardOptimization",
    "SamplerSettings",
    "StabilityOptimization",
    "StabilityScore",
    "StabilitySelection",
    "SMALL_SWIN",
    "NPNet",
    "NPNetConfig",
    "NPNetPlugin",
    "NoiseMethod",
    "SwinConfig",
    "config_from_state",
    "encode_for_npnet",
    "export_npnet",
    "export_refiner",
    "init_swin_from_imagenet",
    "load_npnet",
    "load_refiner",
    "read_npnet_state",
    "refine_with_pipeline",
    "save_npnet_state",
]
