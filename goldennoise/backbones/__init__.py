"""Text-to-image backbones behind one interface; the only subpackage that names diffusers classes.

(transformers classes appear here for text encoders and in :mod:`goldennoise.metrics` for the CLIP-based scorers.)
"""

from goldennoise.backbones.base import SCHEDULERS, Backbone, PromptEmbeds
from goldennoise.backbones.flow import FLOW_SCHEDULERS, FlowBackbone
from goldennoise.backbones.flux import FluxBackbone
from goldennoise.backbones.generate import generate
from goldennoise.backbones.hunyuan import HunyuanDiTBackbone
from goldennoise.backbones.loading import BUILTIN, load_backbone, parse_dtype
from goldennoise.backbones.sd import StableDiffusionBackbone
from goldennoise.backbones.sd3 import StableDiffusion3Backbone
from goldennoise.backbones.sdxl import StableDiffusionXLBackbone

__all__ = [
    "BUILTIN",
    "FLOW_SCHEDULERS",
    "SCHEDULERS",
    "Backbone",
    "FlowBackbone",
    "FluxBackbone",
    "HunyuanDiTBackbone",
    "PromptEmbeds",
    "StableDiffusion3Backbone",
    "StableDiffusionBackbone",
    "StableDiffusionXLBackbone",
    "generate",
    "load_backbone",
    "parse_dtype",
]
