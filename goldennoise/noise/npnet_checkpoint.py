"""NPNet checkpoints in and out: the official nested ``.pth``, both flat safetensors layouts, Lightning checkpoints.

Formats (docs/npnet.md §1.6):

| format | content |
|---|---|
| official ``.pth`` | nested: ``unet_svd``, ``unet_embedding``, ``embeeding`` (sic) state dicts; α, β `[1]` |
| safetensors, LucipherDev (``"embeeding"``) | flat ``unet_svd.*``, ``unet_embedding.*``, ``embeeding.*``, α, β |
| safetensors, asagi4 (``"text_embedding"``) | the same with ``text_embedding.*`` |
| Lightning ``.ckpt`` | ``state_dict`` with the module's ``net.`` prefix |

Reading and converting are pure functions over state dicts: nothing here builds or touches a network, except
:func:`load_npnet`, which builds one from the (never downloaded) random Swin and loads strictly. In memory the
text path is ``text_embedding``; ``embeeding`` exists only in files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from goldennoise import hub
from goldennoise.errors import CheckpointError, MissingWeightsError
from goldennoise.noise.npnet import PRESETS, NPNet, NPNetConfig, SwinConfig
from goldennoise.shipped import export_target
from goldennoise.tensor_files import read_tensor_file, save_atomic

OFFICIAL_TEXT_KEY = "embeeding"
"""The official checkpoint's (misspelled) key of the AdaGroupNorm text path; required for compatibility."""
TEXT_KEY = "text_embedding"
"""The in-memory name of the text path (and the asagi4 safetensors prefix)."""
BRANCHES = ("unet_svd", "unet_embedding", TEXT_KEY)
SCALARS = ("alpha", "beta")
LIGHTNING_PREFIXES = ("net.", "model.", "_orig_mod.")
"""Prefixes stripped when a state dict comes from a LightningModule or ``torch.compile``."""
SHAPE_KEYS = ("unet_embedding.upconv.weight", "unet_svd.mlp1.0.weight", "unet_svd.mlp4.0.weight",
              f"{TEXT_KEY}.linear.weight")
"""Keys whose shapes give the network's dimensions (:func:`config_from_state`); every NPNet checkpoint has them."""

BUILTIN_WEIGHTS = {"shapes": Path(__file__).parent / "weights" / "npnet_shapes.safetensors"}
"""NPNet weights shipped with the package, by name (their network is ``PRESETS[name]``): ``load_npnet("shapes")`` is
the NPNet this project trained for the embedded ``shapes`` backbone (``experiments/npnet_shapes``)."""

SafetensorsLayout = Literal["embeeding", "text_embedding"]
StateDict = dict[str, torch.Tensor]


def _missing(path: Path) -> MissingWeightsError:
    return MissingWeightsError(
        f"No NPNet checkpoint at '{path}'; download the official weights (sdxl.pth, dreamshaper.pth, dit.pth) from "
        "the Google Drive link in the Golden-Noise README or the Hugging Face repo Klayand/GoldenNoiseModel.")


def flatten_official(nested: dict) -> StateDict:
    """Official nested dict → flat in-memory state dict (``embeeding`` → ``text_embedding``)."""
    missing = {"unet_svd", "unet_embedding", OFFICIAL_TEXT_KEY, *SCALARS} - set(nested)
    if missing:
        raise KeyError(f"Not an official NPNet checkpoint: missing top-level keys {sorted(missing)}.")
    flat: StateDict = {}
    for branch, file_key in (("unet_svd", "unet_svd"), ("unet_embedding", "unet_embedding"),
                             (TEXT_KEY, OFFICIAL_TEXT_KEY)):
        flat.update({f"{branch}.{k}": v for k, v in nested[file_key].items()})
    for name in SCALARS:
        flat[name] = torch.as_tensor(nested[name]).detach().reshape(1)
    return flat


def nest_official(state: StateDict) -> dict:
    """Flat in-memory state dict → the official nested dict (``embeeding``; α and β as ``requires_grad`` leaves)."""
    nested: dict = {"unet_svd": {}, "unet_embedding": {}, OFFICIAL_TEXT_KEY: {}}
    for key, value in state.items():
        if key in SCALARS:
            nested[key] = value.detach().clone().float().reshape(1).requires_grad_(True)
            continue
        branch, rest = key.split(".", 1)
        if branch not in BRANCHES:
            raise KeyError(f"Unexpected NPNet state-dict key {key!r}.")
        nested[OFFICIAL_TEXT_KEY if branch == TEXT_KEY else branch][rest] = value.detach().clone()
    return nested


