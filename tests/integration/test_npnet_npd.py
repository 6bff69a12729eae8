"""NPNet trains on a real (tiny) NPD collection through NoisePairDataModule: the batch contract end to end."""

from dataclasses import replace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from goldennoise.data.npd import NoisePairDataModule
from goldennoise.lit.npnet import NPNetModule
from goldennoise.noise import PRESETS

EPOCHS, MOVED = 5, 0.9
"""Five epochs of 6 training pairs (10 AdamW steps at lr 1e-3) must cut the MSE to the targets by at least 10 %."""


@torch.no_grad()
def _train_mse(npnet: NPNetModule, data: NoisePairDataModule) -> float:
    """MSE of NPNet's prediction to the golden targets over every training pair."""
    batch = default_collate([data.train_set[i] for i in range(len(data.train_set))])
    return F.mse_loss(npnet.eval()(batch["noise"].float(), batch["prompt_embeds"].float()),
                      batch["target"].float()).item()


@pytest.mark.slow  # ~30 s on 2 shared cores, mostly the collection; the batch contract is also unit-tested
def test_npnet_fits_a_tiny_sd_collection(tiny_npd):
    config = tiny_npd(seeds="0-3", storage_dtype="float32")
    data = NoisePairDataModule(config.output_dir, margin=None, val_fraction=0.25, batch_size=4)
    net = replace(PRESETS["shapes"], text_dim=32, text_len=77, latent_size=8)  # tiny-sd at 16 px: 4×8×8, 77×32
    L.seed_everything(0)
    npnet = NPNetModule(net=net, swin_init="random", lr=1e-3)
    data.prepare_data()
    data.setup("fit")
    before = _train_mse(npnet, data)
    trainer = L.Trainer(accelerator="cpu", max_epochs=EPOCHS, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(npnet, data)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and torch.isfinite(metrics["val/mse"])
    assert "val/identity_mse" in metrics
    after = _train_mse(npnet, data)
    print(f"train MSE to the targets: {before:.4f} before fitting, {after:.4f} after")
    assert after < MOVED * before  # the fitted NPNet moved towards its targets
