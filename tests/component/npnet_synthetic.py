"""A synthetic noise-pair data module with the NPD batch contract, for NPNet tests (no NPD, no backbone)."""

from dataclasses import replace

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from goldennoise.noise import PRESETS, NPNetConfig

SMALL = replace(PRESETS["shapes"], swin=replace(PRESETS["shapes"].swin, drop_path_rate=0.0))
"""The shapes-size NPNet (4×8×8 latents, 16×64 tokens) without stochastic depth, so runs are deterministic."""


class SyntheticPairs(Dataset):
    """Sample i: seeded noise, a per-sample embedding and a target that depends on both (a learnable map)."""

    def __init__(self, size: int = 32, config: NPNetConfig = SMALL, seed: int = 0) -> None:
        self.size, self.config, self.seed = size, config, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        cfg = self.config
        gen = torch.Generator().manual_seed(self.seed * 100_003 + i)
        noise = torch.randn(cfg.latent_channels, cfg.latent_size, cfg.latent_size, generator=gen)
        embeds = torch.randn(cfg.text_len, cfg.text_dim, generator=gen)
        target = 0.9 * noise + 0.3 * embeds.mean(dim=0)[: cfg.latent_channels, None, None]
        return {"noise": noise, "target": target, "prompt_embeds": embeds, "prompt": f"prompt {i}",
                "seed": torch.tensor(i, dtype=torch.int64)}


class SyntheticPairDataModule(L.LightningDataModule):
    """Train and validation loaders over :class:`SyntheticPairs`, unshuffled.

    Under DDP (with ``use_distributed_sampler=False``) rank r takes samples r, r + W, ..., so step j of W ranks with
    batch b covers exactly the samples of step j of one process with batch W·b.
    """

    def __init__(self, size: int = 32, batch_size: int = 4, config: NPNetConfig = SMALL) -> None:
        super().__init__()
        self.size, self.batch_size, self.config = size, batch_size, config

    def train_dataloader(self) -> DataLoader:
        data = SyntheticPairs(self.size, self.config)
        world = self.trainer.world_size if self.trainer is not None else 1
        sampler = DistributedSampler(data, world, self.trainer.global_rank, shuffle=False) if world > 1 else None
        return DataLoader(data, batch_size=self.batch_size, shuffle=False, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(SyntheticPairs(8, self.config, seed=1), batch_size=self.batch_size, shuffle=False)
