"""Train a NoiseRefine refiner by multistep score distillation (Ahn et al., arXiv 2412.03895; docs/noiserefine.md).

Batches are teacher records (``TextImagePairDataModule``): ``noise`` (B, C, h, w) the Gaussian x_T, ``latent``
(B, C, h, w) the guided teacher x_0^Guide made from it, ``prompt`` (B prompts), ``seed`` (B,), and optionally
the cached conditioning ``prompt_embeds`` (B, L, D) with, where the backbone takes them, ``pooled_prompt_embeds``
and ``prompt_extras`` (else, or where a cache lacks a part the backbone takes, the prompts are encoded here). One
training step:

1. refiner call, adapter on: ``x̂_T = g_φ(x_T, c)`` (:func:`goldennoise.noise.noiserefine.refine`);
2. adapter off, no gradients: N-step unguided DDIM ``x̂_0`` from ``SG(x̂_T)`` (:func:`goldennoise.noise.msd.rollout`);
3. loss ``K·mean(x̂_T ⊙ SG(x̂_0 − x_0^Guide))`` (``loss="surrogate"``, default) or the literal stop-gradient unroll
   (``loss="literal"``, same gradient, for verification), plus an optional L2 pull of x̂_T towards x_T
   (``delta_weight``, off as in the paper); ``train/latent_mse`` is the true MSE to the teacher.

``loss="inverted"`` is not the paper's: step 2 inverts the teacher instead, ``x*_T = Inv_c(x_0^Guide)`` on the
rollout grid (:func:`goldennoise.noise.msd.inverted_teacher`: unguided, adapter off, no gradients, N calls), and the
loss is ``mean((x̂_T − x*_T)²)``, logged as ``train/inverted_mse``. Where the inversion is exact, x*_T is the noise
at which the pair's MSD loss is zero, so both losses have the same per-pair minimiser; they differ in how they weigh
an error on the way: MSD's surrogate gradient is the *image* error scaled by K (it takes the rollout's Jacobian as
``∏s_t·I``, docs/noiserefine.md), the regression's the *noise* error itself.

Only the LoRA weights train (AdamW); the base UNet stays frozen and, like the VAE and text encoder, out of
checkpoints, which hold the adapter only (:class:`~goldennoise.lit.frozen.FrozenPartMixin` keeps trained
parameters). Validation logs ``val/mse``, the latent MSE of the refined rollout to the teacher (select checkpoints
on it: unseen pairs), the Gaussian baseline ``val/identity_mse``, and statistics of ``x̂_T − x_T``: its RMS and
radial power spectrum (``val/delta/…``; the paper finds the change at low spatial frequencies). A
:class:`~goldennoise.lit.NoiseMethodHarness` in ``trainer.callbacks`` compares the live refiner (unguided) with
Gaussian unguided and CFG sampling on fixed prompts and seeds (scores, evaluation counts, an image grid in MLflow).
Lightning handles DDP and precision (``bf16-mixed``: UNet calls under autocast; K, the DDIM arithmetic and the loss
stay fp32).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from goldennoise.backbones import Backbone, PromptEmbeds, load_backbone
from goldennoise.checks import check_int
from goldennoise.lit.frozen import FrozenPartMixin
from goldennoise.lit.noise_method import NoiseMethodModule
from goldennoise.noise.msd import inverted_teacher, msd_constant, msd_literal_loss, msd_surrogate_loss, rollout
from goldennoise.noise.noiserefine import (
    DEFAULT_TARGETS,
    RefinedNoise,
    RefinerConfig,
    export_refiner,
    inject_refiner,
    load_refiner,
    lora_parameters,
    refine,
)
from goldennoise.tensor_files import naming_checkpoint

LOSSES = ("surrogate", "literal", "inverted")
LR_SCHEDULES = ("constant", "cosine")


def radial_power_spectrum(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Mean power of ``x`` (B, C, h, w) in ``bins`` equal rings of spatial frequency, lowest first; shape (bins,)."""
    power = torch.fft.fft2(x.float()).abs().pow(2).mean(dim=(0, 1))  # (h, w)
    fy = torch.fft.fftfreq(x.shape[-2], device=x.device)[:, None]
    fx = torch.fft.fftfreq(x.shape[-1], device=x.device)[None, :]
    radius = (fy**2 + fx**2).sqrt() / math.sqrt(0.5)  # in [0, 1]
    ring = (radius * bins).long().clamp(max=bins - 1)  # (h, w)
    total = torch.zeros(bins, device=x.device).index_add_(0, ring.flatten(), power.flatten())
    count = torch.zeros(bins, device=x.device).index_add_(0, ring.flatten(), torch.ones_like(power).flatten())
    return total / count.clamp(min=1)


