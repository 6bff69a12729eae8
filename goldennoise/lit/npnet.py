"""Train NPNet on noise pairs (Zhou et al., arXiv 2411.09502, Sec. 3.2; docs/npnet.md §3).

Batches follow the NPD contract: ``noise`` (B, C, h, w) source noise, ``target`` (B, C, h, w) golden noise,
``prompt_embeds`` (B, L, D) the cached token embeddings of **each sample's own prompt** (the official code
conditions a whole batch on ``prompt[0]``, docs/npnet.md §4.1), ``prompt`` and ``seed``. The loss is the paper's MSE
between NPNet's prediction and the target; the optimiser is AdamW with the official lr 1e-4 and weight decay 0.01.
Lightning handles DDP (gradients are all-reduced, unlike the official script) and precision; the SVD branch
always runs in fp32.

Validation logs the MSE and the identity baseline (source vs target). Every ``generation_every_n_epochs`` epochs,
with a backbone configured, it samples the same prompts and seeds from Gaussian noise and from NPNet noise,
scores both with the configured metrics (whose scorers stay out of checkpoints) and logs an image grid to MLflow.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import MLFlowLogger
from torch import nn
from torchmetrics import Metric

from goldennoise.backbones import Backbone, generate, load_backbone
from goldennoise.checks import check_finite, check_int, check_prompts
from goldennoise.lit.frozen import FrozenPartMixin
from goldennoise.noise.npnet import NPNet, NPNetConfig
from goldennoise.noise.npnet_checkpoint import init_swin_from_imagenet, load_npnet_state
from goldennoise.sampling import noise_for_seeds, parse_seeds


def _check_generation_settings(
    every_n_epochs: int,
    prompts: list[str] | None,
    seeds: list[int] | None,
    steps: int,
    guidance_scale: float,
    image_size: int | None,
) -> None:
    """Refuse generation-check settings that would fail (or silently mislead) only after an epoch of training."""
    check_int("generation_every_n_epochs", every_n_epochs, minimum=0)
    check_int("generation_steps", steps, minimum=1)
    check_finite("guidance_scale", guidance_scale)
    if image_size is not None:
        check_int("image_size", image_size, minimum=1)
    if prompts:
        check_prompts("generation_prompts", prompts)
    if seeds:
        seeds = parse_seeds(seeds)
        if prompts and len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} generation_seeds for {len(prompts)} generation_prompts; give one "
                             "seed per prompt.")


class NPNetModule(FrozenPartMixin, L.LightningModule):
    """NPNet with its training loop, validation and generation check.

    Args:
        net: network dimensions (see :data:`goldennoise.noise.PRESETS`); default the official SDXL network.
        swin_init: Swin initialisation when training from scratch: ``"imagenet"`` (the official ImageNet-1k Swin-T;
            needs the hub or its cache), ``"random"``, or a path to a local timm Swin-T checkpoint. Ignored when
            ``init_checkpoint`` is set or a fit resumes.
        init_checkpoint: start from these NPNet weights (official ``.pth``, safetensors, or a Lightning ``.ckpt``).
        lr: AdamW learning rate (official 1e-4).
        weight_decay: AdamW weight decay (official 0.01).
        betas: AdamW betas (official: PyTorch defaults).
        eps: AdamW epsilon.
        backbone: frozen backbone for the generation check (name, hub id or folder); ``None`` disables the check.
        backbone_dtype: weight dtype of the backbone.
        metrics: torchmetrics metrics ``update(images, prompts)`` for the generation check (e.g. ``ShapesAlignment``).
        generation_every_n_epochs: run the generation check every k epochs (0 disables it).
        generation_prompts: prompts of the generation check (each with some text).
        generation_seeds: one seed per prompt (default 0, 1, ...).
        generation_steps: sampler steps of the generation check (at least 1).
        guidance_scale: classifier-free guidance of the generation check.
        scheduler: sampler of the generation check (``ddim``, ``dpm_solver``, ``euler``).
        image_size: image side of the generation check; ``None`` uses the backbone's native size.

    Raises:
        ValueError: a generation setting is invalid; checked before the backbone is loaded.
    """

    def __init__(
        self,
        net: NPNetConfig | None = None,
        swin_init: str = "imagenet",
        init_checkpoint: str | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        backbone: str | None = None,
        backbone_dtype: str = "float32",
        metrics: list[Metric] | None = None,
        generation_every_n_epochs: int = 1,
        generation_prompts: list[str] | None = None,
        generation_seeds: list[int] | None = None,
        generation_steps: int = 10,
        guidance_scale: float = 5.5,
        scheduler: str = "ddim",
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        _check_generation_settings(generation_every_n_epochs, generation_prompts, generation_seeds,
                                   generation_steps, guidance_scale, image_size)
        config = NPNetConfig(**net) if isinstance(net, dict) else (net or NPNetConfig())
        self.save_hyperparameters(ignore=["net", "metrics"])
        self.hparams["net"] = config.to_dict()  # plain data: checkpoints load with weights_only
        self.net = NPNet(config)
        self.backbone: Backbone | None = load_backbone(backbone, backbone_dtype) if backbone else None
        self.metrics = nn.ModuleList(metrics or [])

    # --- setup ----------------------------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Initialise the weights for a fresh fit: ``init_checkpoint``, else the Swin init (not when resuming)."""
        if stage != "fit" or self.trainer.ckpt_path is not None:
            return
        if self.hparams.init_checkpoint:
            load_npnet_state(self.net, self.hparams.init_checkpoint)
        elif self.hparams.swin_init == "imagenet":
            init_swin_from_imagenet(self.net)
        elif self.hparams.swin_init != "random":
            init_swin_from_imagenet(self.net, self.hparams.swin_init)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW over every NPNet parameter (all branches, α and β), official defaults (docs/npnet.md §3)."""
        hp = self.hparams
        return torch.optim.AdamW(self.net.parameters(), lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps,
                                 weight_decay=hp.weight_decay)

    # --- training and validation ----------------------------------------------------------------------------------

    def forward(self, noise: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """Golden noise (B, C, h, w) float32 from noise (B, C, h, w) and per-sample embeddings (B, L, D)."""
        return self.net(noise, prompt_embeds)

    def _mse(self, batch: dict[str, Any]) -> torch.Tensor:
        noise, embeds = batch["noise"], batch["prompt_embeds"]
        if embeds.shape[0] != noise.shape[0]:
            raise ValueError(f"Batch has {noise.shape[0]} noises but {embeds.shape[0]} prompt embeddings; "
                             "NPNet trains on each sample's own prompt.")
        return F.mse_loss(self(noise, embeds), batch["target"].float())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._mse(batch)
        size = batch["noise"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/alpha_coef", 2 * torch.sigmoid(self.net.alpha.detach()) - 1, batch_size=size)
        self.log("train/beta", self.net.beta.detach(), batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        size = batch["noise"].shape[0]
        self.log("val/mse", self._mse(batch), prog_bar=True, batch_size=size, sync_dist=True)
        identity = F.mse_loss(batch["noise"].float(), batch["target"].float())
        self.log("val/identity_mse", identity, batch_size=size, sync_dist=True)

    # --- generation check -----------------------------------------------------------------------------------------

    def on_validation_epoch_end(self) -> None:
        """Every k epochs: Gaussian vs NPNet noise through the backbone, metrics for both, an image grid."""
        hp = self.hparams
        every = hp.generation_every_n_epochs
        if self.backbone is None or not hp.generation_prompts or every <= 0 or self.trainer.sanity_checking:
            return
        if (self.current_epoch + 1) % every:
            return
        result = self.generation_check(list(hp.generation_prompts), self._generation_seeds())
        for name, value in result["scores"].items():
            self.log(f"val/gen/{name}", value, sync_dist=False)
        if self.trainer.is_global_zero:
            self._log_grid(list(hp.generation_prompts), result["gaussian"], result["npnet"])

    def _generation_seeds(self) -> list[int]:
        seeds = self.hparams.generation_seeds
        return list(seeds) if seeds else list(range(len(self.hparams.generation_prompts)))

    @torch.no_grad()
    def generation_check(self, prompts: list[str], seeds: list[int]) -> dict[str, Any]:
        """Images from Gaussian and from NPNet noise on the same prompts and seeds, and the metrics of both.

        Returns:
            ``{"gaussian": (B, 3, H, W), "npnet": (B, 3, H, W), "scores": {"gaussian/<m>", "npnet/<m>",
            "delta/<m>": float}}``.
        """
        if self.backbone is None:
            raise RuntimeError("The generation check needs a backbone.")
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} generation seeds for {len(prompts)} prompts.")
        hp = self.hparams
        shape = self.backbone.latent_shape(hp.image_size, hp.image_size)
        noise = noise_for_seeds(seeds, shape, device=self.device)  # (B, C, h, w)
        with torch.autocast(self.device.type, enabled=False):
            embeds = self.backbone.encode_prompt(prompts)[0].embeds.float()  # (B, L, D)
            golden = self.net(noise, embeds)
            images = {name: self._sample(prompts, x) for name, x in (("gaussian", noise), ("npnet", golden))}
        scores: dict[str, float] = {}
        for metric in self.metrics:
            values = {name: self._score(metric, imgs, prompts) for name, imgs in images.items()}
            for key in values["gaussian"]:
                scores[f"gaussian/{key}"] = values["gaussian"][key]
                scores[f"npnet/{key}"] = values["npnet"][key]
                scores[f"delta/{key}"] = values["npnet"][key] - values["gaussian"][key]
        return {**images, "scores": scores}

    def _sample(self, prompts: list[str], noise: torch.Tensor) -> torch.Tensor:
        pipeline = self.backbone.pipeline(self.hparams.scheduler)  # fresh scheduler per run
        pipeline.set_progress_bar_config(disable=True)
        return generate(pipeline, prompts, noise, num_inference_steps=self.hparams.generation_steps,
                        guidance_scale=self.hparams.guidance_scale).float()

    @staticmethod
    def _score(metric: Metric, images: torch.Tensor, prompts: list[str]) -> dict[str, float]:
        """A metric's value(s) on one image set, flattened to ``{"<name>[/<key>]": float}``; resets the metric."""
        metric.reset()
        metric.update(images.to(metric.device), prompts)
        value = metric.compute()
        metric.reset()
        name = getattr(metric, "name", type(metric).__name__)
        if isinstance(value, dict):
            return {f"{name}/{k}": float(v) for k, v in value.items()}
        return {name: float(value)}

    def _log_grid(self, prompts: list[str], gaussian: torch.Tensor, npnet: torch.Tensor) -> None:
        figure = comparison_figure(prompts, gaussian, npnet)
        for logger in self.loggers:
            if isinstance(logger, MLFlowLogger):
                logger.experiment.log_figure(logger.run_id, figure, f"generation/epoch_{self.current_epoch:03d}.png")
        import matplotlib.pyplot as plt

        plt.close(figure)


def comparison_figure(prompts: list[str], gaussian: torch.Tensor, npnet: torch.Tensor) -> Any:
    """A matplotlib figure: one row per prompt, columns prompt / Gaussian-noise image / NPNet-noise image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(prompts)
    figure, axes = plt.subplots(rows, 2, figsize=(5, 2.5 * rows), squeeze=False)
    for i, prompt in enumerate(prompts):
        for j, (title, images) in enumerate((("Gaussian", gaussian), ("NPNet", npnet))):
            axes[i, j].imshow(images[i].detach().float().permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            axes[i, j].set_title(f"{title}: {prompt}" if j == 0 else title, fontsize=7, loc="left")
            axes[i, j].axis("off")
    figure.tight_layout()
    return figure
