"""Datasets and DataModules: prompt × seed lists, on-the-fly renders of the shapes world."""

from goldennoise.data.prompts import PromptSeedDataModule, PromptSeedDataset, read_prompt_file
from goldennoise.data.shapes import ShapesDataModule, ShapesDataset

__all__ = ["PromptSeedDataModule", "PromptSeedDataset", "ShapesDataModule", "ShapesDataset", "read_prompt_file"]
