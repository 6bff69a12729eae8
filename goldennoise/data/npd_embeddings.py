"""Cached text embeddings for the noise prompt dataset: each unique prompt encoded once, stored, looked up per sample.

NPNet conditions on the backbone's own per-token prompt embedding (``docs/npnet.md`` §1.2: SDXL
``[77, 2048]``). The official training encodes on the fly and only ``prompt[0]`` of each batch (§4.1, item 1); here
every unique prompt is encoded once by the frozen text encoders (``Backbone.encode_prompt(...)[0]``) and stored
under ``<dataset>/prompt_embeds/<backbone>/`` in parts of ``part_size`` prompts, with a ``manifest.json`` written
last, one column per tensor: ``embeds`` (n, L, D) (float16 by default: ≈308 KiB per SDXL prompt), all NPNet reads;
with ``whole_conditioning`` (teacher data: NoiseRefine conditions its UNet on all of it) also ``pooled`` (n, P) where
the backbone has a pooled embedding (SDXL, SD3, FLUX) and ``extras.<key>`` for a family's further tensors
(Hunyuan-DiT's masks and mT5 tokens, ≈1 MiB more per prompt; integer masks keep their dtype). Lookups memory-map one
row.

The manifest holds each part's content hash (over its embeddings and the prompts of its rows), and a cache is
verified like a shard when it opens: a missing, truncated, changed or unhashed part is an :class:`EmbeddingCacheError`
naming the file. The cache is derived data, so ``collect`` and ``NoisePairDataModule.prepare_data`` rebuild a bad one
from the text encoders; a cache written before the hashes is rebuilt too (one text-encoder pass). The manifest also
holds the ``source`` signature of the weights it was made from
(:func:`~goldennoise.backbones.loading.weights_signature` of the text encoders and tokenizers), and a cache whose
backbone name now has other weights is rebuilt the same way (a cache written before the signature is kept).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from goldennoise.data.integrity import (
    CorruptFileError,
    check_length,
    content_hash,
    read_tensors,
    verify_hash,
    write_json_atomic,
)
from goldennoise.tensor_files import save_atomic

EMBED_DIR = "prompt_embeds"
MANIFEST = "manifest.json"
EMBEDS, POOLED, EXTRAS = "embeds", "pooled", "extras."
"""Column names of a cache part: the token embeddings, the pooled embedding, the prefix of a family's extras."""


class EmbeddingCacheError(CorruptFileError):
    """A prompt-embedding cache is missing, incomplete, corrupt or unverifiable; the message names the file."""


def cache_dir(dataset: str | Path, backbone: str) -> Path:
    """The cache folder of ``backbone``'s embeddings inside a dataset (``/`` in hub ids becomes ``--``)."""
    return Path(dataset) / EMBED_DIR / backbone.strip("/").replace("/", "--")


def cached_backbones(dataset: str | Path) -> list[str]:
    """The backbones that have a complete cache in ``dataset``, by the name each cache was built with.

    A cache written before names were recorded gives its folder name (``/`` of a hub id as ``--``).
    """
    root = Path(dataset) / EMBED_DIR
    return sorted(_recorded_backbone(p) for p in root.glob(f"*/{MANIFEST}")) if root.is_dir() else []


def _recorded_backbone(manifest: Path) -> str:
    """The ``backbone`` a cache manifest records, else the cache's folder name (an unreadable manifest too)."""
    try:
        name = json.loads(manifest.read_text()).get("backbone")
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object: opening it reports that
        name = None
    return name if isinstance(name, str) and name else manifest.parent.name


def _part_name(part: int) -> str:
    return f"part-{part:05d}.safetensors"


def conditioning_columns(cond) -> dict[str, torch.Tensor]:
    """A conditioning batch (a :class:`~goldennoise.backbones.PromptEmbeds`) as cache columns, each (n, ...)."""
    columns = {EMBEDS: cond.embeds}
    if cond.pooled is not None:
        columns[POOLED] = cond.pooled
    columns.update({EXTRAS + key: value for key, value in cond.extras.items()})
    return columns


def _part_metadata(prompts: Sequence[str]) -> dict[str, str]:
    """What a part's hash covers besides its tensor: the prompts of its rows, in order."""
    return {"prompts": json.dumps(list(prompts))}


