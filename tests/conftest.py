"""Shared fixtures: offline hub, tiny backbones built once per session, a clean working directory per test."""

import importlib
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

import pytest  # noqa: E402

from goldennoise.backbones import load_backbone  # noqa: E402


@pytest.fixture(autouse=True)
def _work_in_tmp_path(tmp_path, monkeypatch):
    """Run every test in its own empty directory so nothing (mlruns.db, runs/) is left in the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_sd():
    return load_backbone("tiny-sd")


@pytest.fixture(scope="session")
def tiny_sd_v():
    return load_backbone("tiny-sd-v")


@pytest.fixture(scope="session")
def tiny_sdxl():
    return load_backbone("tiny-sdxl")


@pytest.fixture(scope="session")
def shapes():
    """The embedded shapes backbone shipped in the package (32 px, 4×8×8 latents)."""
    return load_backbone("shapes")


@pytest.fixture(scope="session", params=["tiny-sd", "tiny-sd-v", "tiny-sdxl"])
def tiny_backbone(request):
    """Each tiny family in turn: SD ε-prediction, SD v-prediction, SDXL."""
    return request.getfixturevalue(request.param.replace("-", "_"))


@pytest.fixture
def tiny_npd(tmp_path, monkeypatch):
    """A factory: collect a tiny-SD NPD of two prompts × ``seeds`` into ``tmp_path/npd`` and return its config.

    Sampling returns its input noise, so the images (and their scores) are meaningless but the stored noises,
    targets, records and embedding cache are the real ones; tests that use it never read the images.
    """
    from goldennoise.collection import CollectConfig, ScorerSpec, collect

    module = importlib.import_module("goldennoise.collection.collect")
    monkeypatch.setattr(module, "sample", lambda denoiser, noise, schedule: noise)

    def make(seeds: str = "0-2", storage_dtype: str = "float16") -> CollectConfig:
        config = CollectConfig(output_dir=str(tmp_path / "npd"), backbone="tiny-sd",
                               prompts=["a red fox", "a blue jay"], seeds=seeds, num_steps=2, image_size=16,
                               batch_size=4, shard_size=4, storage_dtype=storage_dtype,
                               scorers=[ScorerSpec("hpsv2", model="tiny")], progress=False, accelerator="cpu")
        collect(config)
        return config

    return make

