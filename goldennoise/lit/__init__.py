"""LightningModules (thin wiring of noise methods, backbones, samplers, metrics) and the evaluation harness callback."""

from goldennoise.lit.checkpoints import FinalStepCheckpoint
from goldennoise.lit.frozen import FrozenBackboneModule
from goldennoise.lit.harness import NoiseMethodHarness
from goldennoise.lit.noise_method import NoiseMethodModule
from goldennoise.lit.noiserefine import NoiseRefineModule
from goldennoise.lit.npnet import NPNetModule
from goldennoise.lit.redenoise_regression import RedenoiseRegressionModule
from goldennoise.lit.shapes_diffusion import ShapesDiffusionModule
from goldennoise.lit.shapes_vae import ShapesVAEModule

__all__ = [
    "FinalStepCheckpoint",
    "FrozenBackboneModule",
    "NPNetModule",
    "NoiseMethodHarness",
    "NoiseMethodModule",
    "NoiseRefineModule",
    "RedenoiseRegressionModule",
    "ShapesDiffusionModule",
    "ShapesVAEModule",
]
