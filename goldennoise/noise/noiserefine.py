"""NoiseRefine: a LoRA on the frozen UNet refines the Gaussian noise once, then sampling runs without guidance.

Ahn et al., "A Noise is Worth Diffusion Guidance" (arXiv 2412.03895, Sec. 3.2-3.4; docs/noiserefine.md). The
refiner ``g_φ`` is the backbone's own UNet with a PEFT LoRA adapter, called **once** with the prompt; every
denoising step (training rollout and inference) runs the base UNet with the adapter off
(:meth:`goldennoise.backbones.Backbone.adapter`). Trained by multistep score distillation
(:mod:`goldennoise.noise.msd`, :class:`goldennoise.lit.NoiseRefineModule`).

Choices the paper leaves open, each a :class:`RefinerConfig` field:

* **Output form** (paper: "a residual connection"). ``"residual"`` (default): the zero-init residual
  ``x̂_T = x_T + (UNet_LoRA − SG(UNet_base))(x_T, t, c)`` on the raw network outputs: exactly the identity at
  initialisation (LoRA ``B`` matrices start at zero), one extra no-grad base call. ``"epsilon"``:
  ``x̂_T = ε_{θ+φ}(x_T, t, c)`` (near identity at high noise, since ε ≈ x_T there). ``"literal"``:
  ``x_T + UNet_LoRA(x_T, t, c)`` (≈ 2·x_T at init for an ε model; kept for ablation only).
* **Refiner timestep**. The paper uses t = 999. Default ``None`` = ``num_train_timesteps − 1`` (999), the paper's
  value: the UNet was trained on every level 0–999, so 999 is in its training range, it is the level nearest to pure
  noise, and a fixed level independent of the sampler's grid keeps one refiner valid for any step count. It is on
  neither leading DDIM grid of the shapes or SD backbones (10 steps start at 901, 20 at 951): the refiner call is
  not a denoising step, so it need not be.
* **LoRA**: rank (paper 128), α (default = rank, scale 1), dropout (0), targets (default: attention q/k/v/out,
  the feed-forward linears and the ResNet convolutions: "all attention, conv and FF layers").

Export (:func:`export_refiner`) writes the standard diffusers/PEFT LoRA safetensors file (``unet.``-prefixed PEFT
keys, diffusers' ``lora_adapter_metadata``), loadable by ``pipeline.load_lora_weights`` and by PEFT; goldennoise's
own metadata (refiner config, base-model fingerprint) lets :func:`load_refiner` refuse a LoRA of another model.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer, check_target_module_exists
from safetensors import safe_open
from torch import nn

from goldennoise.backbones import Backbone, PromptEmbeds, load_backbone
from goldennoise.checks import check_int, check_tensor
from goldennoise.noise.base import NoiseContext, NoiseMethod
from goldennoise.tensor_files import naming_checkpoint, save_atomic

ADAPTER = "refiner"
"""The adapter's name on the UNet."""

DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "conv1", "conv2")
"""Attention projections, feed-forward linears and ResNet convolutions (PEFT suffix match)."""

OUTPUT_FORMS = ("residual", "epsilon", "literal")
METADATA_KEY = "goldennoise_noiserefine"
SIGNATURE_VALUES = 32
"""Values of each fingerprinted weight stored in a refiner file's base signature."""
SIGNATURE_RTOL = 2**-7
"""Relative tolerance of the signature: twice the worst bf16 rounding (2⁻⁸ of a value; fp16: 2⁻¹¹)."""
SIGNATURE_ATOL = 1e-6
"""Absolute tolerance of the signature, for weights near zero (fp16 subnormals)."""
SHIPPED = {"shapes": Path(__file__).parent / "weights" / "noiserefine_shapes.safetensors"}
"""Refiners shipped in the package, by backbone name (see experiments/noiserefine_shapes)."""


