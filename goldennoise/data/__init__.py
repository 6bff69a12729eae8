"""Datasets and DataModules: prompt × seed lists now; noise-pair shards later."""

from goldennoise.data.prompts import PromptSeedDataModule, PromptSeedDataset, read_prompt_file

__all__ = ["PromptSeedDataModule", "PromptSeedDataset", "read_prompt_file"]
