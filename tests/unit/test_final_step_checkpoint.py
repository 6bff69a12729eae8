"""FinalStepCheckpoint: last.ckpt holds the fit's last step even when the fit ends between two saves."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from goldennoise.lit import FinalStepCheckpoint


class Line(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.layer(x).pow(2).mean()
        self.log("train/loss", loss)
        self.log("train/step", float(self.global_step))  # grows every step: a monitor would save each time
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(callback: ModelCheckpoint, max_steps: int, **trainer_args) -> None:
    data = DataLoader(TensorDataset(torch.randn(64, 2, generator=torch.Generator().manual_seed(0))), batch_size=4)
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, callbacks=[callback],
                        enable_progress_bar=False, enable_model_summary=False, **trainer_args)
    trainer.fit(Line(), train_dataloaders=data)


@pytest.mark.parametrize(("cls", "saved_step"), [(ModelCheckpoint, 4), (FinalStepCheckpoint, 7)])
def test_last_checkpoint_holds_the_last_step(tmp_path, cls, saved_step):
    _fit(cls(dirpath=tmp_path, filename="last", every_n_train_steps=4, save_top_k=1), max_steps=7)
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == saved_step
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_monitored_checkpoint_is_not_saved_again_at_the_end(tmp_path):
    callback = FinalStepCheckpoint(dirpath=tmp_path, filename="best", monitor="train/step", mode="max",
                                   every_n_train_steps=4, save_top_k=1)
    _fit(callback, 7)
    assert torch.load(tmp_path / "best.ckpt", weights_only=False)["global_step"] == 4


def test_nothing_is_saved_where_lightning_saves_nothing(tmp_path):
    _fit(FinalStepCheckpoint(dirpath=tmp_path, filename="last"), 7, fast_dev_run=True)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())
