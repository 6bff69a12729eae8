"""The DataLoader recipe and the train/validation split shared by goldennoise's DataModules."""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence
from typing import Literal, get_args

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from goldennoise.checks import check_int

SplitBy = Literal["prompt", "prompt_hash", "item", "item_hash"]
"""What a validation split holds out: distinct prompts or (prompt, seed) pairs, drawn by a seeded permutation (an
exact share, which reshuffles when the set changes) or by a seeded hash of each one (a share on average; a grown
dataset never moves a prompt or pair across)."""


def check_split(split_by: str, val_fraction: float) -> None:
    """Refuse an unknown ``split_by`` or a ``val_fraction`` outside [0, 1)."""
    if split_by not in get_args(SplitBy):
        raise ValueError(f"split_by must be one of {', '.join(map(repr, get_args(SplitBy)))}, got {split_by!r}.")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")


def unit_hash(seed: int, text: str) -> float:
    """A number in [0, 1) fixed by ``seed`` and ``text`` alone, uniform over texts (the first 64 bits of a SHA-256)."""
    digest = hashlib.sha256(f"{seed}\n{text}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_indices(prompts: Sequence[str], seeds: Sequence[int], split_by: SplitBy, val_fraction: float,
                  split_seed: int) -> tuple[list[int], list[int]]:
    """(validation, train) indices of the pairs ``(prompts[i], seeds[i])``.

    ``item`` / ``prompt``: a permutation of the pairs / of the sorted distinct prompts drawn with ``split_seed``,
    its first ``round(val_fraction · n)`` held out. ``item_hash`` / ``prompt_hash``: a pair / a prompt is held out
    iff its :func:`unit_hash` with ``split_seed`` is below ``val_fraction`` (on a few prompts that can be none:
    5 prompts at 10 % hold out nothing with probability 0.9⁵ ≈ 0.59). Prompt splits keep every record of a prompt
    on one side, so validation measures unseen prompts.
    """
    generator = torch.Generator().manual_seed(split_seed)
    if split_by == "item":
        order = torch.randperm(len(prompts), generator=generator).tolist()
        n_val = round(val_fraction * len(prompts))
        return sorted(order[:n_val]), sorted(order[n_val:])
    if split_by == "item_hash":
        held = [unit_hash(split_seed, f"{p}\n{operator.index(s)}") < val_fraction
                for p, s in zip(prompts, seeds, strict=True)]
    else:
        unique = sorted(set(prompts))
        if split_by == "prompt_hash":
            held_out = {p for p in unique if unit_hash(split_seed, p) < val_fraction}
        else:
            order = torch.randperm(len(unique), generator=generator).tolist()
            held_out = {unique[i] for i in order[:round(val_fraction * len(unique))]}
        held = [p in held_out for p in prompts]
    return [i for i, h in enumerate(held) if h], [i for i, h in enumerate(held) if not h]


class SplitDataModule(L.LightningDataModule):
    """Serves ``train_set``, ``val_set`` and ``test_set`` (the validation set when there is none).

    Subclasses fill the sets, in ``__init__`` or ``setup``. The loader settings are checked here, at construction,
    so a bad value fails before a trainer starts (or an MLflow run is opened).

    Args:
        batch_size: samples per batch (at least 1).
        num_workers: DataLoader workers (kept alive between epochs when positive).
        pin_memory: pin batches in page-locked memory.

    Raises:
        ValueError: ``batch_size`` < 1 or ``num_workers`` < 0.
    """

    def __init__(self, batch_size: int, num_workers: int = 0, pin_memory: bool = False) -> None:
        super().__init__()
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.num_workers = check_int("num_workers", num_workers, minimum=0)
        self.pin_memory = pin_memory
        self.test_set: Dataset | None = None

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_set if self.test_set is None else self.test_set, shuffle=False)