class NoiseRefineModule(FrozenPartMixin, NoiseMethodModule):
    """A LoRA noise refiner on a frozen backbone, trained by MSD; its noise method is the live refiner.

    Args:
        backbone: built-in name, hub id or folder of the base model.
        backbone_dtype: weight dtype of the backbone (LoRA weights follow it).
        rank: LoRA rank (paper: 128; the shapes UNet allows at most 48).
        lora_alpha: LoRA α; ``None`` = rank.
        lora_dropout: LoRA dropout.
        target_modules: module-name suffixes that get a LoRA; ``None`` = attention, feed-forward and ResNet convs.
        output: refiner output form: ``residual`` (default, identity at init), ``epsilon`` or ``literal``.
        refiner_timestep: the refiner call's timestep; ``None`` = the last training timestep (999, as the paper).
        rollout_steps: N, the student's unguided DDIM steps (paper 10; 5 halves the step cost).
        loss: ``surrogate`` (one backward through the refiner), ``literal`` (the stop-gradient unroll) or
            ``inverted`` (regression onto the unguided inversion of the teacher, not the paper's: module docstring).
        lr: AdamW learning rate (not reported by the paper; 1e-3 on the shapes UNet, 1e-4 on SD).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        lr_schedule: ``constant`` or ``cosine`` (decay to ``min_lr_ratio``·lr over the fit's optimiser steps).
        min_lr_ratio: the cosine schedule's final lr as a share of ``lr``.
        gradient_checkpointing: recompute the network's blocks in the backward pass instead of keeping their
            activations (:meth:`~goldennoise.backbones.Backbone.enable_gradient_checkpointing`: adapter on, as in
            the refiner call), at the cost of about one more refiner forward per step.
        spectrum_bins: rings of the radial power spectrum logged for ``x̂_T − x_T``.
        delta_weight: weight λ of an optional regulariser ``λ·½·mean((x̂_T − x_T)²)`` added to the loss, an L2 pull
            of the refined noise towards the Gaussian one (HyperNoise, Eyring et al., arXiv 2508.09968, uses
            ``½‖x̂_T − x_T‖²`` as an approximation of the KL to N(0, I)). NoiseRefine has no regulariser (its change
            stays small and low-frequency without one), so the default is 0, off; the mean matches the scale of the
            surrogate's ``K·mean(...)``.
        init_refiner: an exported refiner file, or a shipped one's name (``shapes``), to start from instead of the
            identity: a warm start that fine-tunes it (on other teacher data, under another loss). Its LoRA settings
            (rank, α, dropout, targets, output form, timestep) must equal this module's, and its base model this
            backbone. Not the paper's; ``None`` (default) starts from the identity.
    """

    method_name = "noiserefine"

    def __init__(
        self,
        backbone: str = "shapes",
        backbone_dtype: str = "float32",
        rank: int = 128,
        lora_alpha: float | None = None,
        lora_dropout: float = 0.0,
        target_modules: list[str] | None = None,
        output: str = "residual",
        refiner_timestep: int | None = None,
        rollout_steps: int = 10,
        loss: str = "surrogate",
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        lr_schedule: str = "constant",
        min_lr_ratio: float = 0.1,
        gradient_checkpointing: bool = False,
        spectrum_bins: int = 4,
        delta_weight: float = 0.0,
        init_refiner: str | None = None,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"Unknown NoiseRefine loss {loss!r}; choose one of {LOSSES}.")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"Unknown lr_schedule {lr_schedule!r}; choose one of {LR_SCHEDULES}.")
        check_int("rollout_steps", rollout_steps, minimum=1)
        check_int("warmup_steps", warmup_steps, minimum=0)
        check_int("spectrum_bins", spectrum_bins, minimum=1)
        if not (math.isfinite(delta_weight) and delta_weight >= 0):
            raise ValueError(f"delta_weight must be a finite number >= 0, got {delta_weight}.")
        self.save_hyperparameters()
        self.config = RefinerConfig(rank, lora_alpha, lora_dropout, tuple(target_modules or DEFAULT_TARGETS), output,
                                    refiner_timestep)
        self.backbone: Backbone = load_backbone(backbone, backbone_dtype)
        if init_refiner is None:
            inject_refiner(self.backbone, self.config)
        else:
            self._start_from(init_refiner)
        if gradient_checkpointing:
            self.backbone.enable_gradient_checkpointing()
        self.schedule = self.backbone.ddim_schedule(rollout_steps)
        self.msd_constant = msd_constant(self.backbone, self.schedule)
        self._spectrum: list[torch.Tensor] = []

    def _start_from(self, checkpoint: str) -> None:
        """Inject the refiner of ``checkpoint`` (:func:`~goldennoise.noise.load_refiner`), trainable.

        Raises:
            ValueError: the file's LoRA settings differ from this module's (each difference named), or the file is
                not a refiner of this base model.
        """
        loaded = load_refiner(self.backbone, checkpoint)
        differ = [f"{item.name} {getattr(loaded, item.name)!r} (here {getattr(self.config, item.name)!r})"
                  for item in dataclasses.fields(RefinerConfig)
                  if getattr(loaded, item.name) != getattr(self.config, item.name)]
        if differ:
            raise ValueError(f"init_refiner {checkpoint} was built with {', '.join(differ)}; give this module the "
                             "same LoRA settings to start from it.")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the adapter only (:class:`FrozenPartMixin`); a warm start's file is not needed to load it again."""
        super().on_save_checkpoint(checkpoint)
        if "hyper_parameters" in checkpoint:  # the state dict holds the whole adapter
            checkpoint["hyper_parameters"] = {**checkpoint["hyper_parameters"], "init_refiner": None}

    # --- the method -----------------------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> NoiseRefineModule:
        """Switch the LoRA's own dropout with the module; the frozen base stays in eval mode."""
        super().train(mode)
        for layer in self.backbone.adapter_layers():
            layer.lora_dropout.train(mode)
        return self

    def noise_method(self) -> RefinedNoise:
        """The live refiner as a noise method (shares this module's backbone and LoRA weights)."""
        return RefinedNoise(self.backbone, self.config)

    def export(self, path: str | Path) -> Path:
        """Write the current LoRA as a diffusers/PEFT safetensors file (:func:`~goldennoise.noise.export_refiner`)."""
        return export_refiner(self.backbone, self.config, path, self.hparams.backbone)

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW over the LoRA weights only, with linear warm-up and an optional cosine decay."""
        hp = self.hparams
        optimizer = torch.optim.AdamW(lora_parameters(self.backbone), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1) if self._trainer is not None else 1

        def factor(step: int) -> float:
            if step < hp.warmup_steps:
                return (step + 1) / hp.warmup_steps
            if hp.lr_schedule == "constant":
                return 1.0
            progress = min((step - hp.warmup_steps) / max(total - hp.warmup_steps, 1), 1.0)
            return hp.min_lr_ratio + (1 - hp.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- steps ------------------------------------------------------------------------------------------------------

    @functools.cached_property
    def conditioning_parts(self) -> tuple[bool, frozenset[str]]:
        """What the backbone's conditioning holds besides token embeddings: ``(pooled?, extras keys)``.

        SD: nothing; SDXL, SD3 and FLUX: a pooled embedding; Hunyuan-DiT: extras. A batch's cached conditioning is
        used only when it holds all of it (a cache built before pooled embeddings were cached holds tokens only).
        """
        with torch.no_grad():
            probe = self.backbone.encode_prompt([""])[0]
        return probe.pooled is not None, frozenset(probe.extras)

    def conditioning(self, batch: dict[str, Any]) -> PromptEmbeds:
        """The batch's cached conditioning where it is complete, else its prompts encoded now.

        The text encoders are frozen, so the encoding runs without gradients.
        """
        needs_pooled, extra_keys = self.conditioning_parts
        pooled, extras = batch.get("pooled_prompt_embeds"), batch.get("prompt_extras", {})
        if "prompt_embeds" in batch and (pooled is not None or not needs_pooled) and extra_keys <= set(extras):
            cond = PromptEmbeds(batch["prompt_embeds"], pooled if needs_pooled else None,
                                {key: extras[key] for key in extra_keys})
            rows = {key: len(value) for key, value in
                    {"embeds": cond.embeds, "pooled": cond.pooled, **cond.extras}.items() if value is not None}
            if set(rows.values()) != {batch["noise"].shape[0]}:
                raise ValueError(f"Batch has {batch['noise'].shape[0]} noises but cached conditioning rows {rows}.")
            return cond.to(self.backbone.dtype)
        with torch.no_grad():
            return self.backbone.encode_prompt(list(batch["prompt"]))[0]

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``(loss, x̂_T, diagnostics)`` of a batch under the configured loss form.

        The diagnostic is the true error the loss form targets: ``latent_mse``, the student's latent MSE to the
        teacher (MSD forms), or ``inverted_mse``, the refined noise's MSE to the inverted teacher (``inverted``).
        """
        noise, teacher = batch["noise"].float(), batch["latent"].float()
        if noise.shape != teacher.shape:
            raise ValueError(f"Batch noise {tuple(noise.shape)} and teacher latent {tuple(teacher.shape)} differ.")
        cond = self.conditioning(batch)
        refined = refine(self.backbone, noise, cond, self.config)  # (B, C, h, w)
        if self.hparams.loss == "inverted":
            loss = F.mse_loss(refined.float(), inverted_teacher(self.backbone, teacher, cond, self.schedule))
            diagnostics = {"inverted_mse": loss.detach()}
        else:
            student = rollout(self.backbone, refined, cond, self.schedule)
            if self.hparams.loss == "literal":
                loss = msd_literal_loss(self.backbone, refined, cond, teacher, self.schedule)
            else:
                loss = msd_surrogate_loss(refined, student, teacher, self.msd_constant)
            diagnostics = {"latent_mse": F.mse_loss(student, teacher)}
        if self.hparams.delta_weight:
            loss = loss + self.hparams.delta_weight * 0.5 * (refined - noise).pow(2).mean()
        return loss, refined, diagnostics

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, refined, diagnostics = self.training_loss(batch)
        size = refined.shape[0]
        self.log("train/loss", loss, batch_size=size)
        for name, value in diagnostics.items():
            self.log(f"train/{name}", value, prog_bar=True, batch_size=size)
        self.log("train/delta_rms", (refined - batch["noise"].float()).detach().pow(2).mean().sqrt(),
                 batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        noise, teacher = batch["noise"].float(), batch["latent"].float()
        cond = self.conditioning(batch)
        refined = refine(self.backbone, noise, cond, self.config)
        size = noise.shape[0]
        log = {"batch_size": size, "sync_dist": True}
        self.log("val/mse", F.mse_loss(rollout(self.backbone, refined, cond, self.schedule), teacher),
                 prog_bar=True, **log)
        self.log("val/identity_mse", F.mse_loss(rollout(self.backbone, noise, cond, self.schedule), teacher), **log)
        delta = refined - noise
        self.log("val/delta/rms", delta.pow(2).mean().sqrt(), **log)
        self._spectrum.append(radial_power_spectrum(delta, self.hparams.spectrum_bins) * size)

    def on_validation_epoch_end(self) -> None:
        """Log the radial power spectrum of ``x̂_T − x_T`` per ring and its share in the lowest ring."""
        if not self._spectrum:
            return
        spectrum = torch.stack(self._spectrum).sum(0)
        self._spectrum = []
        share = spectrum / spectrum.sum().clamp(min=1e-30)
        for ring, value in enumerate(share):
            self.log(f"val/delta/spectrum_ring{ring}", value, sync_dist=True)


def export_refiner_command(argv: list[str]) -> Path:
    """``python -m goldennoise export-refiner <checkpoint.ckpt> <refiner.safetensors>``: a fit's LoRA as a file.

    Raises:
        FileNotFoundError: no checkpoint at the path.
        CheckpointError: the file cannot be read as a NoiseRefine checkpoint (it is named).
        ValueError: the module refuses the checkpoint's settings, or the output is not a ``.safetensors`` file.
    """
    parser = argparse.ArgumentParser(
        prog="python -m goldennoise export-refiner",
        description="Write a NoiseRefine fit's checkpoint as the standard diffusers/PEFT LoRA .safetensors file, "
                    "loadable by NoiseRefineNoise(checkpoint=...) and by pipeline.load_lora_weights.")
    parser.add_argument("checkpoint", help="a NoiseRefineModule checkpoint (.ckpt), e.g. the path a fit prints")
    parser.add_argument("output", help="the .safetensors file to write")
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"No checkpoint file at {args.checkpoint}.")
    with naming_checkpoint(args.checkpoint, keep=(ValueError, PermissionError, IsADirectoryError)):
        module = load_noiserefine_checkpoint(args.checkpoint)  # a ValueError is the module's, about its settings
    path = module.export(args.output)
    print(f"wrote {path}")
    return path


def load_noiserefine_checkpoint(path: str | Path, map_location: str = "cpu") -> NoiseRefineModule:
    """A :class:`NoiseRefineModule` from a Lightning checkpoint (adapter from the file, base from the backbone)."""
    module = NoiseRefineModule.load_from_checkpoint(str(path), map_location=map_location, weights_only=False,
                                                    init_refiner=None)  # checkpoints written before it was cleared
    return module.eval()
