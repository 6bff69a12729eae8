"""Run by ``test_noise_method_harness.py``: the harness's validation check and test in 1 process, then 2 (gloo).

Usage: ``python harness_ddp_worker.py OUT_DIR``. Lightning's DDP launcher re-runs this script for rank 1 with
``LOCAL_RANK`` set; that process skips the 1-process run. Each rank saves the scores it logged.
"""

import os
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy
from npnet_synthetic import SMALL, SyntheticPairDataModule

from goldennoise.data import PromptSeedDataModule
from goldennoise.lit import NoiseMethodHarness, NPNetModule
from goldennoise.metrics import ShapesAlignment

PROMPTS = ["a red circle at the center", "a blue square left of a green cross", "a yellow triangle at the top left"]


def _scores(trainer: L.Trainer, prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix) and "/cost/" not in k}


def run(out: Path, devices: int) -> None:
    """Validate (4 harness items over the ranks) and test (3 pairs: the sampler pads rank 1 with a duplicate)."""
    L.seed_everything(0)
    module = NPNetModule(net=SMALL, swin_init="random")
    harness = NoiseMethodHarness(backbone="shapes", prompts=PROMPTS[:2], seeds="0-1", steps=2, batch_size=1,
                                 metrics=[ShapesAlignment()], bootstrap_resamples=100)
    strategy = DDPStrategy(process_group_backend="gloo") if devices > 1 else "auto"
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False, callbacks=[harness],
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(module, SyntheticPairDataModule(size=4, batch_size=2))
    scores = _scores(trainer, "val/gen/")
    trainer.test(module, PromptSeedDataModule(prompts=PROMPTS, seeds="0", batch_size=1))
    scores |= _scores(trainer, "test/")
    torch.save(scores, out / f"{devices}proc_rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    torch.set_num_threads(1)
    out_dir = Path(sys.argv[1])
    if "LOCAL_RANK" not in os.environ:
        run(out_dir, 1)
    run(out_dir, 2)
