"""The DataLoader recipe shared by goldennoise's DataModules."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset

from goldennoise.checks import check_int


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