@dataclass(frozen=True)
class RefinerConfig:
    """How the refiner is built and called (module docstring: what the paper leaves open).

    Args:
        rank: LoRA rank r (paper: 128).
        alpha: LoRA α; ``None`` = rank (scale α/r = 1).
        dropout: LoRA dropout.
        target_modules: module-name suffixes that get a LoRA (PEFT matching).
        output: ``"residual"`` (default, identity at init), ``"epsilon"`` or ``"literal"``.
        timestep: the refiner's timestep; ``None`` = the last training timestep (999).
    """

    rank: int = 128
    alpha: float | None = None
    dropout: float = 0.0
    target_modules: tuple[str, ...] = field(default=DEFAULT_TARGETS)
    output: str = "residual"
    timestep: int | None = None

    def __post_init__(self) -> None:
        check_int("rank", self.rank, minimum=1)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}.")
        if self.output not in OUTPUT_FORMS:
            raise ValueError(f"Unknown refiner output form {self.output!r}; choose one of {OUTPUT_FORMS}.")
        if not self.target_modules or isinstance(self.target_modules, str):
            raise ValueError("target_modules must be a non-empty list of module-name suffixes.")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

    def lora_config(self) -> LoraConfig:
        """The PEFT configuration (B matrices zero-initialised)."""
        return LoraConfig(r=self.rank, lora_alpha=self.rank if self.alpha is None else self.alpha,
                          lora_dropout=self.dropout, target_modules=list(self.target_modules),
                          init_lora_weights=True)

    def refiner_timestep(self, backbone: Backbone) -> int:
        """The timestep of the refiner call on ``backbone``."""
        last = int(backbone.scheduler_config.get("num_train_timesteps", 1000)) - 1
        return last if self.timestep is None else check_int("timestep", self.timestep, 0, last)


# --- injection -------------------------------------------------------------------------------------------------------


