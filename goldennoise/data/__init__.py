"""Datasets and DataModules: prompt sources, prompt × seed lists, shapes-world renders, the noise prompt dataset."""

from goldennoise.data.npd import NoisePairDataModule, NoisePairDataset
from goldennoise.data.prompt_sources import PromptFileError, PromptList, load_prompts
from goldennoise.data.prompts import PromptSeedDataModule, PromptSeedDataset, read_prompt_file
from goldennoise.data.shapes import ShapesDataModule, ShapesDataset
from goldennoise.data.text_image import TextImagePairDataModule

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
