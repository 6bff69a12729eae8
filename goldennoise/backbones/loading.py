"""Resolve a backbone name, hub id or local folder to a :class:`~goldennoise.backbones.base.Backbone`.

This is the one place that reads diffusers model folders. A failure to find weights becomes a
:class:`~goldennoise.errors.MissingWeightsError` whose message is one sentence saying what is missing and how to
get it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from huggingface_hub import constants as hub_constants

from goldennoise import hub
from goldennoise.backbones import tiny, tiny_dit
from goldennoise.backbones.base import Backbone
from goldennoise.backbones.flux import FluxBackbone
from goldennoise.backbones.hunyuan import HunyuanDiTBackbone
from goldennoise.backbones.sd import StableDiffusionBackbone
from goldennoise.backbones.sd3 import StableDiffusion3Backbone
from goldennoise.backbones.sdxl import StableDiffusionXLBackbone
from goldennoise.errors import MissingWeightsError

FAMILIES: dict[str, type[Backbone]] = {
    "StableDiffusionPipeline": StableDiffusionBackbone,
    "StableDiffusionXLPipeline": StableDiffusionXLBackbone,
    "StableDiffusion3Pipeline": StableDiffusion3Backbone,
    "FluxPipeline": FluxBackbone,
    "HunyuanDiTPipeline": HunyuanDiTBackbone,
}
"""diffusers pipeline class names (``model_index.json``'s ``_class_name``) mapped to backbone families."""

SHAPES_DIR = Path(__file__).resolve().parent / "weights" / "shapes"
"""The embedded ``shapes`` backbone shipped inside the package (a ``save_pretrained`` folder, fp16 safetensors)."""


def shapes_backbone() -> Backbone:
    """The project-trained shapes-world model of :data:`SHAPES_DIR`, through the same path as any model folder."""
    return from_pretrained(str(SHAPES_DIR))


BUILTIN: dict[str, Callable[[], Backbone]] = {
    "tiny-sd": tiny.tiny_sd,
    "tiny-sd-v": functools.partial(tiny.tiny_sd, prediction_type="v_prediction"),
    "tiny-sdxl": tiny.tiny_sdxl,
    "tiny-sd3": tiny_dit.tiny_sd3,
    "tiny-flux": tiny_dit.tiny_flux,
    "tiny-flux-schnell": functools.partial(tiny_dit.tiny_flux, variant="schnell"),
    "tiny-hunyuan-dit": tiny_dit.tiny_hunyuan_dit,
    "shapes": shapes_backbone,
}
"""Backbones by name: random-weight tiny models of the real architectures, built in code, and ``shapes``, the
project-trained shapes-world model (:func:`shapes_backbone`)."""

TEXT_PARTS = ("text_encoder", "tokenizer")
"""Folder-name prefixes of the components a prompt's embedding depends on (``text_encoder_2``, ``tokenizer_3`` too)."""
IMAGE_PARTS = ("vae",)
"""Folder-name prefix of the component an image's latent depends on."""
SIGNATURE_CHUNK = 1 << 20
"""Bytes read at the start, middle and end of each weight file for :func:`weights_signature`."""

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bf16"``, ``"bfloat16"`` or ``torch.bfloat16`` → ``torch.bfloat16`` (and likewise for fp16 / fp32)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}.")
    return DTYPES[dtype]


def _missing_message(name: str) -> str:
    path = Path(name).expanduser()
    if path.is_dir():
        return (f"'{name}' has no model_index.json, so it is not a diffusers model folder; "
                "write one with save_pretrained.")
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        return (f"No model folder at '{name}'; pass a folder written by save_pretrained or a hub id such as "
                "'stabilityai/stable-diffusion-xl-base-1.0'.")
    if hub_constants.HF_HUB_OFFLINE:
        return (f"'{name}' is neither a local folder nor in the Hugging Face cache and the hub is offline "
                f"(HF_HUB_OFFLINE=1); run `hf download {name}` where the hub is reachable, or pass a local folder.")
    return f"'{name}' could not be fetched from the Hugging Face hub; check the id, your access to it, and the network."


def _model_index(name: str) -> dict:
    if hub.is_hub_id(name):
        hub.probe(name, "model_index.json", f"'{name}'", "pass a local folder")
    try:
        return DiffusionPipeline.load_config(name)
    except (OSError, ValueError) as err:  # EnvironmentError and huggingface_hub's errors derive from OSError
        raise MissingWeightsError(_missing_message(name)) from err


