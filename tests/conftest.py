"""Shared fixtures: offline hub, tiny backbones built once per session, a clean working directory per test."""

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
