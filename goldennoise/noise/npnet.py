r"""NPNet, the noise prompt network of *Golden Noise for Diffusion Models* (Zhou et al., arXiv 2411.09502).

The forward pass follows docs/npnet.md §1.1 (the official code's form of the paper's Eq. for :math:`x'_{pred}`):

.. math::

    e = \mathrm{AdaGN}(x, \mathrm{flatten}(c)),\qquad
    x' = \mathrm{SVD}(x) + (2\sigma(\alpha) - 1)\,e + \beta\,\mathrm{Swin}(x + e)

with learnable scalars α = β = 0 at initialisation, so an untrained NPNet equals its SVD branch. Children carry the
official names (``unet_svd``, ``unet_embedding`` with ``swin`` / ``downconv`` / ``upconv``, ``alpha``, ``beta``)
so the official checkpoints load strictly; the text path is ``text_embedding`` in memory and ``embeeding`` (sic)
in the official file (mapped by :mod:`goldennoise.noise.npnet_checkpoint`). The quirks that matter for parity are
kept on purpose (docs/npnet.md §4.2): legacy ``nearest`` resizes, the resize of Swin's NHWC features as if they
were NCHW (§1.4), no ImageNet normalisation before Swin, the unused ``unet_svd.bn`` and Swin ``head.fc``.

Everything is parameterised by the latent (channels, size) and text (length, width): :data:`PRESETS` gives the
official SDXL / DreamShaper-XL / Hunyuan-DiT dimensions and the small ``shapes`` configuration.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformer
from torch import nn


@dataclass
class SwinConfig:
    """The timm Swin Transformer of the residual branch; the defaults are Swin-T (``swin_tiny_patch4_window7_224``).

    Attributes:
        img_size: side the noise is resized to before Swin (224 officially).
        patch_size: patch-embedding stride.
        window_size: attention window side.
        embed_dim: width of the first stage.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        drop_path_rate: stochastic depth, linearly spaced over all blocks (timm's default 0.1 is on in training).
    """

    img_size: int = 224
    patch_size: int = 4
    window_size: int = 7
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    drop_path_rate: float = 0.1

    @property
    def grid(self) -> int:
        """Side of the final token grid (7 for Swin-T at 224): the channels ``upconv`` sees after the NHWC resize."""
        return self.img_size // (self.patch_size * 2 ** (len(self.depths) - 1))

    @property
    def is_swin_tiny(self) -> bool:
        """True for the exact Swin-T architecture, whose ImageNet weights exist (drop-path aside)."""
        return replace(self, drop_path_rate=0.1) == SwinConfig()


@dataclass
class NPNetConfig:
    """Dimensions of an NPNet.

    Attributes:
        text_dim: width D of the token embeddings (2048 SDXL / DreamShaper-XL, 1024 Hunyuan-DiT).
        text_len: number L of tokens (77 officially).
        latent_channels: latent channels C; must be a square (2×2 tiling of 4 channels in the SVD branch).
        latent_size: latent side S (128 for 1024 px SDXL).
        svd_attention: the attention SVD variant of the released inference code; ``False`` is
            ``SVDNoiseUnet_wo_attention`` of the official SDXL training script (same keys, other forward;
            docs/npnet.md §1.3).
        svd_heads: attention heads over the singular components.
        svd_hidden: hidden width of ``mlp1`` / ``mlp2`` (64 officially).
        svd_mlp4_hidden: hidden width of ``mlp4`` (1024 officially).
        swin: the residual branch's Swin Transformer.
    """

    text_dim: int = 2048
    text_len: int = 77
    latent_channels: int = 4
    latent_size: int = 128
    svd_attention: bool = True
    svd_heads: int = 8
    svd_hidden: int = 64
    svd_mlp4_hidden: int = 1024
    swin: SwinConfig = field(default_factory=SwinConfig)

    def __post_init__(self) -> None:
        if isinstance(self.swin, dict):
            self.swin = SwinConfig(**self.swin)
        self.swin.depths, self.swin.num_heads = tuple(self.swin.depths), tuple(self.swin.num_heads)

    def to_dict(self) -> dict:
        """Plain-Python form (for Lightning hyper-parameters and YAML)."""
        return asdict(self)


SMALL_SWIN = SwinConfig(img_size=8, patch_size=1, window_size=4, embed_dim=32, depths=(2, 2), num_heads=(2, 4))
"""A ~0.2M-parameter residual branch for 8×8 latents: one token per latent cell (no resize), final grid 4.

Resizing an 8×8 latent up to 32 px with patch 2 would only repeat each cell over 4 tokens: 4× the tokens for the
same information (and ~6× the training time on a CPU)."""

PRESETS: dict[str, NPNetConfig] = {
    "sdxl": NPNetConfig(text_dim=2048),
    "dreamshaper_xl": NPNetConfig(text_dim=2048),
    "hunyuan_dit": NPNetConfig(text_dim=1024),
    "shapes": NPNetConfig(text_dim=64, text_len=16, latent_size=8, svd_mlp4_hidden=64, swin=SMALL_SWIN),
}
"""Official dimensions (docs/npnet.md §1.5) and the embedded ``shapes`` backbone (4×8×8 latents, 16×64 tokens)."""


def _mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    """Linear → ReLU → Linear (children ``0`` and ``2``, as the official keys need)."""
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.ReLU(), nn.Linear(hidden, dim_out))


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast on ``device`` (meta tensors, used for FLOP counting, have no autocast)."""
    return contextlib.nullcontext() if device.type == "meta" else torch.autocast(device.type, enabled=False)


class TokenAttention(nn.Module):
    """Multi-head self-attention over tokens, timm-style: ``qkv`` without bias, ``proj`` with bias, no norms."""

    def __init__(self, dim: int, num_heads: int = 8) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention width {dim} is not divisible by {num_heads} heads.")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) → (B, N, D); scale ``head_dim^-0.5`` (SDPA's default)."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, N, head_dim)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


