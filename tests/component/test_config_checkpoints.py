"""Every shipped training config leaves a ``last.ckpt`` holding the final state, the one ``--ckpt_path`` resumes from.

Lightning 2.6 writes ``save_last`` only when a top-k checkpoint is written at the same step, so with a monitored
``save_top_k: 1`` its ``last.ckpt`` is a copy of the best epoch, and a resume silently rewinds training. The configs
give ``last.ckpt`` its own unmonitored callback; this runs each config's callbacks on a model whose validation loss
gets worse every epoch (so the best epoch is the first) and checks what ``last.ckpt`` holds.
"""

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.cli import instantiate_class
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [p for p in sorted((ROOT / "configs").rglob("*.yaml"))  # overlays changing a base's harness are left out
           if isinstance((yaml.safe_load(p.read_text()) or {}).get("trainer", {}).get("callbacks"), list)]
EPOCHS, STEPS_PER_EPOCH = 3, 2


class WorseEveryEpoch(L.LightningModule):
    """One parameter; ``val/mse`` equals the epoch number, so epoch 0 is the best."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def training_step(self, batch, batch_idx):
        return (self.weight * batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/mse", float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _callbacks(config: Path, dirpath: Path) -> list[L.Callback]:
    """The config's checkpoint callbacks, writing to ``dirpath`` (other callbacks, like the harness, are left out)."""
    specs = yaml.safe_load(config.read_text())["trainer"]["callbacks"]
    return [instantiate_class((), {**spec, "init_args": {**spec.get("init_args", {}), "dirpath": str(dirpath)}})
            for spec in specs if spec["class_path"].endswith(("ModelCheckpoint", "FinalStepCheckpoint"))]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_last_checkpoint_holds_the_final_state(config, tmp_path):
    data = DataLoader(TensorDataset(torch.ones(STEPS_PER_EPOCH, 1)), batch_size=1)
    trainer = L.Trainer(accelerator="cpu", max_epochs=EPOCHS, callbacks=_callbacks(config, tmp_path), logger=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    model = WorseEveryEpoch()
    trainer.fit(model, train_dataloaders=data, val_dataloaders=data)
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert last["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert torch.equal(last["state_dict"]["weight"], model.weight.detach())