def normalize_flat(state: StateDict) -> StateDict:
    """Any flat layout → in-memory keys: strip a Lightning / compile prefix, ``embeeding.`` → ``text_embedding.``."""
    for prefix in LIGHTNING_PREFIXES:
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    renamed = {f"{TEXT_KEY}.{k[len(OFFICIAL_TEXT_KEY) + 1:]}" if k.startswith(f"{OFFICIAL_TEXT_KEY}.") else k: v
               for k, v in state.items()}
    return {k: v.reshape(1) if k in SCALARS else v for k, v in renamed.items()}


def read_npnet_state(path: str | Path) -> StateDict:
    """Read any NPNet checkpoint into a flat in-memory state dict on the CPU (never builds a network).

    Args:
        path: official ``.pth`` (nested), flat ``.safetensors`` (either layout), a Lightning ``.ckpt`` of
            :class:`~goldennoise.lit.npnet.NPNetModule`, or a :data:`BUILTIN_WEIGHTS` name.

    Raises:
        MissingWeightsError: the file does not exist.
        CheckpointError: the file is unreadable (truncated, corrupt) or holds no NPNet; the message names it.
    """
    path = BUILTIN_WEIGHTS.get(str(path)) or Path(path).expanduser()
    if not path.is_file():
        raise _missing(path)
    content = read_tensor_file(path)
    if not isinstance(content, dict):
        raise CheckpointError(f"'{path}' holds a {type(content).__name__}, not an NPNet state dict.")
    if "state_dict" in content:  # Lightning checkpoint
        state = normalize_flat(content["state_dict"])
    elif isinstance(content.get(OFFICIAL_TEXT_KEY), dict):
        try:
            state = flatten_official(content)
        except KeyError as err:
            raise CheckpointError(f"'{path}': {err.args[0]}") from err
    else:
        state = normalize_flat(content)
    missing = [key for key in (*SHAPE_KEYS, *SCALARS) if key not in state]
    if missing:
        raise CheckpointError(f"'{path}' holds no NPNet weights: {missing} are missing (its first keys: "
                              f"{sorted(state)[:3]}).")
    return state


def load_npnet_state(net: NPNet, path: str | Path) -> NPNet:
    """Load a checkpoint (any format :func:`read_npnet_state` reads) into ``net`` strictly.

    Raises:
        CheckpointError: besides :func:`read_npnet_state`'s errors, the weights do not fit ``net``'s dimensions.
    """
    return _load_strict(net, read_npnet_state(path), path)


def _load_strict(net: NPNet, state: StateDict, path: str | Path) -> NPNet:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:  # torch lists every missing, unexpected or mis-shaped key, one per line
        details = [line.strip() for line in str(err).splitlines()[1:] if line.strip()] or [str(err)]
        raise CheckpointError(f"The weights in '{path}' do not fit this NPNet ({details[0][:200]}); check the "
                              "network's dimensions against the checkpoint's.") from err
    return net


def to_safetensors_layout(state: StateDict, layout: SafetensorsLayout = "embeeding") -> StateDict:
    """In-memory state dict → flat file keys: ``embeeding.*`` (LucipherDev) or ``text_embedding.*`` (asagi4)."""
    prefix = f"{TEXT_KEY}."
    return {f"{layout}.{k[len(prefix):]}" if k.startswith(prefix) else k: v.detach().contiguous().clone()
            for k, v in normalize_flat(state).items()}


def save_npnet_state(state: StateDict, path: str | Path, layout: SafetensorsLayout = "embeeding",
                     overwrite_shipped: bool = False) -> Path:
    """Write a state dict as an official nested ``.pth`` or, for a ``.safetensors`` path, flat in ``layout``.

    A ``path`` inside the installed package (where the shipped NPNet lives) is refused unless ``overwrite_shipped``.
    """
    path = export_target(path, "path", overwrite_shipped)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = normalize_flat(state)
    if path.suffix == ".safetensors":
        save_atomic(path, to_safetensors_layout(state, layout))
    else:
        torch.save(nest_official(state), path)
    return path