def tile_channels(x: torch.Tensor) -> torch.Tensor:
    """(B, g², S, S) → (B, gS, gS): channel ``k = g·a + c`` to block row ``a``, column ``c`` (docs/npnet.md §1.3)."""
    b, c, s, _ = x.shape
    g = math.isqrt(c)
    return x.reshape(b, g, g, s, s).permute(0, 1, 3, 2, 4).reshape(b, g * s, g * s)


def untile_channels(m: torch.Tensor, channels: int) -> torch.Tensor:
    """Inverse of :func:`tile_channels`: (B, gS, gS) → (B, g², S, S)."""
    b, n, _ = m.shape
    g = math.isqrt(channels)
    s = n // g
    return m.reshape(b, g, s, g, s).permute(0, 1, 3, 2, 4).reshape(b, channels, s, s)


class SVDBranch(nn.Module):
    """``unet_svd`` (official ``SVDNoiseUnet``): predict new singular values of the tiled noise (docs/npnet.md §1.3).

    Runs in fp32 with autocast disabled: there is no half-precision SVD kernel, and its round-off feeds the output.

    Args:
        channels: latent channels (a square; 4 → a 2×2 tiling).
        size: latent side S; the tiled matrix is ``n × n`` with ``n = √channels · S``.
        attention: attention variant (released inference) or ``wo_attention`` (official SDXL training script).
        heads: attention heads.
        hidden: hidden width of ``mlp1`` / ``mlp2``.
        mlp4_hidden: hidden width of ``mlp4``.
    """

    def __init__(self, channels: int = 4, size: int = 128, attention: bool = True, heads: int = 8,
                 hidden: int = 64, mlp4_hidden: int = 1024) -> None:
        super().__init__()
        if math.isqrt(channels) ** 2 != channels:
            raise ValueError(f"The SVD branch tiles channels into a square grid; {channels} is not a square.")
        self.channels, self.attention_variant = channels, attention
        n = math.isqrt(channels) * size
        self.mlp1 = _mlp(n, hidden, n)  # rows of Uᵀ (left singular vectors)
        self.mlp2 = _mlp(n, hidden, n)  # rows of Vh (right singular vectors)
        self.mlp3 = nn.Sequential(nn.Linear(n, n))  # the singular values
        self.attention = TokenAttention(n, heads)
        self.bn = nn.BatchNorm2d(n)  # unused, as in the official model; kept for strict checkpoint loading
        self.mlp4 = _mlp(n, mlp4_hidden, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) → (B, C, S, S) in fp32: ``U · diag(s + Δs) · Vh`` of the tiled noise."""
        with _autocast_off(x.device):
            u, s, vh = torch.linalg.svd(tile_channels(x.float()))  # (B, n, n), (B, n), (B, n, n)
            tokens = self.mlp1(u.transpose(1, 2)) + self.mlp2(vh) + self.mlp3(s)[:, None]  # (B, n tokens, n)
            if self.attention_variant:
                delta = self.mlp4(self.attention(tokens).mean(dim=1))  # (B, n)
            else:  # SVDNoiseUnet_wo_attention: mlp4 per token, then the mean
                delta = self.mlp4(tokens).mean(dim=1)
            m = u @ torch.diag_embed(s + delta) @ vh  # (B, n, n)
            return untile_channels(m, self.channels)


class SwinResidualBranch(nn.Module):
    """``unet_embedding`` (official ``NoiseTransformer``): Swin features resized to the latent (docs/npnet.md §1.4).

    ``nearest``-resize to the Swin input side, 1×1 ``downconv`` to 3 channels (no ImageNet normalisation), Swin
    ``forward_features`` (NHWC ``(B, G, G, F)`` on timm ≥ 0.9), then a ``nearest`` resize of that NHWC tensor *as
    if it were NCHW*: the G token rows act as channels and the (G × F) plane is resized to (S × S), so
    ``out[b, h, i, j] = feat[b, h, ⌊G·i/S⌋, ⌊F·j/S⌋]``; finally a 1×1 ``upconv`` from G to C channels.

    Args:
        channels: latent channels C.
        size: latent side S.
        swin: Swin architecture; weights start random (see :func:`load_imagenet_swin`).
    """

    def __init__(self, channels: int = 4, size: int = 128, swin: SwinConfig | None = None) -> None:
        super().__init__()
        cfg = swin or SwinConfig()
        self.size, self.swin_size = size, cfg.img_size
        self.downconv = nn.Conv2d(channels, 3, kernel_size=1)
        self.swin = SwinTransformer(img_size=cfg.img_size, patch_size=cfg.patch_size, window_size=cfg.window_size,
                                    embed_dim=cfg.embed_dim, depths=cfg.depths, num_heads=cfg.num_heads,
                                    drop_path_rate=cfg.drop_path_rate)
        self.upconv = nn.Conv2d(cfg.grid, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) → (B, C, S, S)."""
        z = self.downconv(F.interpolate(x, size=(self.swin_size, self.swin_size)))  # (B, 3, 224, 224), nearest
        feat = self.swin.forward_features(z)  # (B, G, G, F) NHWC
        return self.upconv(F.interpolate(feat, size=(self.size, self.size)))  # (B, G, S, S) → (B, C, S, S)