def _max_rank(module: nn.Module) -> int | None:
    """The largest useful LoRA rank of a layer (rank of its weight matrix), ``None`` for unsupported types."""
    if isinstance(module, nn.Linear):
        return min(module.in_features, module.out_features)
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return min(module.in_channels * kh * kw // module.groups, module.out_channels)
    return None


def targeted_layers(unet: nn.Module, config: RefinerConfig) -> dict[str, nn.Module]:
    """The UNet layers ``config.target_modules`` select, checked: some match, each is a Linear/Conv2d of rank ≥ r.

    Raises:
        ValueError: nothing matches, a match is of an unsupported type, or the rank exceeds a layer's.
    """
    lora = config.lora_config()
    layers = {name: module for name, module in unet.named_modules() if check_target_module_exists(lora, name)}
    if not layers:
        raise ValueError(f"LoRA target_modules {list(config.target_modules)} match no layer of the UNet; use "
                         "module-name suffixes such as 'to_q', 'ff.net.2', 'conv1'.")
    unsupported = [name for name, module in layers.items() if _max_rank(module) is None]
    if unsupported:
        raise ValueError(f"LoRA target_modules select layers that are not Linear or Conv2d: {unsupported[:3]}.")
    too_small = {name: _max_rank(module) for name, module in layers.items() if _max_rank(module) < config.rank}
    if too_small:
        name, limit = min(too_small.items(), key=lambda item: item[1])
        raise ValueError(f"LoRA rank {config.rank} exceeds what {len(too_small)} targeted layers allow (e.g. "
                         f"{name!r}: at most {limit}); lower the rank to {min(too_small.values())} or narrow "
                         "target_modules.")
    return layers


def inject_refiner(backbone: Backbone, config: RefinerConfig) -> None:
    """Add the refiner LoRA to ``backbone.unet``, switched off, its weights trainable (B = 0: no effect yet).

    Raises:
        ValueError: the UNet already has a refiner, or the targets/rank are invalid (:func:`targeted_layers`).
    """
    if backbone.adapter_layers():
        raise ValueError("The backbone's UNet already carries an adapter; load a fresh backbone for a new refiner.")
    targeted_layers(backbone.unet, config)
    backbone.unet.add_adapter(config.lora_config(), adapter_name=ADAPTER)
    for layer in backbone.adapter_layers():
        layer.enable_adapters(False)
    for parameter in lora_parameters(backbone):
        parameter.requires_grad_(True)


def lora_parameters(backbone: Backbone) -> list[nn.Parameter]:
    """The adapter's parameters (the only trainable ones)."""
    return [p for name, p in backbone.unet.named_parameters() if f".{ADAPTER}." in name and "lora_" in name]


def refine(backbone: Backbone, noise: torch.Tensor, cond: PromptEmbeds, config: RefinerConfig,
           merged: Backbone | None = None) -> torch.Tensor:
    """``x̂_T = g_φ(x_T, c)`` (B, C, h, w) float32: one refiner call in the configured output form.

    Without ``merged`` (training): ``backbone`` carries the adapter, switched on for the refiner call and off for the
    residual's base call; differentiable with respect to the LoRA weights, the base call runs without gradients.
    With ``merged`` (inference, :func:`merge_refiner`): the refiner call runs ``merged``, whose network has the LoRA
    folded into its weights, and the base call runs ``backbone``, the plain base model: each call costs one plain
    network evaluation, with no PEFT wrapper on either path. Both give the same noise up to fp32 rounding.
    """
    check_tensor("noise", noise, shape=("B", "C", "h", "w"))
    x = noise.float()
    t = config.refiner_timestep(backbone)
    refiner = backbone if merged is None else merged
    switch = backbone.adapter if merged is None else _no_switch
    with switch(True):
        if config.output == "epsilon":
            return refiner.predict_noise(x, t, cond)
        adapted = refiner.network_output(x, t, cond)
    if config.output == "literal":
        return x + adapted
    with torch.no_grad(), switch(False):
        base = backbone.network_output(x, t, cond)
    return x + (adapted - base)


def _no_switch(enabled: bool) -> contextlib.AbstractContextManager[None]:
    """The adapter switch of a merged refiner: there is no adapter to switch."""
    return contextlib.nullcontext()


def _unwrap_adapter(network: nn.Module, merge: bool) -> None:
    """Replace every PEFT wrapper of ``network`` by its base layer, the refiner's LoRA folded in when ``merge``.

    Without ``merge`` the base layers keep their original weights: the network is the untouched base model again.
    """
    wrappers = [(name, module) for name, module in network.named_modules() if isinstance(module, BaseTunerLayer)]
    for name, wrapper in wrappers:
        if merge:
            wrapper.merge(adapter_names=[ADAPTER])
        parent_name, _, child = name.rpartition(".")
        setattr(network.get_submodule(parent_name) if parent_name else network, child, wrapper.get_base_layer())
    for attribute in ("peft_config", "_hf_peft_config_loaded"):  # diffusers' bookkeeping of a loaded adapter
        if attribute in network.__dict__:
            delattr(network, attribute)


def merge_refiner(backbone: Backbone) -> Backbone:
    """Split a backbone carrying the refiner into the merged refiner and the plain base, for inference.

    Returns a copy of ``backbone`` whose network has the LoRA merged into its weights (``W + (α/r)·B·A``, plain
    layers: one refiner call costs one plain network evaluation); it shares ``backbone``'s VAE and text encoders, so
    the memory cost is one extra copy of the denoiser network. ``backbone`` itself loses its adapter wrappers and is
    the untouched base model again (bit-identical weights), so sampling from it runs no wrapped layer.

    Raises:
        ValueError: ``backbone`` carries no refiner adapter.
    """
    if not backbone.adapter_layers():
        raise ValueError("merge_refiner needs a backbone carrying a refiner adapter (inject_refiner/load_refiner).")
    shared = [backbone.vae, *backbone.text_encoders]
    merged = copy.deepcopy(backbone, memo={id(module): module for module in shared})
    _unwrap_adapter(merged.unet, merge=True)
    _unwrap_adapter(backbone.unet, merge=False)
    return merged


# --- files -----------------------------------------------------------------------------------------------------------


def _fingerprinted_weights(net: nn.Module) -> list[torch.Tensor]:
    """A UNet's ``conv_in`` and ``conv_out`` weights, or a transformer's first and last base parameters."""
    if hasattr(net, "conv_in") and hasattr(net, "conv_out"):
        return [getattr(layer, "base_layer", layer).weight for layer in (net.conv_in, net.conv_out)]
    base = [param for name, param in net.named_parameters() if "lora_" not in name]
    return [base[0], base[-1]]


def _digest(net: nn.Module, parts: list[bytes]) -> str:
    """A short hash of the network's config and of ``parts``."""
    config = {k: v for k, v in dict(net.config).items() if not k.startswith("_")}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:16]


def base_fingerprint(backbone: Backbone) -> str:
    """A short hash of the network's architecture and of two of its base weights' bytes (fp32): the exact base model.

    The two weights are those of :func:`base_signature`. Their bytes change with the weights' dtype: a base model
    loaded in another precision has another fingerprint, and :func:`base_signature` tells whether it is the same.
    """
    weights = _fingerprinted_weights(backbone.unet)
    return _digest(backbone.unet, [weight.detach().float().cpu().numpy().tobytes() for weight in weights])


