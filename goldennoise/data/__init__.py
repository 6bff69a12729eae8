"""Datasets and DataModules: prompt sources, prompt × seed lists, shapes-world renders, the noise prompt dataset.

The NPD's DataModule (and the text–image pairs one, built on its dataset) can collect its dataset: it reaches up
to :mod:`goldennoise.collection`, which runs on :mod:`goldennoise.engine`, which stores through this package's shard
and lock modules. So both are imported on first use, and importing the engine (or any storage module of this
package) first never cycles back through the collection.
"""

from importlib import import_module

from goldennoise.data.prompt_sources import PromptFileError, PromptList, load_prompts
from goldennoise.data.prompts import PromptSeedDataModule, PromptSeedDataset, read_prompt_file
from goldennoise.data.shapes import ShapesDataModule, ShapesDataset

__all__ = [
    "NoisePairDataModule",
    "NoisePairDataset",
    "PromptFileError",
    "PromptList",
    "PromptSeedDataModule",
    "PromptSeedDataset",
    "ShapesDataModule",
    "ShapesDataset",
    "TextImagePairDataModule",
    "load_prompts",
    "read_prompt_file",
]

LAZY = {"NoisePairDataModule": "goldennoise.data.npd", "NoisePairDataset": "goldennoise.data.npd",
        "TextImagePairDataModule": "goldennoise.data.text_image"}


def __getattr__(name: str):
    """The DataModules of :data:`LAZY`, imported from their modules on first use."""
    if name in LAZY:
        return getattr(import_module(LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
