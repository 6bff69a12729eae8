"""Metrics inside a LightningModule: logged as ``split/name``, and no scorer weight in the checkpoint."""

import lightning as L
import torch
from torch.utils.data import DataLoader

from goldennoise.metrics import HPSv2Score, ImageReward
from goldennoise.metrics import tiny as tiny_metrics

PROMPTS = ["a photo of a cat", "a red car"]


class _ScoredModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        scorer = tiny_metrics.hpsv2_scorer()
        self.val_hps = HPSv2Score(model=scorer)
        self.test_hps = HPSv2Score(model=scorer)  # same weights: shared, not copied
        self.val_reward = ImageReward(model=tiny_metrics.image_reward_scorer(), scale=100.0)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[:, :1, 0, 0]).mean()

    def validation_step(self, batch, batch_idx):
        for metric in (self.val_hps, self.val_reward):
            metric.update(batch, PROMPTS)
            self.log(metric.log_name("val"), metric)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_checkpoint_has_no_scorer_weights_and_names_are_split_slash_metric(tmp_path):
    module = _ScoredModule()
    assert module.val_hps.scorer is module.test_hps.scorer
    assert set(module.state_dict()) == {"layer.weight", "layer.bias"}
    images = torch.rand(4, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(images, batch_size=2)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=2, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(module, loader, loader)
    assert {"val/hpsv2.1", "val/image_reward"} <= set(trainer.callback_metrics)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["state_dict"]
    assert set(state) == {"layer.weight", "layer.bias"}
    assert path.stat().st_size < 200_000  # the tiny scorers alone are several MB
    _ScoredModule.load_from_checkpoint(path)  # strict load still works
