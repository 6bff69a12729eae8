"""The interface of LightningModules that train a noise method: ``noise_method()`` gives it to the harness.

A module that learns a noise method (NPNet, a noise refiner) exposes the method it is training as a
:class:`~goldennoise.noise.NoiseMethod` around its live weights. The evaluation harness callback
(:class:`goldennoise.lit.NoiseMethodHarness`) compares it with Gaussian noise during validation, evaluates it on
``python -m goldennoise test`` and generates with it on ``predict``; the module itself holds no backbone, metric or
sampler setting, so its checkpoints hold only what it trained.
"""

from __future__ import annotations

from typing import Any

import lightning as L

from goldennoise.noise.base import NoiseMethod


class NoiseMethodModule(L.LightningModule):
    """A LightningModule that trains a noise method; test and predict run through the harness callback.

    Subclasses implement :meth:`noise_method` and set :attr:`method_name`. Their ``test_step`` and ``predict_step``
    do nothing themselves: the :class:`~goldennoise.lit.NoiseMethodHarness` in ``trainer.callbacks`` evaluates or
    generates each batch of ``{"prompt", "seed"}`` (a :class:`~goldennoise.data.PromptSeedDataModule`, or NPD
    batches, which carry both), and both stages refuse to start without one.
    """

    method_name = "method"
    """The trained method's name in logged metrics, tables and image grids."""

    def noise_method(self) -> NoiseMethod:
        """The noise method being trained, around the module's current weights (not a copy)."""
        raise NotImplementedError(f"{type(self).__name__} must implement noise_method().")

    def on_test_start(self) -> None:
        """Refuse to test without the harness callback (there would be nothing to test)."""
        self._require_harness("test")

    def on_predict_start(self) -> None:
        """Refuse to predict without the harness callback (there would be nothing to write)."""
        self._require_harness("predict")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Nothing: the harness callback evaluates the batch in ``on_test_batch_end``."""

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Nothing: the harness callback generates and writes the batch in ``write_on_batch_end``."""

    def _require_harness(self, stage: str) -> None:
        from goldennoise.lit.harness import NoiseMethodHarness

        if not any(isinstance(callback, NoiseMethodHarness) for callback in self.trainer.callbacks):
            raise ValueError(f"'{stage}' of {type(self).__name__} runs through the evaluation harness: add "
                               "goldennoise.lit.NoiseMethodHarness (backbone, metrics, sampler settings) to "
                               "trainer.callbacks.")
