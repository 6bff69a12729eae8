"""Train NPNet on noise pairs (Zhou et al., arXiv 2411.09502, Sec. 3.2; docs/npnet.md §3).

Batches follow the NPD contract: ``noise`` (B, C, h, w) source noise, ``target`` (B, C, h, w) golden noise,
``prompt_embeds`` (B, L, D) the cached token embeddings of **each sample's own prompt** (the official code
conditions a whole batch on ``prompt[0]``, docs/npnet.md §4.1), ``prompt`` and ``seed``. The loss is the paper's MSE
between NPNet's prediction and the target; the optimiser is AdamW with the official lr 1e-4 and weight decay 0.01.
Lightning handles DDP (gradients are all-reduced, unlike the official script) and precision; the SVD branch
always runs in fp32.

Validation logs the MSE and the identity baseline (source vs target). The module is a
:class:`~goldennoise.lit.NoiseMethodModule`: a :class:`~goldennoise.lit.NoiseMethodHarness` in
``trainer.callbacks`` compares its live NPNet with Gaussian noise through a backbone every few epochs (scores and an
image grid in MLflow), evaluates it on ``test`` and generates with it on ``predict``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from goldennoise.lit.noise_method import NoiseMethodModule
from goldennoise.noise.npnet import NPNet, NPNetConfig
from goldennoise.noise.npnet_checkpoint import init_swin_from_imagenet, load_npnet_state
from goldennoise.noise.plugin import NPNetNetworkNoise

DENOISER_FOLDERS = ("unet", "transformer")
"""Where a diffusers backbone keeps its denoiser's config: a UNet, else a DiT."""


def backbone_dims(backbone: str) -> dict[str, int]:
    """NPNet's input dimensions for ``backbone``: latent channels and side at its native size, tokens and their width.

    ``text_dim`` is the denoiser's cross-attention width (SDXL: the two CLIP encoders' 768 + 1280 = 2048), ``text_len``
    its config's ``text_len`` (Hunyuan-DiT) or the first tokenizer's length (77 for CLIP). A hub id or folder is read
    from its config files only (no weights); a built-in name (``shapes``, ``tiny-sdxl``) is built.

    Raises:
        ValueError: the backbone's config files cannot be read (offline without them in the cache, a bad name).
    """
    from goldennoise.backbones.loading import BUILTIN, load_backbone

    if backbone in BUILTIN:
        model = load_backbone(backbone)
        config, text_len = dict(model.network.config), model.tokenizers[0].model_max_length
    else:
        config = _backbone_json(backbone, DENOISER_FOLDERS, "config.json")
        text_len = config.get("text_len") or _backbone_json(backbone, ("tokenizer",),
                                                             "tokenizer_config.json")["model_max_length"]
    return {"latent_channels": int(config["in_channels"]), "latent_size": int(config["sample_size"]),
            "text_dim": int(config["cross_attention_dim"]), "text_len": int(text_len)}


def _backbone_json(backbone: str, folders: tuple[str, ...], filename: str) -> dict[str, Any]:
    """The first of ``<folder>/<filename>`` that a backbone folder or hub id holds."""
    from huggingface_hub import hf_hub_download

    errors = []
    for folder in folders:
        local = Path(backbone) / folder / filename
        try:
            path = local if local.is_file() else Path(hf_hub_download(backbone, filename, subfolder=folder))
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:  # offline and not cached, no such file or id, not JSON: the next
            errors.append(f"{folder}/{filename}: {type(err).__name__}")
    raise ValueError(f"Cannot read NPNet's dimensions from backbone {backbone!r} ({'; '.join(errors)}); make its "
                     "config files reachable, or set model.init_args.backbone to null and give the dimensions in "
                     "model.init_args.net.")


class NPNetModule(NoiseMethodModule):
    """NPNet with its training loop and validation; its noise method is the live network (:meth:`noise_method`).

    Generation checks, ``test`` and ``predict`` run through a :class:`~goldennoise.lit.NoiseMethodHarness` in
    ``trainer.callbacks`` (its backbone, prompts, sampler settings and metrics), logged under the name ``npnet``.

    Args:
        net: network dimensions (see :data:`goldennoise.noise.PRESETS`); default the official SDXL network.
        backbone: take ``net``'s latent and text dimensions from this backbone (:func:`backbone_dims`: a built-in
            name, hub id or folder; config files only); ``None`` keeps ``net``'s own. The checkpoint stores the
            resolved dimensions, so it loads without the backbone.
        swin_init: Swin initialisation when training from scratch: ``"imagenet"`` (the official ImageNet-1k Swin-T;
            needs the hub or its cache), ``"random"``, or a path to a local timm Swin-T checkpoint. Ignored when
            ``init_checkpoint`` is set or a fit resumes.
        init_checkpoint: start from these NPNet weights (official ``.pth``, safetensors, or a Lightning ``.ckpt``).
        lr: AdamW learning rate (official 1e-4).
        weight_decay: AdamW weight decay (official 0.01).
        betas: AdamW betas (official: PyTorch defaults).
        eps: AdamW epsilon.
    """

    method_name = "npnet"

    def __init__(
        self,
        net: NPNetConfig | None = None,
        backbone: str | None = None,
        swin_init: str = "imagenet",
        init_checkpoint: str | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        config = NPNetConfig(**net) if isinstance(net, dict) else (net or NPNetConfig())
        if backbone is not None:
            config = replace(config, **backbone_dims(backbone))
        self.save_hyperparameters(ignore=["net", "backbone"])
        self.hparams["net"] = config.to_dict()  # plain data: checkpoints load with weights_only
        self.net = NPNet(config)

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

    def noise_method(self) -> NPNetNetworkNoise:
        """NPNet noise from the live network (its current weights, shared; the plug-in puts it in eval mode)."""
        return NPNetNetworkNoise(self.net)

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
