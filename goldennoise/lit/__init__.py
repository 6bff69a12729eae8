"""LightningModules: thin wiring of noise methods, backbones, samplers and metrics."""

from goldennoise.lit.frozen import FrozenBackboneModule
from goldennoise.lit.redenoise_regression import RedenoiseRegressionModule

__all__ = ["FrozenBackboneModule", "RedenoiseRegressionModule"]
