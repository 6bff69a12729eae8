"""Run by ``test_npnet_ddp.py``: a 1-process fit on global batch 2b, then a 2-process DDP (gloo) fit on batch b.

Usage: ``python npnet_ddp_worker.py OUT_DIR STEPS B``. Lightning's DDP launcher re-runs this script for rank 1 with
``LOCAL_RANK`` set; that process skips the 1-process fit. Each run saves its NPNet weights before and after the fit,
the names of its trained parameters and its per-step losses.
"""

import os
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy
from npnet_synthetic import SMALL, SyntheticPairDataModule

from goldennoise.lit.npnet import NPNetModule


class LossRecorder(L.Callback):
    """Keeps this rank's training loss of every step."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def run(out: Path, devices: int, batch_size: int, steps: int) -> None:
    """Fit ``steps`` steps on ``devices`` CPU processes; DistributedSampler shards are contiguous global batches."""
    L.seed_everything(0)
    module = NPNetModule(net=SMALL, swin_init="random", lr=1e-3)
    initial = {k: v.detach().clone() for k, v in module.net.state_dict().items()}
    recorder = LossRecorder()
    strategy = DDPStrategy(process_group_backend="gloo") if devices > 1 else "auto"
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_steps=steps, limit_val_batches=0,
                        use_distributed_sampler=False,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[recorder])
    trainer.fit(module, SyntheticPairDataModule(size=steps * batch_size * devices, batch_size=batch_size))
    state = {k: v.detach().clone() for k, v in module.net.state_dict().items()}
    trained = [name for name, parameter in module.net.named_parameters() if parameter.requires_grad]
    torch.save({"initial": initial, "state": state, "trained": trained, "losses": recorder.losses},
               out / f"{devices}proc_rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    out_dir, num_steps, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    if "LOCAL_RANK" not in os.environ:
        run(out_dir, 1, 2 * batch, num_steps)
    run(out_dir, 2, batch, num_steps)
