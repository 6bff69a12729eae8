"""Plug NPNet into any diffusers text-to-image pipeline: (noise, prompt) → golden noise (docs/npnet.md §5).

The official inference encodes the prompt with the pipeline's own ``encode_prompt`` (positive per-token embeddings),
runs NPNet in fp32 and passes the result as ``latents=`` (the pipeline scales it by ``init_noise_sigma``; never
pre-scale). :class:`NPNetPlugin` does the same for a batch, whatever the noise's dtype and device.

**Other latent sizes.** The official weights are trained on 128×128 latents only (1024 px; official issue #8).
``resize="error"`` (default) refuses any other size. ``resize="nearest-exact"`` or ``"bilinear"`` resizes the noise
to the network's size, runs NPNet and resizes the result back, as the ComfyUI ports do — a heuristic that is
**not in the paper** (bilinear also lowers the noise's variance).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from goldennoise.backbones import Backbone, generate
from goldennoise.checks import check_tensor
from goldennoise.noise.base import NoiseContext, NoiseMethod
from goldennoise.noise.npnet import PRESETS, NPNet
from goldennoise.noise.npnet_checkpoint import load_npnet

ResizePolicy = Literal["error", "nearest-exact", "bilinear"]


def encode_for_npnet(pipeline: Any, prompts: list[str]) -> torch.Tensor:
    """Positive per-token prompt embeddings (B, L, D), as NPNet was trained on (docs/npnet.md §1.2).

    Args:
        pipeline: a goldennoise :class:`~goldennoise.backbones.Backbone` or a diffusers pipeline with
            ``encode_prompt`` (SD, SDXL, Hunyuan-DiT); the first returned tensor is used.
        prompts: B prompts.
    """
    if isinstance(pipeline, Backbone):
        return pipeline.encode_prompt(list(prompts))[0].embeds
    with torch.no_grad():
        out = pipeline.encode_prompt(prompt=list(prompts), device=pipeline.device, num_images_per_prompt=1,
                                     do_classifier_free_guidance=False)
    return out[0]


class NPNetPlugin(nn.Module):
    """Wrap a trained :class:`NPNet` for inference on any batch, dtype and device.

    Args:
        net: the network (e.g. from :func:`goldennoise.noise.load_npnet`); put it on the device you want it to run on.
        resize: policy for latents of another size (see the module docstring): ``"error"``, ``"nearest-exact"`` or
            ``"bilinear"``.
    """

    def __init__(self, net: NPNet, resize: ResizePolicy = "error") -> None:
        super().__init__()
        if resize not in ("error", "nearest-exact", "bilinear"):
            raise ValueError(f"Unknown resize policy {resize!r}; choose 'error', 'nearest-exact' or 'bilinear'.")
        self.net, self.resize = net.eval(), resize

    def _check_inputs(self, noise: torch.Tensor, prompt_embeds: torch.Tensor) -> tuple[int, int]:
        """Refuse non-float, non-finite or misshapen inputs; return the noise's latent size (h, w)."""
        channels, size, _ = self.net.latent_shape
        check_tensor("noise", noise, shape=("B", channels, "h", "w"))
        config = self.net.config
        check_tensor("prompt_embeds", prompt_embeds, shape=("B", config.text_len, config.text_dim))
        if prompt_embeds.shape[0] not in (1, noise.shape[0]):
            raise ValueError(f"prompt_embeds has batch {prompt_embeds.shape[0]} for {noise.shape[0]} noises; "
                             "give one embedding per noise or one for all.")
        h, w = noise.shape[-2:]
        if (h, w) != (size, size) and self.resize == "error":
            raise ValueError(f"This NPNet was trained on {size}x{size} latents, got {h}x{w}; generate at the trained "
                             "size or pass resize='nearest-exact' or 'bilinear' (a heuristic, not in the paper).")
        return h, w

    @torch.no_grad()
    def forward(self, noise: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """Golden noise like ``noise`` (B, C, h, w) (same dtype and device) from embeddings (B or 1, L, D).

        Raises:
            TypeError: ``noise`` or ``prompt_embeds`` is not a floating-point tensor.
            ValueError: either holds NaN or infinite values or has the wrong shape for this network.
        """
        h, w = self._check_inputs(noise, prompt_embeds)
        size = self.net.config.latent_size
        param = next(self.net.parameters())
        x = noise.to(param.device, torch.float32)
        if (h, w) != (size, size):
            x = F.interpolate(x, size=(size, size), mode=self.resize)
        embeds = prompt_embeds.to(param.device, torch.float32)
        if embeds.shape[0] == 1 and x.shape[0] > 1:
            embeds = embeds.expand(x.shape[0], -1, -1)  # one prompt for many noises
        golden = self.net(x, embeds)  # (B, C, S, S) float32
        if (h, w) != (size, size):
            golden = F.interpolate(golden, size=(h, w), mode=self.resize)
        return golden.to(noise.device, noise.dtype)

    def for_pipeline(self, pipeline: Any, prompts: list[str], noise: torch.Tensor) -> torch.Tensor:
        """Golden noise for ``prompts`` under ``pipeline``'s own text encoder (see :func:`encode_for_npnet`)."""
        return self(noise, encode_for_npnet(pipeline, prompts))

    def generate(self, pipeline: Any, prompts: list[str], noise: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] from golden noise; ``kwargs`` go to :func:`goldennoise.backbones.generate`."""
        return generate(pipeline, prompts, self.for_pipeline(pipeline, prompts, noise), **kwargs)


class NPNetNetworkNoise(NoiseMethod):
    """NPNet as a noise method around a network in memory, e.g. the live network of a training module.

    The network is shared, not copied: a LightningModule's :meth:`noise_method` returns one around its ``self.net``,
    so an evaluation during training sees the current weights. :class:`NPNetPlugin` puts the network in eval mode.

    Args:
        net: the NPNet; put it on the device it should run on.
        resize: policy for latents of another size than the network's (see :class:`NPNetPlugin`).
    """

    def __init__(self, net: NPNet, resize: ResizePolicy = "error") -> None:
        super().__init__()
        self.plugin = NPNetPlugin(net, resize)

    def describe(self) -> dict[str, Any]:
        """The settings and a digest of the weights (the same path may hold other weights later)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.plugin.net.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return {**super().describe(), "weights_sha256": digest.hexdigest()[:16]}

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        return self.plugin(noise, ctx.cond.embeds)  # (B, C, h, w); positive per-token embeddings, as trained


class NPNetNoise(NPNetNetworkNoise):
    """NPNet as a noise method: golden noise from the noise and each sample's own prompt embedding (docs/npnet.md §5).

    Args:
        checkpoint: NPNet weights: a file :func:`~goldennoise.noise.load_npnet` reads (official ``.pth``,
            safetensors, Lightning ``.ckpt``) or a shipped name such as ``"shapes"``.
        preset: network dimensions by :data:`~goldennoise.noise.PRESETS` name; ``None`` infers them from the file.
        resize: policy for latents of another size than the network's (see :class:`NPNetPlugin`).
    """

    def __init__(self, checkpoint: str = "shapes", preset: str | None = None, resize: ResizePolicy = "error") -> None:
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"Unknown NPNet preset {preset!r}; choose one of {sorted(PRESETS)}.")
        config = PRESETS[preset] if preset is not None else None
        super().__init__(load_npnet(checkpoint, config=config), resize)
        self.checkpoint, self.preset = checkpoint, preset