def from_pretrained(name: str, dtype: str | torch.dtype = "float32", variant: str | None = None) -> Backbone:
    """Load a diffusers SD 1.x / 2.x, SDXL, SD3 / SD3.5, FLUX.1 or Hunyuan-DiT model folder or hub id as a backbone.

    Args:
        name: a local folder with ``model_index.json`` or a hub id (``stabilityai/stable-diffusion-xl-base-1.0``,
            ``stabilityai/stable-diffusion-3.5-large``, ``black-forest-labs/FLUX.1-schnell``,
            ``Tencent-Hunyuan/HunyuanDiT-v1.2-Diffusers``).
        dtype: weight dtype.
        variant: weight file variant, e.g. ``"fp16"``.
    """
    family_name = _model_index(name).get("_class_name")
    if family_name not in FAMILIES:
        raise ValueError(f"'{name}' is a {family_name}; goldennoise supports the pipeline classes "
                         f"{sorted(FAMILIES)} (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1, Hunyuan-DiT).")
    family = FAMILIES[family_name]
    try:
        pipe = family.pipeline_class.from_pretrained(name, dtype=parse_dtype(dtype), variant=variant,
                                                     **family.load_kwargs)
    except OSError as err:
        first_line = str(err).strip().splitlines()[0]
        raise MissingWeightsError(
            f"A component of '{name}' is missing ({first_line}); re-download or re-save the model.") from err
    return family.from_pipeline(pipe)


def model_folder(name: str) -> Path | None:
    """Where ``name``'s files are: the shipped shapes folder, a local folder, or a hub id's cached snapshot.

    ``None`` for the code-built tiny models and for a hub id that is not in the Hugging Face cache.
    """
    if name == "shapes":
        return SHAPES_DIR
    path = Path(name).expanduser()
    if name not in BUILTIN and path.is_dir():
        return path
    return hub.cached_snapshot(name) if hub.is_hub_id(name) else None


def weights_signature(name: str, parts: tuple[str, ...]) -> str | None:
    """A short hash of the files of ``name``'s components whose folder name starts with one of ``parts``.

    Caches of derived data (prompt embeddings: :data:`TEXT_PARTS`; image latents: :data:`IMAGE_PARTS`) store it, so
    that a cache filed under a name whose weights have changed since (a local folder re-saved with a fine-tuned text
    encoder, a hub id at a new revision) is recognised as stale without loading a model. Each file contributes its
    path and its content's identity: in a hub snapshot the name of the blob it links to (the file's hash: exact);
    otherwise its size and the SHA-256 of its first, middle and last :data:`SIGNATURE_CHUNK` bytes, which a full
    fine-tune changes but an edit confined to other bytes of a large file (a few layers retrained in place) may not:
    delete the cache after such an edit. A code-built tiny model is named by its name (its weights are fixed by code).

    Returns:
        The signature, or ``None`` when ``name``'s component files cannot be found without fetching (a hub id not in
        the cache, a folder without such components, a name that is no model): callers then cannot tell and keep
        what they have.
    """
    if name in BUILTIN and name != "shapes":
        return f"builtin:{name}"
    folder = model_folder(name)
    if folder is None:
        return None
    files = sorted(f for part in folder.iterdir() if part.is_dir() and part.name.startswith(parts)
                   for f in part.rglob("*") if f.is_file())
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(folder).as_posix()}:".encode())
        blob = file.resolve()
        digest.update(blob.name.encode() if _is_hub_blob(blob) else _sampled_content(file))
    return digest.hexdigest()[:16]


def _is_hub_blob(path: Path) -> bool:
    """Whether ``path`` is a file of the Hugging Face cache's ``blobs`` folder, named by its content hash."""
    return path.parent.name == "blobs" and len(path.name) >= 40 and all(c in "0123456789abcdef" for c in path.name)


def _sampled_content(file: Path) -> bytes:
    """The file's size and the hash of its first, middle and last :data:`SIGNATURE_CHUNK` bytes (all of a small one)."""
    size = file.stat().st_size
    digest = hashlib.sha256(f"{size}:".encode())
    with file.open("rb") as handle:
        for offset in sorted({0, max(size // 2 - SIGNATURE_CHUNK // 2, 0), max(size - SIGNATURE_CHUNK, 0)}):
            handle.seek(offset)
            digest.update(handle.read(SIGNATURE_CHUNK))
    return digest.digest()


def load_backbone(
    name: str,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device | None = None,
    variant: str | None = None,
) -> Backbone:
    """A backbone by built-in name (:data:`BUILTIN`: ``tiny-sd``, ``tiny-flux``, ``shapes``, ...), hub id or folder.

    Args:
        name: built-in name, hub id or folder.
        dtype: weight dtype (``float32``, ``bfloat16``, ``float16``).
        device: where to put the weights; ``None`` leaves them on the CPU (Lightning moves modules itself).
        variant: weight file variant for hub ids and folders (e.g. ``"fp16"``).
    """
    backbone = BUILTIN[name]() if name in BUILTIN else from_pretrained(name, dtype, variant)
    return backbone.to(device=device, dtype=parse_dtype(dtype))
