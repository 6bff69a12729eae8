"""Pure sampling functions: DDIM and flow-Euler sampling and inversion, NPNet's re-denoise step, per-seed noise."""

from goldennoise.sampling.ddim import (
    DDIMSchedule,
    Denoiser,
    RedenoiseConvention,
    ddim_inversion_step,
    ddim_move,
    ddim_step,
    invert_ddim,
    redenoise_step,
    sample_ddim,
)
from goldennoise.sampling.flow import (
    FlowSchedule,
    flow_estimates,
    flow_inversion_step,
    flow_move,
    flow_redenoise_step,
    flow_step,
    invert_flow,
    sample_flow,
)
from goldennoise.sampling.generic import Schedule, invert, redenoise, sample
from goldennoise.sampling.rng import SEED_MAX, check_seed, noise_for_seeds, parse_seeds

__all__ = [
    "DDIMSchedule",
    "Denoiser",
    "FlowSchedule",
    "RedenoiseConvention",
    "SEED_MAX",
    "Schedule",
    "check_seed",
    "ddim_inversion_step",
    "ddim_move",
    "ddim_step",
    "flow_estimates",
    "flow_inversion_step",
    "flow_move",
    "flow_redenoise_step",
    "flow_step",
    "invert",
    "invert_flow",
    "invert_ddim",
    "noise_for_seeds",
    "parse_seeds",
    "redenoise",
    "redenoise_step",
    "sample",
    "sample_ddim",
    "sample_flow",
]
