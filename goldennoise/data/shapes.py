"""Shapes-world images and prompts rendered on the fly (see :mod:`goldennoise.shapes`): nothing is stored on disk.

Item ``i`` of a split is the scene of seed ``first_seed + i`` in that split, so a dataset is a pure function of its
arguments. Training shuffles with the DataLoader's seeded sampler; on resume from a mid-epoch checkpoint the epoch
restarts with a new order over the same seeds, which is harmless for a stream of i.i.d. renders.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from goldennoise.data.base import SplitDataModule
from goldennoise.shapes.grammar import to_prompt
from goldennoise.shapes.render import render_scene
from goldennoise.shapes.splits import SPLITS, sample_scene


class ShapesDataset(Dataset):
    """Renders of one split as ``{"image": (3, size, size) in [-1, 1], "prompt": str, "seed": int}``.

    Args:
        split: one of :data:`~goldennoise.shapes.splits.SPLITS`.
        num_samples: number of scenes (seeds ``first_seed`` … ``first_seed + num_samples - 1``).
        size: image side in pixels.
        first_seed: seed of item 0.
        two_object_prob: chance of a two-object scene.
    """

    def __init__(self, split: str = "train", num_samples: int = 100_000, size: int = 32, first_seed: int = 0,
                 two_object_prob: float = 0.5) -> None:
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; choose one of {list(SPLITS)}.")
        if num_samples < 1 or first_seed < 0:
            raise ValueError(f"Need num_samples >= 1 and first_seed >= 0, got {num_samples} and {first_seed}.")
        self.split, self.num_samples, self.size = split, num_samples, size
        self.first_seed, self.two_object_prob = first_seed, two_object_prob

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str | int]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"Index {index} is outside a shapes dataset of {self.num_samples} scenes.")
        seed = self.first_seed + index
        scene = sample_scene(seed, self.split, two_object_prob=self.two_object_prob)
        image = render_scene(scene, self.size) * 2.0 - 1.0  # (3, size, size) in [-1, 1], as diffusers VAEs expect
        return {"image": image, "prompt": to_prompt(scene.spec), "seed": seed}


class ShapesDataModule(SplitDataModule):
    """Train, validation and test renders of the shapes world (test uses the ``heldout`` split when asked).

    Args:
        size: image side in pixels.
        batch_size: scenes per batch.
        train_samples: scenes per training epoch.
        val_samples: validation scenes (fixed seeds, the same every epoch).
        test_samples: test scenes.
        test_split: ``"test"`` or ``"heldout"`` (unseen color–shape bindings).
        two_object_prob: chance of a two-object scene.
        num_workers: DataLoader workers (rendering costs about 0.3 ms per scene, so 0 is usually enough).
    """

    def __init__(self, size: int = 32, batch_size: int = 64, train_samples: int = 200_000, val_samples: int = 256,
                 test_samples: int = 512, test_split: str = "test", two_object_prob: float = 0.5,
                 num_workers: int = 0) -> None:
        super().__init__(batch_size, num_workers)
        self.save_hyperparameters()
        self.size = size
        self.train_set = ShapesDataset("train", train_samples, size, two_object_prob=two_object_prob)
        self.val_set = ShapesDataset("validation", val_samples, size, two_object_prob=two_object_prob)
        self.test_set = ShapesDataset(test_split, test_samples, size, two_object_prob=two_object_prob)