def base_signature(backbone: Backbone) -> dict[str, Any]:
    """The architecture's hash and :data:`SIGNATURE_VALUES` values of each fingerprinted weight, at fixed positions.

    Compared within :data:`SIGNATURE_RTOL` (:func:`same_base`), it recognises the same base model loaded in fp16 or
    bf16 (rounding moves a weight by at most 2⁻⁹ of itself) and tells other models apart, unless one is a fine-tune
    whose ``conv_in``/``conv_out`` weights all stayed within that tolerance of the base's.
    """
    weights = _fingerprinted_weights(backbone.unet)
    values: list[float] = []
    for weight in weights:
        flat = weight.detach().float().flatten().cpu()
        values += flat[torch.linspace(0, flat.numel() - 1, SIGNATURE_VALUES).long()].tolist()
    architecture = _digest(backbone.unet, [str(tuple(weight.shape)).encode() for weight in weights])
    return {"architecture": architecture, "weights": values}


def same_base(backbone: Backbone, info: dict[str, Any]) -> bool:
    """Whether a refiner file's metadata ``info`` names ``backbone``'s base model, in any weight precision.

    The exact fingerprint decides in the dtype the refiner was exported in; otherwise the signature, within
    :data:`SIGNATURE_RTOL` of each stored value (files written before the signature match in that dtype only).
    """
    if info["base_fingerprint"] == base_fingerprint(backbone):
        return True
    stored = info.get("base_signature")
    if stored is None:
        return False
    ours = base_signature(backbone)
    if stored["architecture"] != ours["architecture"] or len(stored["weights"]) != len(ours["weights"]):
        return False
    theirs, mine = torch.tensor(stored["weights"]), torch.tensor(ours["weights"])
    return bool(((mine - theirs).abs() <= SIGNATURE_RTOL * theirs.abs() + SIGNATURE_ATOL).all())


def export_refiner(backbone: Backbone, config: RefinerConfig, path: str | Path, backbone_name: str = "") -> Path:
    """Write the refiner as a standard diffusers/PEFT LoRA safetensors file (``pytorch_lora_weights`` layout).

    Loadable by ``pipeline.load_lora_weights(path, adapter_name=...)``, by PEFT (``set_peft_model_state_dict``
    after stripping ``unet.``) and by :func:`load_refiner`; it holds the adapter weights and nothing of the base.

    Args:
        backbone: the backbone carrying the trained adapter.
        config: its refiner configuration (stored in the metadata).
        path: the ``.safetensors`` file to write.
        backbone_name: the base model's name or hub id, stored so :class:`NoiseRefineNoise` can load it.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give the .safetensors file to write.")
    if path.suffix != ".safetensors":
        raise ValueError(f"A refiner is written as a .safetensors file, got {path}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(backbone.unet, adapter_name=ADAPTER)
    tensors = {f"unet.{key}": value.detach().float().cpu().contiguous() for key, value in state.items()}
    ours = {**asdict(config), "base_fingerprint": base_fingerprint(backbone),
            "base_signature": base_signature(backbone), "backbone": backbone_name,
            "prediction_type": backbone.prediction_type}
    lora = {f"unet.{key}": value for key, value in config.lora_config().to_dict().items()}
    metadata = {"format": "pt", "lora_adapter_metadata": json.dumps(lora, sort_keys=True, default=list),
                METADATA_KEY: json.dumps(ours, default=list)}
    save_atomic(path, tensors, metadata)
    return path


def resolve_refiner_file(checkpoint: str | Path) -> Path:
    """A shipped refiner's file by backbone name (``"shapes"``), else the path itself."""
    path = SHIPPED.get(str(checkpoint), Path(checkpoint))
    if not path.is_file():
        raise FileNotFoundError(f"No NoiseRefine LoRA file at {path} (shipped: {sorted(SHIPPED)}).")
    return path


def read_refiner(checkpoint: str | Path) -> tuple[RefinerConfig, dict[str, Any], dict[str, torch.Tensor]]:
    """The config, goldennoise metadata and PEFT state (keys without ``unet.``) of a refiner file."""
    path = resolve_refiner_file(checkpoint)
    if path.suffix == ".ckpt":
        raise ValueError(f"{path} is a Lightning checkpoint; NoiseRefine loads the .safetensors file exported from "
                         "it: python -m goldennoise export-refiner <checkpoint.ckpt> <refiner.safetensors>.")
    with naming_checkpoint(path, keep=(PermissionError,)), safe_open(str(path), "pt") as handle:
        meta = handle.metadata() or {}
        state = {key.removeprefix("unet."): handle.get_tensor(key) for key in handle.keys()}
    if METADATA_KEY not in meta:
        raise ValueError(f"{path} is not a goldennoise NoiseRefine file (no {METADATA_KEY!r} metadata); if it is a "
                         "plain diffusers LoRA, load it with pipeline.load_lora_weights.")
    info = json.loads(meta[METADATA_KEY])
    fields = {key: info[key] for key in ("rank", "alpha", "dropout", "target_modules", "output", "timestep")}
    return RefinerConfig(**fields), info, state


