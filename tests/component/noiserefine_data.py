"""Teacher pairs made on the fly, in the layout of the teacher-data DataModule (for NoiseRefine tests)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from goldennoise.backbones import Backbone
from goldennoise.sampling import sample_ddim


def teacher_records(backbone: Backbone, prompts: list[str], seeds: list[int], guidance_scale: float = 3.0,
                    steps: int = 2, image_size: int = 64) -> list[dict]:
    """One record per (prompt, seed): ``noise`` x_T, ``latent`` the CFG teacher x_0, ``prompt_embeds``, prompt, seed."""
    shape = backbone.latent_shape(image_size, image_size)
    noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
    with torch.no_grad():
        cond, uncond = backbone.encode_prompt(prompts)
        latent = sample_ddim(backbone.denoiser(cond, uncond, guidance_scale), noise, backbone.ddim_schedule(steps))
    return [{"noise": noise[i], "latent": latent[i], "prompt_embeds": cond.embeds[i].float(), "prompt": prompts[i],
             "seed": seeds[i]} for i in range(len(seeds))]


def teacher_loader(records: list[dict], batch_size: int = 2) -> DataLoader:
    """The records in fixed order, batched like ``TextImagePairDataModule``."""
    return DataLoader(records, batch_size=batch_size, shuffle=False)
