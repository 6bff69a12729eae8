"""The smallest NPNet stand-in: regress the re-denoise golden noise with a 1×1 convolution.

Targets are computed on the fly by NPNet's re-denoise step (Zhou et al., 2024, arXiv 2411.09502, Sec. 3.1) on the
module's frozen backbone, so the module exercises the whole stack — backbone, sampling, data, Lightning, MLflow —
in seconds on a CPU. It is the model of the smoke configuration, and its validation logs the identity baseline
(the MSE between the random noise and its golden noise) beside the model's MSE so an effect is visible.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from goldennoise.checks import check_int
from goldennoise.lit.frozen import FrozenBackboneModule
from goldennoise.sampling import RedenoiseConvention, noise_for_seeds, redenoise


class RedenoiseRegressionModule(FrozenBackboneModule):
    """Fit a per-pixel linear map from random noise to its golden noise.

    Args:
        backbone: built-in name, hub id or local folder of the frozen backbone.
        backbone_dtype: weight dtype of the backbone.
        image_size: image side in pixels; ``None`` uses the backbone's native size.
        num_steps: DDIM steps N (at least 2) of the grid the re-denoise step uses (its first two timesteps).
        denoise_guidance: ω_l, the guidance of the denoising move.
        inversion_guidance: ω_w, the guidance of the inversion move.
        convention: ``"official"`` or ``"textbook"`` inversion level (see :func:`goldennoise.sampling.redenoise_step`).
        lr: Adam learning rate.
    """

    def __init__(
        self,
        backbone: str = "tiny-sd",
        backbone_dtype: str = "float32",
        image_size: int | None = None,
        num_steps: int = 10,
        denoise_guidance: float = 5.5,
        inversion_guidance: float = 1.0,
        convention: RedenoiseConvention = "official",
        lr: float = 1e-2,
    ) -> None:
        check_int("num_steps", num_steps, minimum=2)  # before the backbone loads
        super().__init__(backbone, backbone_dtype)
        self.save_hyperparameters()
        self.latent_shape = self.backbone.latent_shape(image_size, image_size)
        self.schedule = self.backbone.schedule(num_steps, self.latent_shape[1:])  # built once, not per batch
        channels = self.latent_shape[0]
        self.mixer = nn.Conv2d(channels, channels, kernel_size=1)
        with torch.no_grad():  # start at the identity: the golden noise is close to its source
            self.mixer.weight.copy_(torch.eye(channels)[:, :, None, None])
            self.mixer.bias.zero_()

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """Map noise (B, C, h, w) to predicted golden noise of the same shape."""
        return self.mixer(noise)

    @torch.no_grad()
    def noise_pairs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The random noise of each seed and its golden noise under the batch's prompts, both (B, C, h, w)."""
        noise = noise_for_seeds(batch["seed"].tolist(), self.latent_shape, device=self.device)
        cond, uncond = self.backbone.encode_prompt(list(batch["prompt"]))
        hp = self.hparams
        golden = redenoise(
            self.backbone.denoiser(cond, uncond, hp.denoise_guidance),
            self.backbone.denoiser(cond, uncond, hp.inversion_guidance),
            noise, self.schedule, hp.convention,
        )
        return noise, golden

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        noise, golden = self.noise_pairs(batch)
        loss = F.mse_loss(self(noise), golden)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(noise))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        noise, golden = self.noise_pairs(batch)
        self.log("val/mse", F.mse_loss(self(noise), golden), batch_size=len(noise))
        self.log("val/identity_mse", F.mse_loss(noise, golden), batch_size=len(noise))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.mixer.parameters(), lr=self.hparams.lr)