def load_refiner(backbone: Backbone, checkpoint: str | Path) -> RefinerConfig:
    """Inject a refiner from a file into ``backbone`` (adapter off) and return its config.

    Raises:
        ValueError: the file was trained on another base model (:func:`same_base`), or lacks or adds weights.
    """
    config, info, state = read_refiner(checkpoint)
    if not same_base(backbone, info):
        raise ValueError(f"The NoiseRefine LoRA {checkpoint} was trained on another base model (fingerprint "
                         f"{info['base_fingerprint']}, backbone {info.get('backbone') or 'unnamed'!r}) than this "
                         f"backbone ({base_fingerprint(backbone)}); load it on the model it was trained on.")
    inject_refiner(backbone, config)
    result = set_peft_model_state_dict(backbone.unet, state, adapter_name=ADAPTER)
    if result.unexpected_keys:
        raise ValueError(f"The NoiseRefine LoRA {checkpoint} has weights this UNet lacks: "
                         f"{result.unexpected_keys[:3]}.")
    missing = [key for key in result.missing_keys if f".{ADAPTER}." in key and "lora_" in key]
    if missing:
        raise ValueError(f"The NoiseRefine LoRA {checkpoint} lacks {len(missing)} of the adapter's weights "
                         f"(e.g. {missing[0]}): the file is incomplete; export it again.")
    return config


# --- noise methods ---------------------------------------------------------------------------------------------------


class RefinedNoise(NoiseMethod):
    """NoiseRefine noise from a backbone that carries a refiner adapter (live weights, not a copy).

    One refiner call per batch; the images are then sampled from ``x̂_T`` by the evaluation's sampler, the paper's
    way without guidance (``guidance_scale: 1``: no unconditional batch). The refiner's UNet calls are counted by
    the context's cost meter even when the refiner runs its own copy of the backbone.

    ``strength`` s scales the refiner's change at inference, ``x̂_T = x_T + s·(g_φ(x_T, c) − x_T)``: s = 1 is the
    paper's refiner; s > 1 extrapolates along the learned change, as a guidance scale > 1 extrapolates along the
    conditional direction (not in the paper; docs/noiserefine.md, "Refinement strength"). It costs nothing and needs no
    retraining, but the trained refiner was never asked for it: choose s on validation pairs, never on the split
    you report.

    Args:
        backbone: the backbone whose UNet carries the refiner (:func:`inject_refiner` / :func:`load_refiner`).
        config: the refiner's configuration.
        strength: the scale s of the refiner's change (1: the paper's refined noise, 0: the Gaussian noise).
    """

    def __init__(self, backbone: Backbone, config: RefinerConfig, strength: float = 1.0) -> None:
        super().__init__()
        if not backbone.adapter_layers():
            raise ValueError("RefinedNoise needs a backbone carrying a refiner adapter (inject_refiner).")
        if not (math.isfinite(strength) and strength >= 0):
            raise ValueError(f"The refinement strength must be a finite number >= 0, got {strength}.")
        self.refiner_backbone, self.config, self.strength = backbone, config, float(strength)
        self.merged: Backbone | None = None

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        backbone = self.refiner_backbone
        if backbone.device != ctx.backbone.device:  # a loaded copy follows the sampler's backbone
            self.to(ctx.backbone.device)
        cond = ctx.cond.to(backbone.device, backbone.dtype)
        networks = [backbone.unet] if self.merged is None else [backbone.unet, self.merged.unet]
        with torch.no_grad(), contextlib.ExitStack() as stack:
            for network in networks if ctx.meter is not None else []:
                stack.enter_context(ctx.meter.watch(network))
            x = noise.to(backbone.device).float()
            refined = refine(backbone, x, cond, self.config, self.merged)
        if self.strength != 1.0:
            refined = x + self.strength * (refined - x)
        return refined.to(noise.device, noise.dtype)

    def lora_sha256(self) -> str:
        """A short hash of the LoRA weights (a retrained refiner is a new evaluation)."""
        digest = hashlib.sha256()
        for parameter in lora_parameters(self.refiner_backbone):
            digest.update(parameter.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """Class, refiner settings and a hash of the LoRA weights."""
        settings = {key: (list(v) if isinstance(v, tuple) else v) for key, v in asdict(self.config).items()}
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", **settings,
                "strength": self.strength, "lora_sha256": self.lora_sha256()}


