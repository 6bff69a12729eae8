"""Run by ``test_noiserefine_ddp.py``: a 2-process DDP (gloo) fit of NoiseRefine on tiny SD in bf16-mixed.

Usage: ``python noiserefine_ddp_worker.py OUT_DIR STEPS``. Lightning's DDP launcher re-runs this script for rank 1.
Each rank saves its LoRA weights before and after the fit and a checksum of the base UNet.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy
from noiserefine_data import teacher_loader, teacher_records

from goldennoise.lit.noiserefine import NoiseRefineModule
from goldennoise.noise.noiserefine import lora_parameters


def base_checksum(module: NoiseRefineModule) -> float:
    """Sum of the base UNet's weights (everything but the adapter)."""
    return sum(float(v.double().sum()) for k, v in module.backbone.unet.state_dict().items() if "lora_" not in k)


def main() -> None:
    """Fit, then save this rank's LoRA weights and base checksum."""
    out, steps = Path(sys.argv[1]), int(sys.argv[2])
    L.seed_everything(0)
    module = NoiseRefineModule(backbone="tiny-sd", rank=4, rollout_steps=2, lr=1e-2,
                               target_modules=["to_q", "to_v", "conv1"])
    initial = [p.detach().clone() for p in lora_parameters(module.backbone)]
    before = base_checksum(module)
    data = teacher_loader(teacher_records(module.backbone, ["a red fox", "a blue jay", "a cat", "a dog"],
                                          [0, 1, 2, 3]), batch_size=1)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=DDPStrategy(process_group_backend="gloo"),
                        precision="bf16-mixed", max_steps=steps, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=data)
    torch.save({"initial": initial, "lora": [p.detach().clone() for p in lora_parameters(module.backbone)],
                "base_before": before, "base_after": base_checksum(module)}, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main()
