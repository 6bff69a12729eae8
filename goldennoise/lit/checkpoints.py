"""Checkpoints that keep a fit's last steps: Lightning's ``ModelCheckpoint`` saves only after a validation."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


class FinalStepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that, without a monitored metric, also saves when the fit ends on an unsaved step.

    A fit whose ``max_steps`` is not a multiple of ``val_check_interval`` (or ``every_n_train_steps``) ends between
    two saves, and Lightning's callback would keep the checkpoint of the last save: ``last.ckpt`` would not hold the
    last step. This one saves once more at the end of training (``last.ckpt``, or ``step=N.ckpt`` for a
    ``{step}`` filename), unless Lightning would skip saving then (the step is saved, ``fast_dev_run``). A callback
    with a ``monitor`` is left alone: its metric is only as fresh as the last validation. Takes
    ``ModelCheckpoint``'s arguments.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.monitor is None and self.save_top_k != 0 and not self._should_skip_saving_checkpoint(trainer):
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