@torch.inference_mode()
def build_embedding_cache(dataset: str | Path, backbone_name: str, backbone, prompts: Sequence[str],
                          batch_size: int = 32, part_size: int = 1024, dtype: torch.dtype = torch.float16,
                          whole_conditioning: bool = False) -> Path:
    """Encode each unique prompt once and store the embeddings, with a content hash per part in the manifest.

    Args:
        dataset: the dataset folder.
        backbone_name: id the cache is filed under.
        backbone: a :class:`~goldennoise.backbones.Backbone` (its ``encode_prompt`` gives the conditioning).
        prompts: the prompts to cache (duplicates are encoded once).
        batch_size: prompts per text-encoder call.
        part_size: prompts per stored part file.
        dtype: storage dtype of the floating columns.
        whole_conditioning: store the pooled embedding and extras too, not the token embeddings alone.

    Returns:
        The cache folder.
    """

    def encode(chunk: list[str]) -> dict[str, torch.Tensor]:
        cond = backbone.encode_prompt(chunk)[0]
        return conditioning_columns(cond) if whole_conditioning else {EMBEDS: cond.embeds}

    return build_keyed_cache(cache_dir(dataset, backbone_name), prompts, encode, batch_size, part_size, dtype,
                             text_signature(backbone_name), backbone_name)


def text_signature(backbone_name: str) -> str | None:
    """The signature of ``backbone_name``'s text encoders and tokenizers, or ``None`` if unknown.

    :func:`~goldennoise.backbones.loading.weights_signature` of :data:`~goldennoise.backbones.loading.TEXT_PARTS`;
    read from the files, no model is loaded.
    """
    from goldennoise.backbones.loading import TEXT_PARTS, weights_signature  # imports diffusers: only when asked

    return weights_signature(backbone_name, TEXT_PARTS)


@torch.inference_mode()
def build_keyed_cache(folder: str | Path, keys: Sequence[str],
                      encode: Callable[[list[str]], torch.Tensor | dict[str, torch.Tensor]], batch_size: int = 32,
                      part_size: int = 1024, dtype: torch.dtype = torch.float16, source: str | None = None,
                      backbone: str | None = None) -> Path:
    """Store ``encode(keys)`` once per unique key, in hashed parts; :class:`EmbeddingCache` reads it back by key.

    The keys are prompts for text embeddings, or content hashes of images for VAE latents
    (:mod:`goldennoise.data.text_image`). The manifest is removed first and written last, so an interrupted build
    leaves no cache that looks complete.

    Args:
        folder: the cache folder.
        keys: one string per row (duplicates are encoded once).
        encode: ``encode(chunk of at most batch_size keys)``: an (n, ...) tensor (the ``embeds`` column), or columns
            ``{name: (n, ...)}`` with ``embeds`` among them.
        batch_size: keys per ``encode`` call.
        part_size: keys per stored part file.
        dtype: storage dtype of the floating columns (integer ones keep theirs).
        source: the signature of the weights ``encode`` runs (``None``: unknown), stored in the manifest;
            :func:`usable_cache` refuses the cache for another.
        backbone: the name of the backbone ``encode`` runs, stored in the manifest (:func:`cached_backbones`).

    Returns:
        The cache folder.
    """
    unique = list(dict.fromkeys(keys))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    hashes, names = {}, None
    for part, start in enumerate(range(0, len(unique), part_size)):
        chunk = unique[start:start + part_size]
        batches = [_stored_columns(encode(chunk[i:i + batch_size]), dtype) for i in range(0, len(chunk), batch_size)]
        names = names or sorted(batches[0])
        if EMBEDS not in names or any(sorted(b) != names for b in batches):
            raise ValueError(f"Every encoded batch must give the same columns, {EMBEDS!r} among them: expected "
                             f"{names}, got {sorted({tuple(sorted(b)) for b in batches})} in part {part}.")
        columns = {name: torch.cat([b[name] for b in batches]) for name in names}  # each (n, ...)
        hashes[_part_name(part)] = content_hash(columns, _part_metadata(chunk))
        save_atomic(folder / _part_name(part), columns, {})
    write_json_atomic(folder / MANIFEST, {"prompts": unique, "part_size": part_size, "columns": names or [EMBEDS],
                                          "sha256": hashes, "source": source, "backbone": backbone})
    return folder