class NoiseRefineNoise(RefinedNoise):
    """A trained NoiseRefine refiner from a LoRA file, on its own copy of the base backbone.

    With ``merge`` (default) the refiner call runs a copy of the network with the LoRA merged into its weights and
    the residual's base call runs the plain base network (:func:`merge_refiner`): 2 plain network evaluations per
    refined batch, no PEFT wrapper anywhere, at the memory cost of one extra copy of the denoiser network (the VAE
    and text encoders are shared). Without it the one network carries the adapter and switches it per call, as in
    training: less memory, but PEFT's wrapped layers cost more than plain ones (on the small shapes UNet on a CPU,
    the adapter call costs about 4-5 plain calls).

    Args:
        checkpoint: a refiner file (:func:`export_refiner`) or a shipped refiner's backbone name (``"shapes"``).
        backbone: the base backbone (built-in name, hub id or folder); default: the one named in the file.
        backbone_dtype: weight dtype of that backbone.
        merge: refine with a merged copy of the network (faster; one extra copy of the denoiser in memory).
        strength: the scale of the refiner's change (:class:`RefinedNoise`; 1 = the paper's refiner).

    Raises:
        ValueError: the file names no backbone and none is given, or it was trained on another base model.
    """

    def __init__(self, checkpoint: str = "shapes", backbone: str | None = None,
                 backbone_dtype: str = "float32", merge: bool = True, strength: float = 1.0) -> None:
        _, info, _ = read_refiner(checkpoint)
        name = backbone or info.get("backbone")
        if not name:
            raise ValueError(f"The NoiseRefine file {checkpoint} names no backbone; pass backbone=.")
        model = load_backbone(name, backbone_dtype)
        super().__init__(model, load_refiner(model, checkpoint), strength)
        self.checkpoint = str(checkpoint)
        self._lora_sha256 = super().lora_sha256()
        if merge:
            self.merged = merge_refiner(model)

    def lora_sha256(self) -> str:
        """The hash of the file's LoRA weights, taken before any merge."""
        return self._lora_sha256

    def describe(self) -> dict[str, Any]:
        """As :meth:`RefinedNoise.describe`, plus whether the refiner runs merged (fp32 rounding differs)."""
        return {**super().describe(), "merge": self.merged is not None}


# --- diffusers --------------------------------------------------------------------------------------------------------


@torch.no_grad()
def refine_with_pipeline(pipeline: Any, noise: torch.Tensor, prompts: list[str], adapter_name: str,
                         output: str = "residual", timestep: int | None = None) -> torch.Tensor:
    """The refined noise from a plain diffusers pipeline that loaded the LoRA with ``load_lora_weights``.

    Runs the pipeline's UNet at ``timestep`` (default the last training step) with only ``adapter_name`` on, minus
    (residual form) the base UNet; then sample with ``pipeline(prompt, latents=x̂_T, guidance_scale=1)``. Leaves the
    adapter disabled. Only the ``residual`` and ``literal`` forms (raw outputs) are supported here. The pipeline
    does not keep goldennoise's metadata: pass the file's own ``output`` and ``timestep`` (:func:`read_refiner`)
    when they are not the defaults.
    """
    if output not in ("residual", "literal"):
        raise ValueError("refine_with_pipeline supports the 'residual' and 'literal' output forms.")
    unet = pipeline.unet
    t = pipeline.scheduler.config.num_train_timesteps - 1
    t = torch.as_tensor(t if timestep is None else timestep, device=noise.device)
    embeds = pipeline.encode_prompt(prompts, noise.device, 1, False)[0]
    x = noise.to(unet.dtype)
    pipeline.set_adapters([adapter_name])
    pipeline.enable_lora()
    adapted = unet(x, t, encoder_hidden_states=embeds).sample.float()
    pipeline.disable_lora()
    if output == "literal":
        return noise.float() + adapted
    return noise.float() + adapted - unet(x, t, encoder_hidden_states=embeds).sample.float()
