"""A gradient method (RewardOptimization) inside Lightning's ``test`` loop with the default trainer.

Lightning runs ``test``/``predict`` under ``torch.inference_mode``. The harness callback steps out of it (gradients
off) and RewardOptimization turns gradients on and copies inference tensors; a method that does not is refused by
autograd under the same default trainer.
"""

import lightning as L
import pytest
import torch

from goldennoise.data import PromptSeedDataModule
from goldennoise.lit import NoiseMethodHarness, NoiseMethodModule
from goldennoise.metrics import ShapesAlignment, SoftShapesAlignment
from goldennoise.noise import NoiseMethod, RewardOptimization

STEPS, ITERATIONS = 2, 2


class Unguarded(RewardOptimization):
    """The same optimisation without stepping into ``torch.enable_grad`` / out of inference mode."""

    def forward(self, noise, ctx):
        return self._optimise(noise.clone(), ctx)


class Reno(NoiseMethodModule):
    method_name = "reno"

    def __init__(self, guarded: bool = True) -> None:
        super().__init__()
        kind = RewardOptimization if guarded else Unguarded
        self.method = kind([SoftShapesAlignment()], iterations=ITERATIONS)

    def noise_method(self) -> NoiseMethod:
        return self.method


def _test(module: Reno, shapes) -> dict:
    harness = NoiseMethodHarness(backbone="shapes", steps=STEPS, metrics=[ShapesAlignment()], bootstrap_resamples=20)
    harness.backbone = shapes  # the session's copy: setup loads none
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[harness])  # the default trainer: inference_mode=True
    trainer.test(module, PromptSeedDataModule(prompts=["a red circle at the center"], seeds="0", batch_size=1))
    return trainer.callback_metrics


def test_reward_optimization_differentiates_in_the_default_test_loop(shapes):
    module = Reno()
    logged = _test(module, shapes)
    assert logged["test/reno/cost/method/backward"] == (ITERATIONS - 1) * STEPS  # gradients flowed
    assert module.method.reward_trace.shape == (ITERATIONS, 1)


def test_without_enabling_gradients_the_default_test_loop_fails(shapes):
    with pytest.raises(RuntimeError, match="does not require grad"):
        _test(Reno(guarded=False), shapes)
    assert torch.is_grad_enabled()