def _stored_columns(encoded: torch.Tensor | dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """One ``encode`` result as CPU columns, floating ones in the storage dtype."""
    columns = encoded if isinstance(encoded, dict) else {EMBEDS: encoded}
    return {name: value.to("cpu", dtype) if value.is_floating_point() else value.cpu()
            for name, value in columns.items()}


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise EmbeddingCacheError(f"The prompt-embedding cache {folder} has no {MANIFEST} (missing or "
                                  "interrupted while being built).")
    try:
        manifest = json.loads(path.read_text())
        int(manifest["part_size"]), list(manifest["prompts"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise EmbeddingCacheError(f"{path} is corrupt: not a cache manifest with prompts and part_size.") from None
    if not isinstance(manifest.get("sha256"), dict):
        raise EmbeddingCacheError(f"The prompt-embedding cache {folder} predates content hashes and cannot be "
                                  "verified; it must be rebuilt.")
    return manifest


def verify_cache(folder: Path, manifest: dict) -> None:
    """Check every part of a cache: present, not truncated, its rows and content hash as the manifest says.

    Raises:
        EmbeddingCacheError: naming the first bad file.
    """
    prompts, size, columns = manifest["prompts"], int(manifest["part_size"]), _columns(manifest)
    for part, start in enumerate(range(0, len(prompts), size)):
        path, chunk = folder / _part_name(part), prompts[start:start + size]
        check_length(path, "Prompt-embedding cache part", EmbeddingCacheError)
        tensors = read_tensors(path)
        if sorted(tensors) != columns or any(len(t) != len(chunk) for t in tensors.values()):
            raise EmbeddingCacheError(f"Prompt-embedding cache part {path} is corrupt: it does not hold "
                                      f"{len(chunk)} rows of {', '.join(columns)}.")
        verify_hash(path, tensors, _part_metadata(chunk), manifest["sha256"].get(path.name),
                    "Prompt-embedding cache part", EmbeddingCacheError)


def _columns(manifest: dict) -> list[str]:
    """The columns every part holds (a cache written before pooled and extras were cached holds ``embeds`` only)."""
    return sorted(manifest.get("columns", [EMBEDS]))


def usable_cache(folder: str | Path, prompts: Sequence[str], source: str | None = None) -> EmbeddingCache | None:
    """The cache in ``folder`` if it is intact, holds every prompt and was made from ``source``, else ``None``.

    A damaged cache, and one made from other weights than ``source`` (both signatures known), is reported in a
    warning. Callers rebuild the cache when this returns ``None``.
    """
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        return None
    try:
        cache = EmbeddingCache(folder)
    except EmbeddingCacheError as err:
        warnings.warn(f"{err} Rebuilding it.", stacklevel=2)
        return None
    if is_stale(cache, source):
        warnings.warn(f"{stale_message(cache, source)} Rebuilding it.", stacklevel=2)
        return None
    return None if cache.missing(prompts) else cache


def is_stale(cache: EmbeddingCache, source: str | None) -> bool:
    """Whether ``cache`` was made from other weights than ``source`` (both signatures known)."""
    return None not in (source, cache.source) and cache.source != source


def stale_message(cache: EmbeddingCache, source: str | None) -> str:
    """One sentence saying that ``cache`` was made from other weights than ``source``."""
    return (f"The cache {cache.folder} was made from other weights (signature {cache.source}) than its backbone has "
            f"now ({source}).")


class EmbeddingCache:
    """Read-only, memory-mapped lookups of cached prompt embeddings; every part is verified when the cache opens.

    Args:
        folder: a cache folder written by :func:`build_embedding_cache`.

    Raises:
        EmbeddingCacheError: the cache is missing, truncated, corrupt or without hashes (names the file).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        manifest = _read_manifest(self.folder)
        verify_cache(self.folder, manifest)
        self.part_size, self.columns = int(manifest["part_size"]), _columns(manifest)
        self.source: str | None = manifest.get("source")  # the signature of the weights it was made from
        self.rows = {prompt: i for i, prompt in enumerate(manifest["prompts"])}
        self._handles: dict[int, object] = {}

    def __contains__(self, prompt: str) -> bool:
        return prompt in self.rows

    def missing(self, prompts: Sequence[str]) -> list[str]:
        """The prompts that have no cached embedding."""
        return [p for p in dict.fromkeys(prompts) if p not in self.rows]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": {}}  # mmap handles do not cross process boundaries

    def _handle(self, part: int):
        if part not in self._handles:
            self._handles[part] = safe_open(str(self.folder / _part_name(part)), framework="pt")
        return self._handles[part]

    def _row(self, key: str, column: str) -> torch.Tensor:
        part, offset = divmod(self.rows[key], self.part_size)
        value = self._handle(part).get_slice(column)[offset:offset + 1][0]
        return value.float() if value.is_floating_point() else value

    def get(self, prompt: str) -> torch.Tensor:
        """The float32 row of one key: the embedding (L, D) of a prompt, or a cached latent (C, h, w)."""
        return self._row(prompt, EMBEDS)

    def conditioning(self, prompt: str) -> dict[str, Any]:
        """A prompt's cached conditioning as sample fields, floating rows in float32.

        ``prompt_embeds`` (L, D) always; ``pooled_prompt_embeds`` (P,) and ``prompt_extras`` ``{key: row}`` where
        the cache holds them.
        """
        fields: dict[str, Any] = {"prompt_embeds": self.get(prompt)}
        if POOLED in self.columns:
            fields["pooled_prompt_embeds"] = self._row(prompt, POOLED)
        extras = {c[len(EXTRAS):]: self._row(prompt, c) for c in self.columns if c.startswith(EXTRAS)}
        if extras:
            fields["prompt_extras"] = extras
        return fields