class TextAdaGroupNorm(nn.Module):
    """The text path (official ``embeeding``; diffusers ``AdaGroupNorm``, 1 group, no activation; docs/npnet.md §1.2).

    ``e = GN(x) · (1 + scale) + shift`` with ``[scale, shift] = linear(flatten(c))`` per sample and channel; the
    group norm has one group, no affine and eps 1e-6.

    Args:
        embedding_dim: flattened text size ``L · D``.
        channels: latent channels C.
        eps: group-norm epsilon.
    """

    def __init__(self, embedding_dim: int, channels: int = 4, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.linear = nn.Linear(embedding_dim, 2 * channels)

    def forward(self, x: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) and (B, L, D) → (B, C, S, S); a batch-1 embedding broadcasts over the noises."""
        scale, shift = self.linear(prompt_embeds.flatten(1))[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return F.group_norm(x, 1, eps=self.eps) * (1 + scale) + shift


class NPNet(nn.Module):
    """The noise prompt network: ``golden = SVD(x) + (2σ(α) − 1)·e + β·Swin(x + e)`` (docs/npnet.md §1.1).

    Args:
        config: dimensions (default: the official SDXL network); see :data:`PRESETS`.

    Attributes:
        unet_svd: :class:`SVDBranch`.
        unet_embedding: :class:`SwinResidualBranch`.
        text_embedding: :class:`TextAdaGroupNorm` (``embeeding`` in official files).
        alpha: shape ``[1]``, initialised to 0; used as ``2σ(α) − 1``.
        beta: shape ``[1]``, initialised to 0; used raw.
    """

    def __init__(self, config: NPNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or NPNetConfig()
        c, s = cfg.latent_channels, cfg.latent_size
        self.unet_svd = SVDBranch(c, s, cfg.svd_attention, cfg.svd_heads, cfg.svd_hidden, cfg.svd_mlp4_hidden)
        self.unet_embedding = SwinResidualBranch(c, s, cfg.swin)
        self.text_embedding = TextAdaGroupNorm(cfg.text_len * cfg.text_dim, c)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1))
        # never called (kept for strict loading): frozen, so DDP sees no unused trainable parameters and the
        # optimiser leaves them as loaded, as the official training does (their gradients are None there)
        self.unet_svd.bn.requires_grad_(False)
        self.unet_embedding.swin.head.requires_grad_(False)

    @classmethod
    def from_preset(cls, name: str, **overrides: object) -> NPNet:
        """An NPNet of a :data:`PRESETS` entry, with dataclass fields overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"Unknown NPNet preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(replace(PRESETS[name], **overrides))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """The ``(C, S, S)`` noise shape this network takes."""
        return self.config.latent_channels, self.config.latent_size, self.config.latent_size

    def check_inputs(self, noise: torch.Tensor, prompt_embeds: torch.Tensor) -> None:
        """Raise a ``ValueError`` naming the expected shapes if the inputs do not fit this network."""
        if tuple(noise.shape[1:]) != self.latent_shape or noise.ndim != 4:
            raise ValueError(f"NPNet expects noise (B, {', '.join(map(str, self.latent_shape))}), "
                             f"got {tuple(noise.shape)}.")
        cfg = self.config
        if prompt_embeds.ndim != 3 or tuple(prompt_embeds.shape[1:]) != (cfg.text_len, cfg.text_dim):
            raise ValueError(f"NPNet expects prompt embeddings (B, {cfg.text_len}, {cfg.text_dim}), "
                             f"got {tuple(prompt_embeds.shape)}.")
        if prompt_embeds.shape[0] not in (1, noise.shape[0]):
            raise ValueError(f"{prompt_embeds.shape[0]} prompt embeddings for {noise.shape[0]} noises.")

    def branches(self, noise: torch.Tensor, prompt_embeds: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three branch outputs ``svd``, ``text`` (e) and ``residual``, each (B, C, S, S)."""
        self.check_inputs(noise, prompt_embeds)
        x = noise.float()
        e = self.text_embedding(x, prompt_embeds)  # (B, C, S, S)
        return {"svd": self.unet_svd(x), "text": e, "residual": self.unet_embedding(x + e)}

    def forward(self, noise: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """Golden noise (B, C, S, S) float32 from noise (B, C, S, S) and token embeddings (B or 1, L, D)."""
        out = self.branches(noise, prompt_embeds)
        return (out["svd"] + (2 * torch.sigmoid(self.alpha) - 1) * out["text"] + self.beta * out["residual"]).float()
