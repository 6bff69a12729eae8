"""Pure sampling functions: DDIM sampling, inversion (textbook and fixed-point), NPNet's re-denoise, per-seed noise."""

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
from goldennoise.sampling.inversion import (
    Inverter,
    InverterName,
    fixed_point_inversion_step,
    invert_fixed_point,
    inverter_calls_per_step,
    make_inverter,
)
from goldennoise.sampling.rng import SEED_MAX, check_seed, noise_for_seeds, parse_seeds

__all__ = [
    "DDIMSchedule",
    "Denoiser",
    "Inverter",
    "InverterName",
    "RedenoiseConvention",
    "SEED_MAX",
    "check_seed",
    "ddim_inversion_step",
    "ddim_move",
    "ddim_step",
    "fixed_point_inversion_step",
    "inverter_calls_per_step",
    "invert_fixed_point",
    "invert_ddim",
    "make_inverter",
    "noise_for_seeds",
    "parse_seeds",
    "redenoise_step",
    "sample_ddim",
]