def config_from_state(state: StateDict, text_len: int = 77, swin: SwinConfig | None = None,
                      svd_attention: bool = True) -> NPNetConfig:
    """Infer an :class:`NPNetConfig` from a flat state dict (the Swin and the token count are not inferable).

    Args:
        state: flat in-memory state dict.
        text_len: tokens L (the text linear only fixes L·D).
        swin: the residual branch's Swin (default Swin-T, as in every official checkpoint).
        svd_attention: forward variant (checkpoints do not record it; the official inference uses attention).
    """
    channels = state["unet_embedding.upconv.weight"].shape[0]
    n = state["unet_svd.mlp1.0.weight"].shape[1]
    flat_text = state[f"{TEXT_KEY}.linear.weight"].shape[1]
    if flat_text % text_len:
        raise ValueError(f"The text linear takes {flat_text} inputs, not a multiple of text_len={text_len}.")
    size = n // round(channels ** 0.5)
    return NPNetConfig(text_dim=flat_text // text_len, text_len=text_len, latent_channels=channels, latent_size=size,
                       svd_attention=svd_attention, svd_hidden=state["unet_svd.mlp1.0.weight"].shape[0],
                       svd_mlp4_hidden=state["unet_svd.mlp4.0.weight"].shape[0], swin=swin or SwinConfig())


def load_npnet(path: str | Path, config: NPNetConfig | None = None, **config_kwargs: object) -> NPNet:
    """Build an :class:`NPNet` (random Swin, no download) and load a checkpoint strictly, in eval mode.

    Args:
        path: any format :func:`read_npnet_state` reads, or a :data:`BUILTIN_WEIGHTS` name such as ``"shapes"``.
        config: the network's dimensions; default the built-in's preset, else inferred with :func:`config_from_state`.
        config_kwargs: passed to :func:`config_from_state` (``text_len``, ``swin``, ``svd_attention``).
    """
    state = read_npnet_state(path)
    builtin = PRESETS[str(path)] if str(path) in BUILTIN_WEIGHTS else None
    config = config or builtin or config_from_state(state, **config_kwargs)
    return _load_strict(NPNet(config), state, path).eval()


def export_npnet(source: NPNet | StateDict | str | Path, path: str | Path,
                 layout: SafetensorsLayout = "embeeding", overwrite_shipped: bool = False) -> Path:
    """Export a network, a state dict or any readable checkpoint (e.g. a Lightning ``.ckpt``) to ``path``.

    ``.safetensors`` paths get the flat ``layout``; anything else the official nested ``.pth``. A ``path`` inside the
    installed package is refused unless ``overwrite_shipped``.
    """
    if isinstance(source, (str, Path)):
        state = read_npnet_state(source)
    elif isinstance(source, NPNet):
        state = source.state_dict()
    else:
        state = source
    return save_npnet_state(state, path, layout, overwrite_shipped)


IMAGENET_SWIN = "swin_tiny_patch4_window7_224.ms_in1k"
"""timm name of the ImageNet-1k Swin-T the official training starts from (hub ``timm/<name>``)."""


def init_swin_from_imagenet(net: NPNet, weights: str | Path | None = None) -> NPNet:
    """Load ImageNet-1k Swin-T weights into ``net.unet_embedding.swin`` (official training init, docs/npnet.md §1.4).

    Only for training from scratch: a loaded NPNet checkpoint already holds its Swin. Offline without a cached copy
    this raises a :class:`MissingWeightsError`; train from a random Swin instead (``swin_init="random"`` of
    :class:`~goldennoise.lit.npnet.NPNetModule`) or pass a local file.

    Args:
        net: an NPNet whose residual branch is exactly Swin-T at 224 (:attr:`SwinConfig.is_swin_tiny`).
        weights: a local timm checkpoint of ``swin_tiny_patch4_window7_224`` (``model.safetensors`` or ``.pth``);
            ``None`` uses the Hugging Face hub (cache first).
    """
    import timm

    if not net.config.swin.is_swin_tiny:
        raise ValueError("ImageNet Swin weights exist only for Swin-T at 224 px; this NPNet has a custom Swin, "
                         "so use a random Swin initialisation.")
    overlay = {"pretrained_cfg_overlay": {"file": str(weights)}} if weights is not None else {}
    if weights is not None and not Path(weights).is_file():
        raise MissingWeightsError(f"No Swin-T weights at '{weights}'; pass a timm checkpoint of {IMAGENET_SWIN}.")
    if weights is None:
        hub.probe(f"timm/{IMAGENET_SWIN}", "model.safetensors", f"The ImageNet Swin-T '{IMAGENET_SWIN}'",
                  "train with swin_init='random' or pass a local file")
    try:
        reference = timm.create_model(IMAGENET_SWIN, pretrained=True, **overlay)
    except Exception as err:  # offline hub, no cache, network failures: all mean "not available here"
        raise MissingWeightsError(
            f"ImageNet Swin-T weights timm/{IMAGENET_SWIN} are not available ({type(err).__name__}); run "
            f"`hf download timm/{IMAGENET_SWIN}` where the hub is reachable, or train with swin_init='random'.",
        ) from err
    net.unet_embedding.swin.load_state_dict(reference.state_dict(), strict=True)
    return net
