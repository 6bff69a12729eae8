"""Pure sampling functions: DDIM sampling and inversion, NPNet's re-denoise step, per-seed noise."""

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
from goldennoise.sampling.rng import SEED_MAX, check_seed, noise_for_seeds, parse_seeds

__all__ = [
    "DDIMSchedule",
    "Denoiser",
    "RedenoiseConvention",
    "SEED_MAX",
    "check_seed",
    "ddim_inversion_step",
    "ddim_move",
    "ddim_step",
    "invert_ddim",
    "noise_for_seeds",
    "parse_seeds",
    "redenoise_step",
    "sample_ddim",
]
