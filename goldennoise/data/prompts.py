"""Prompts × seeds as data: the unit every noise method is trained and evaluated on (seeds are data, as in EDM)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from goldennoise.checks import check_prompts
from goldennoise.data.base import SplitDataModule
from goldennoise.data.prompt_sources import load_prompts, read_prompt_source_file
from goldennoise.sampling import check_seed, parse_seeds


def read_prompt_file(path: str | Path, column: str | None = None) -> list[str]:
    """Read prompts from a ``.txt`` (one a line), ``.csv``, ``.jsonl`` or ``.parquet`` file.

    A malformed file raises :class:`~goldennoise.data.prompt_sources.PromptFileError` naming the line; see
    :func:`~goldennoise.data.prompt_sources.read_prompt_source_file`.
    """
    return read_prompt_source_file(path, column).prompts


class PromptSeedDataset(Dataset):
    """Every (prompt, seed) pair of ``prompts`` × ``seeds``, as ``{"prompt": str, "seed": int}`` items."""

    def __init__(self, prompts: list[str], seeds: list[int]) -> None:
        self.pairs = [(p, s) for p in prompts for s in seeds]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, str | int]:
        prompt, seed = self.pairs[index]
        return {"prompt": prompt, "seed": seed}


class PromptSeedDataModule(SplitDataModule):
    """Prompts × seeds, split deterministically into train and validation pairs; test and predict take every pair.

    ``fit`` and ``validate`` use the split; ``test`` and ``predict`` iterate over every (prompt, seed) pair in
    prompt-major order (an evaluation or a generation of the whole prompt list, e.g. through
    :class:`goldennoise.lit.NoiseMethodHarness`).

    Args:
        prompts: the prompts, given inline (each with some text).
        prompt_file: or a prompt source (used when ``prompts`` is empty): a txt/csv/jsonl/parquet file, a named set,
            ``shapes:<split>[:<count>]`` or a Hugging Face dataset id (see
            :func:`~goldennoise.data.prompt_sources.load_prompts`).
        seeds: seed list such as ``"0-7,100"``; every prompt is paired with every seed.
        val_fraction: share of pairs held out for validation (at least one pair when positive).
        batch_size: pairs per batch.
        split_seed: seed of the train/validation permutation.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        prompts: list[str] | None = None,
        prompt_file: str | None = None,
        seeds: str = "0-3",
        val_fraction: float = 0.25,
        batch_size: int = 4,
        split_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        if not prompts and not prompt_file:
            raise ValueError("PromptSeedDataModule needs prompts or a prompt_file.")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
        self.prompts = check_prompts("prompts", prompts) if prompts else load_prompts(prompt_file).prompts
        self.seeds = parse_seeds(seeds)
        self.val_fraction, self.split_seed = val_fraction, check_seed(split_seed, "split_seed")

    def setup(self, stage: str | None = None) -> None:
        """Split the pairs: the same permutation for the same ``split_seed``, whatever the process."""
        dataset = PromptSeedDataset(self.prompts, self.seeds)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        n_val = max(1, round(self.val_fraction * len(dataset))) if self.val_fraction > 0 else 0
        self.val_set = torch.utils.data.Subset(dataset, order[:n_val])
        self.train_set = torch.utils.data.Subset(dataset, order[n_val:])
        self.test_set = dataset

    def predict_dataloader(self) -> DataLoader:
        return self._loader(PromptSeedDataset(self.prompts, self.seeds), shuffle=False)
