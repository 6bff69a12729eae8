r"""Stage 1 of the embedded ``shapes`` backbone: a small diffusers ``AutoencoderKL`` trained from scratch.

The loss is the latent-diffusion autoencoder loss of Rombach et al. (2022, §3 and appendix G) without its perceptual
and adversarial terms, which a world of flat colored shapes on black does not need:

.. math::
    \mathcal{L} = \lVert x - D(z) \rVert_1 + \lVert x - D(z) \rVert_2^2
                 + \beta\, \mathrm{KL}(q(z \mid x) \,\|\, \mathcal{N}(0, I)), \qquad z \sim q(z \mid x)

At the end of training the latent scale (``scaling_factor`` = 1 / std of posterior samples on training renders, as
SD computes its 0.18215) is written into the config and the VAE is saved with ``save_pretrained`` to ``export_dir``.

    python -m goldennoise fit --config configs/backbone/shapes_vae.yaml
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from goldennoise.backbones.shapes_parts import build_vae
from goldennoise.shipped import export_target


class ShapesVAEModule(L.LightningModule):
    """Trains :func:`build_vae` on renders in [-1, 1] (``batch["image"]``) and exports it when training ends.

    Args:
        block_out_channels: channels per resolution level; 3 levels give a 4× VAE (32 px → 8 × 8 latents).
        layers_per_block: ResNet layers per level.
        latent_channels: latent channels.
        norm_num_groups: GroupNorm groups (must divide every channel count).
        size: image side in pixels.
        kl_weight: β of the KL term.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        scale_samples: training renders used to measure the latent scale at export.
        export_dir: folder the trained VAE is saved to at the end of ``fit``; ``None`` skips the export. A folder
            inside the installed package is refused (checked here, before training) unless ``overwrite_shipped``.
        overwrite_shipped: let ``export_dir`` replace the weights shipped in the package.
    """

    def __init__(self, block_out_channels: tuple[int, ...] = (16, 32, 64), layers_per_block: int = 1,
                 latent_channels: int = 4, norm_num_groups: int = 8, size: int = 32, kl_weight: float = 1e-6,
                 lr: float = 1e-3, weight_decay: float = 0.0, scale_samples: int = 1024,
                 export_dir: str | None = None, overwrite_shipped: bool = False) -> None:
        super().__init__()
        if export_dir is not None:
            export_target(export_dir, "export_dir", overwrite_shipped)
        self.save_hyperparameters()
        self.vae = build_vae(block_out_channels, layers_per_block, latent_channels, norm_num_groups, size)

    def _losses(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        posterior = self.vae.encode(images).latent_dist
        reconstruction = self.vae.decode(posterior.sample()).sample  # (B, 3, H, W)
        l1, mse = F.l1_loss(reconstruction, images), F.mse_loss(reconstruction, images)
        kl = posterior.kl().mean() / images[0].numel()  # per pixel value, like the reconstruction terms
        return {"loss": l1 + mse + self.hparams.kl_weight * kl, "l1": l1, "mse": mse, "kl": kl}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self._losses(batch["image"])
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=False)
        return losses["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        images = batch["image"]
        reconstruction = self.vae.decode(self.vae.encode(images).latent_dist.mode()).sample.clamp(-1, 1)
        mse = F.mse_loss((reconstruction + 1) / 2, (images + 1) / 2)
        self.log_dict({"val/mse": mse, "val/psnr": -10 * torch.log10(mse)}, batch_size=len(images))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.vae.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    @torch.no_grad()
    def latent_scale(self) -> float:
        """1 / std of posterior samples over ``scale_samples`` training renders (the diffusers ``scaling_factor``)."""
        loader = self.trainer.datamodule.train_dataloader()
        latents, seen = [], 0
        for batch in loader:
            latents.append(self.vae.encode(batch["image"].to(self.device)).latent_dist.sample())
            seen += len(batch["image"])
            if seen >= self.hparams.scale_samples:
                break
        return float(1.0 / torch.cat(latents).std())

    def on_train_end(self) -> None:
        if self.hparams.export_dir is None or not self.trainer.is_global_zero:
            return
        folder = export_target(self.hparams.export_dir, "export_dir", self.hparams.overwrite_shipped)
        self.vae.register_to_config(scaling_factor=self.latent_scale())
        self.vae.save_pretrained(folder, safe_serialization=True)
