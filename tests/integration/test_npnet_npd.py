"""NPNet trains on a real (tiny) NPD collection through NoisePairDataModule: the batch contract end to end."""

from dataclasses import replace

import lightning as L
import pytest
import torch

from goldennoise.data.npd import NoisePairDataModule
from goldennoise.lit.npnet import NPNetModule
from goldennoise.noise import PRESETS


@pytest.mark.slow  # ~30 s on 2 shared cores, mostly the collection; the batch contract is also unit-tested
def test_npnet_fits_a_tiny_sd_collection(tiny_npd):
    config = tiny_npd(seeds="0-3", storage_dtype="float32")
    data = NoisePairDataModule(config.output_dir, margin=None, val_fraction=0.25, batch_size=4)
    net = replace(PRESETS["shapes"], text_dim=32, text_len=77, latent_size=8)  # tiny-sd at 16 px: 4×8×8, 77×32
    L.seed_everything(0)
    npnet = NPNetModule(net=net, swin_init="random", lr=1e-3)
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(npnet, data)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and torch.isfinite(metrics["val/mse"])
    assert "val/identity_mse" in metrics and npnet.net.alpha.item() != 0
