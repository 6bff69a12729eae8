r"""Stage 2 of the embedded ``shapes`` backbone: a UNet and a small CLIP text encoder trained jointly from scratch.

The ``UNet2DConditionModel`` and ``CLIPTextModel`` learn on the latents of the frozen stage-1 VAE.

The objective is DDPM's ε-prediction loss (Ho et al., 2020, Algorithm 1) in latent space (Rombach et al., 2022):

.. math::
    \mathcal{L} = \mathbb{E}_{z_0, c, \epsilon, t} \lVert \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t} z_0
                  + \sqrt{1 - \bar\alpha_t}\, \epsilon, t, \tau(c)) \rVert_2^2

with the prompt replaced by ``""`` with probability ``uncond_prob`` so one network also gives the unconditional
prediction classifier-free guidance needs (Ho & Salimans, 2022). An exponential moving average of the UNet and text
encoder weights is kept in the module (so it is in every checkpoint and resumes with it) and is what gets exported:
at the end of ``fit`` a ``StableDiffusionPipeline`` (EMA UNet and text encoder, the frozen VAE, the offline CLIP
tokenizer, a DDIM scheduler with the training noise schedule) is written with ``save_pretrained`` to ``export_dir``.

    python -m goldennoise fit --config configs/backbone/shapes_unet.yaml
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from goldennoise.backbones.saving import save_pipeline
from goldennoise.backbones.shapes_parts import (
    build_text_encoder,
    build_unet,
    load_vae,
    shapes_pipeline,
    training_scheduler,
    vae_downsampling,
)
from goldennoise.backbones.tiny import clip_tokenizer
from goldennoise.lit.frozen import FrozenPartMixin
from goldennoise.shipped import export_target


class ShapesDiffusionModule(FrozenPartMixin, L.LightningModule):
    """Trains the UNet and text encoder of the ``shapes`` backbone on renders (``batch["image"]``, ``["prompt"]``).

    Args:
        vae: folder of the stage-1 VAE (``save_pretrained`` output, with its ``scaling_factor``); kept frozen.
        block_out_channels: UNet channels per level.
        layers_per_block: UNet ResNet + attention layers per level.
        attention_heads: attention heads in the UNet.
        text_hidden_size: text encoder width (also the UNet's cross-attention width).
        text_layers: text encoder layers.
        text_heads: text encoder attention heads.
        max_length: tokenizer context length (prompts here are at most 12 tokens).
        uncond_prob: probability of training on the empty prompt instead of the real one.
        ema_decay: decay of the weight EMA.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear learning-rate warm-up.
        beta_schedule: diffusers noise schedule name (``squaredcos_cap_v2``: the cosine schedule, for small latents).
        num_train_timesteps: diffusion steps.
        export_dir: folder the pipeline is saved to at the end of ``fit``; ``None`` skips the export. A folder
            inside the installed package is refused (checked here, before training) unless ``overwrite_shipped``.
        export_dtype: weight dtype of the export (``float16`` halves the files; loading may upcast).
        overwrite_shipped: let ``export_dir`` replace the weights shipped in the package.
    """

    frozen_attribute = "vae"  # the frozen stage-1 VAE stays in eval mode and out of checkpoints

    def __init__(self, vae: str = "runs/shapes_vae/export", block_out_channels: tuple[int, ...] = (48, 96),
                 layers_per_block: int = 1, attention_heads: int = 4, text_hidden_size: int = 64, text_layers: int = 2,
                 text_heads: int = 4, max_length: int = 16, uncond_prob: float = 0.1, ema_decay: float = 0.999,
                 lr: float = 5e-4, weight_decay: float = 0.0, warmup_steps: int = 200,
                 beta_schedule: str = "squaredcos_cap_v2", num_train_timesteps: int = 1000,
                 export_dir: str | None = None, export_dtype: str = "float16", overwrite_shipped: bool = False) -> None:
        super().__init__()
        if export_dir is not None:
            export_target(export_dir, "export_dir", overwrite_shipped)
        self.save_hyperparameters()
        self.vae = load_vae(vae).eval().requires_grad_(False)
        self.tokenizer = clip_tokenizer(max_length=max_length)
        self.text_encoder = build_text_encoder(self.tokenizer, text_hidden_size, text_layers, text_heads,
                                               2 * text_hidden_size)
        latent_size = self.vae.config.sample_size // vae_downsampling(self.vae)
        self.unet = build_unet(latent_size, self.vae.config.latent_channels, block_out_channels, layers_per_block,
                               text_hidden_size, attention_heads)
        self.noise_scheduler = training_scheduler(num_train_timesteps, beta_schedule)
        trained = nn.ModuleDict({"unet": self.unet, "text_encoder": self.text_encoder})
        self.ema = AveragedModel(trained, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
        self.ema.requires_grad_(False)  # updated by averaging, never by the optimizer

    def encode_prompts(self, prompts: list[str], text_encoder: nn.Module | None = None) -> torch.Tensor:
        """Last hidden states ``(B, max_length, D)`` of ``prompts``, padded to the context length as SD does."""
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(self.device)
        return (text_encoder or self.text_encoder)(ids)[0]

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Scaled VAE latents ``(B, C, h, w)`` of images in [-1, 1], one posterior sample each."""
        return self.vae.encode(images).latent_dist.sample() * self.vae.config.scaling_factor

    def _drop_prompts(self, prompts: list[str]) -> list[str]:
        keep = torch.rand(len(prompts)) >= self.hparams.uncond_prob
        return [p if k else "" for p, k in zip(prompts, keep.tolist(), strict=True)]

    def diffusion_loss(self, latents: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor,
                       timesteps: torch.Tensor) -> torch.Tensor:
        """ε-prediction MSE at the given noise and timesteps (Algorithm 1 of Ho et al., 2020)."""
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        return F.mse_loss(self.unet(noisy, timesteps, encoder_hidden_states=cond).sample, noise)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        latents = self.encode_images(batch["image"])  # (B, 4, 8, 8)
        cond = self.encode_prompts(self._drop_prompts(list(batch["prompt"])))
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, self.hparams.num_train_timesteps, (len(latents),), device=self.device)
        loss = self.diffusion_loss(latents, cond, noise, timesteps)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(latents))
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Step, then update the EMA here rather than in ``on_train_batch_end``.

        Checkpoint callbacks run before the module's ``on_train_batch_end``, so an update there would be missing from
        the step's checkpoint and lost on resume.
        """
        super().optimizer_step(*args, **kwargs)
        self.ema.update_parameters(nn.ModuleDict({"unet": self.unet, "text_encoder": self.text_encoder}))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # Fixed noise and timesteps per batch, so the validation loss is comparable across epochs.
        generator = torch.Generator().manual_seed(batch_idx)
        latents = self.vae.encode(batch["image"]).latent_dist.mode() * self.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        timesteps = torch.randint(0, self.hparams.num_train_timesteps, (len(latents),), generator=generator)
        cond = self.encode_prompts(list(batch["prompt"]))
        self.log("val/loss", self.diffusion_loss(latents, cond, noise, timesteps.to(self.device)),
                 batch_size=len(latents))

    def configure_optimizers(self) -> dict:
        params = [*self.unet.parameters(), *self.text_encoder.parameters()]
        optimizer = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warmup = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / max(self.hparams.warmup_steps, 1)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}

    def pipeline(self, parts: dict[str, nn.Module] | None = None) -> Any:
        """A ``StableDiffusionPipeline`` of the EMA weights (or ``parts``), the VAE, the tokenizer and DDIM."""
        parts = parts or {"vae": self.vae, **self.ema.module}
        return shapes_pipeline(parts["vae"], parts["text_encoder"], self.tokenizer, parts["unet"],
                               self.hparams.num_train_timesteps, self.hparams.beta_schedule)

    def on_train_end(self) -> None:
        if self.hparams.export_dir is None or not self.trainer.is_global_zero:
            return
        self.export(self.hparams.export_dir, self.hparams.export_dtype, self.hparams.overwrite_shipped)

    def export(self, folder: str | Path, dtype: str = "float16", overwrite_shipped: bool = False) -> None:
        """Save :meth:`pipeline` with :func:`save_pipeline`, its weights cast to ``dtype`` on copies.

        The files hold ``dtype``; every component loads in float32 by default (``from_pretrained(folder)``), or in the
        ``torch_dtype`` asked for. A ``folder`` inside the installed package is refused unless ``overwrite_shipped``.
        """
        torch_dtype = {"float16": torch.float16, "float32": torch.float32}[dtype]
        parts = {"vae": self.vae, **self.ema.module}
        cast = {k: copy.deepcopy(v).to(torch_dtype) for k, v in parts.items()}
        save_pipeline(self.pipeline(cast), folder, overwrite_shipped)
