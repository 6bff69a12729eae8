"""Pure sampling functions: DDIM and flow-Euler sampling, inversion (textbook, fixed-point), re-denoise, seeds."""

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
from goldennoise.sampling.inversion import (
    Inverter,
    InverterName,
    fixed_point_inversion_step,
    invert_fixed_point,
    inverter_calls_per_step,
    make_inverter,
)
from goldennoise.sampling.rng import SEED_MAX, check_seed, noise_for_seeds, paired_items, parse_seeds, seed_spec

__all__ = [
    "DDIMSchedule",
    "Denoiser",
    "FlowSchedule",
    "Inverter",
    "InverterName",
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
    "fixed_point_inversion_step",
    "inverter_calls_per_step",
    "invert_fixed_point",
    "invert_ddim",
    "make_inverter",
    "noise_for_seeds",
    "paired_items",
    "parse_seeds",
    "seed_spec",
    "redenoise",
    "redenoise_step",
    "sample",
    "sample_ddim",
    "sample_flow",
]
