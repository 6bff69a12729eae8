"""``TextImagePairDataModule``: (x_T, x_0 latent, prompt) pairs for NoiseRefine, from teacher records or real images.

NoiseRefine (Ahn et al., 2024, arXiv 2412.03895, Sec. 4) distils guided sampling from text–image pairs whose image
is the guided sample of a stored noise. The same loader serves external (prompt, image) pairs, so real data takes
the same path (``docs/noiserefine_data.md``). Sources (``source=``):

* ``teacher``: a folder written by ``python -m goldennoise collect-teacher`` (:mod:`goldennoise.data.teacher_store`);
  x_T and x_0 come from its shards, optionally filtered by a minimum score;
* ``image_folder``: images beside a captions file (``metadata.jsonl`` or ``.csv`` with ``file_name`` and
  ``text`` columns, the Hugging Face ``imagefolder`` convention; an optional ``seed`` column);
* ``parquet``: a ``.parquet`` file or a folder of them, with an image column (bytes, or Hugging Face's
  ``{bytes, path}`` struct) and a caption column;
* ``webdataset``: a WebDataset shard (``.tar``, ``.tar.gz``, ``.tgz``) or a folder of them, each sample an image
  member beside a ``.txt`` caption (or a caption key of its ``.json``), as img2dataset writes them;
* ``hf_dataset``: a Hugging Face dataset, a folder written by ``save_to_disk`` or a hub id (with ``hf_split``).

External images are encoded once by the backbone's VAE (:meth:`~goldennoise.backbones.Backbone.encode_images`,
posterior mean) and cached under the SHA-256 of their bytes (:func:`~goldennoise.data.npd_embeddings.build_keyed_cache`,
the hashed part store of the prompt-embedding cache); their x_T is the Gaussian noise of the item's seed
(:func:`~goldennoise.sampling.noise_for_seeds`), the ``seed`` column's value or a stable hash of the image and prompt.
Both caches record the signature of the files they were made from (the VAE's; the text encoders' and tokenizers':
:func:`~goldennoise.backbones.loading.weights_signature`) and are rebuilt when the backbone's files change.

Contract (with the NoiseRefine LightningModule). Every batch is a dict:

* ``"noise"``: (B, C, h, w) float32, x_T;
* ``"latent"``: (B, C, h, w) float32, the target x_0 latent (unit-scaled, as the UNet sees it);
* ``"prompt_embeds"``: (B, L, D) float32, the cached ``cond.embeds`` of ``Backbone.encode_prompt`` for each
  sample's own prompt (the key :class:`~goldennoise.data.NoisePairDataModule` uses);
* ``"pooled_prompt_embeds"``: (B, P) float32 ``cond.pooled`` and ``"prompt_extras"`` ``{key: (B, ...)}``
  ``cond.extras`` (floating ones float32, integer masks in their dtype), where the backbone has them and the cache
  holds them (a cache built before pooled embeddings were cached does not);
* ``"prompt"``: list[str] of B prompts;
* ``"seed"``: (B,) int64.

Splits are deterministic (``split_seed``) and by default by prompt, so validation prompts are unseen in training.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from torch.utils.data import Dataset

from goldennoise.data.base import SplitBy, SplitDataModule, check_split, split_indices
from goldennoise.data.npd import NoisePairDataset
from goldennoise.data.npd_embeddings import (
    EmbeddingCache,
    EmbeddingCacheError,
    build_embedding_cache,
    build_keyed_cache,
    cache_dir,
    is_stale,
    stale_message,
    text_signature,
    usable_cache,
)
from goldennoise.data.shards import Shard, iter_shards
from goldennoise.data.teacher_store import TEACHER_FORMAT
from goldennoise.sampling import noise_for_seeds

Source = Literal["teacher", "image_folder", "parquet", "webdataset", "hf_dataset"]
LATENT_DIR = "latents"


class ImagePairError(ValueError):
    """An external (prompt, image) source is malformed: a missing image, a bad caption row, a wrong image size."""


@dataclass(frozen=True)
class ExternalItem:
    """One external pair: where it came from (for messages), its prompt, seed and the SHA-256 of its image bytes."""

    name: str
    prompt: str
    seed: int
    key: str


def stable_seed(key: str, prompt: str) -> int:
    """A seed from the image hash and the prompt: the same item gets the same noise on every machine (< 2^60)."""
    return int(hashlib.sha256(f"{key}\n{prompt}".encode()).hexdigest()[:15], 16)


def image_key(data: bytes) -> str:
    """The cache key of an image: the SHA-256 of its file bytes."""
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, name: str, size: int) -> torch.Tensor:
    """An RGB image (3, size, size) in [0, 1]; any other size is an :class:`ImagePairError` naming the image."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as err:  # PIL raises several types for unreadable files
        raise ImagePairError(f"Image {name} cannot be read ({err}).") from None
    if image.size != (size, size):
        raise ImagePairError(f"Image {name} is {image.size[0]}x{image.size[1]} px; this backbone's pairs need "
                             f"{size}x{size} (resize the images or set image_size).")
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255


# --- external sources: (name, prompt, seed or None, image bytes) ------------------------------------------------


def _caption_rows(path: Path) -> Iterator[tuple[int, dict]]:
    if path.suffix == ".jsonl":
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError:
                    raise ImagePairError(f"Captions file {path} line {line_no} is not valid JSON.") from None
    elif path.suffix == ".csv":
        with path.open(newline="") as handle:
            yield from enumerate(csv.DictReader(handle), 2)
    else:
        raise ImagePairError(f"Captions file {path} must be .jsonl or .csv.")


def _field(row: dict, column: str, where: str) -> object:
    if row.get(column) in (None, "", b""):
        raise ImagePairError(f"{where} has no {column!r} value.")
    return row[column]


def _seed_of(row: dict, column: str | None, where: str) -> int | None:
    value = row.get(column) if column else None
    if value in (None, "", b""):
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise ImagePairError(f"{where} has the {column!r} value {value!r}, which is not an integer seed.") from None


def read_image_folder(folder: Path, captions: str, file_column: str, caption_column: str,
                      seed_column: str | None) -> Iterator[tuple[str, str, int | None, bytes]]:
    """Pairs of an image folder listed by its captions file."""
    path = folder / captions
    if not path.is_file():
        raise FileNotFoundError(f"Captions file {path} does not exist.")
    for line_no, row in _caption_rows(path):
        where = f"Captions file {path} line {line_no}"
        image = folder / str(_field(row, file_column, where))
        if not image.is_file():
            raise FileNotFoundError(f"{where} names the image {image}, which does not exist.")
        yield (str(image), str(_field(row, caption_column, where)), _seed_of(row, seed_column, where),
               image.read_bytes())


def _image_bytes(value: object, where: str) -> bytes:
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path") and Path(value["path"]).is_file():
            return Path(value["path"]).read_bytes()
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise ImagePairError(f"{where} holds no image bytes.")


def _source_files(path: Path, suffixes: tuple[str, ...], kind: str) -> list[Path]:
    """``path`` itself, or the files of the folder ``path`` ending in one of ``suffixes``, in name order."""
    files = sorted(p for p in path.iterdir() if p.name.endswith(suffixes)) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise FileNotFoundError(f"No {kind} at {path}.")
    return files


def read_parquet(path: Path, image_column: str, caption_column: str,
                 seed_column: str | None) -> Iterator[tuple[str, str, int | None, bytes]]:
    """Pairs of a parquet file, or of every ``*.parquet`` of a folder in name order."""
    import pyarrow.parquet as pq

    for file in _source_files(path, (".parquet",), "parquet file"):
        try:
            table = pq.read_table(file)
        except Exception as err:  # pyarrow raises ArrowInvalid and OSError for damaged files
            raise ImagePairError(f"Parquet file {file} cannot be read ({err}).") from None
        missing = {image_column, caption_column} - set(table.column_names)
        if missing:
            raise ImagePairError(f"Parquet file {file} lacks the columns {sorted(missing)} "
                                 f"(it has {table.column_names}).")
        for i, row in enumerate(table.to_pylist()):
            where = f"Parquet file {file} row {i}"
            yield (f"{file}#{i}", str(_field(row, caption_column, where)), _seed_of(row, seed_column, where),
                   _image_bytes(row[image_column], where))


WEBDATASET_SUFFIXES = (".tar", ".tar.gz", ".tgz")
WEBDATASET_IMAGES = ("jpg", "jpeg", "png", "webp")


def _webdataset_samples(file: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` per sample of one WebDataset shard, in the order of each key's first member.

    The WebDataset convention: a sample's members share a key, the member path up to the first dot of its file name;
    the rest of the name is the field (``0001.jpg``, ``0001.txt``, ``0001.json``). The shard is read whole before its
    first sample is given, so a damaged archive fails before any of its samples is used.
    """
    samples: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(file, "r:*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, dot, extension = name.partition(".")
                if not dot:
                    raise ImagePairError(f"WebDataset shard {file} member {member.name} has no extension, so no field.")
                key = f"{folder}/{stem}" if folder else stem
                samples.setdefault(key, {})[extension.lower()] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as err:  # truncated or not a tar: ReadError, gzip's errors
        raise ImagePairError(f"WebDataset shard {file} cannot be read ({err}).") from None
    yield from samples.items()


def _webdataset_row(fields: dict[str, bytes], where: str) -> dict[str, object]:
    """A sample's columns: the keys of its ``.json`` member, then each member by extension (members win)."""
    row: dict[str, object] = {}
    if "json" in fields:
        try:
            meta = json.loads(fields["json"])
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ImagePairError(f"{where}: its .json member is not valid JSON.") from None
        if not isinstance(meta, dict):
            raise ImagePairError(f"{where}: its .json member is not a JSON object.")
        row.update(meta)
    row.update(fields)
    return row


def _webdataset_image(fields: dict[str, bytes], image_column: str | None, where: str) -> bytes:
    if image_column is not None:
        return _image_bytes(fields.get(image_column), where)
    found = [extension for extension in fields if extension in WEBDATASET_IMAGES]
    if len(found) != 1:
        held = f"the images {found}" if found else f"no image ({'/'.join(WEBDATASET_IMAGES)})"
        raise ImagePairError(f"{where} holds {held}; name the image field with image_column.")
    return fields[found[0]]


def _text(value: object) -> str:
    return (value.decode() if isinstance(value, bytes) else str(value)).strip()


def read_webdataset(path: Path, image_column: str | None, caption_column: str,
                    seed_column: str | None) -> Iterator[tuple[str, str, int | None, bytes]]:
    """Pairs of a WebDataset shard (``.tar``, ``.tar.gz``, ``.tgz``) or of every shard of a folder in name order.

    A column is a member's extension (``txt``: the caption as UTF-8 text, surrounding whitespace dropped), else a
    key of the sample's ``.json`` member (img2dataset writes ``caption`` and more there). The image is the
    ``image_column`` member, by default the sample's one member with an image extension.
    """
    for file in _source_files(path, WEBDATASET_SUFFIXES, "WebDataset shard (.tar, .tar.gz, .tgz)"):
        for key, fields in _webdataset_samples(file):
            where = f"WebDataset shard {file} sample {key}"
            row = _webdataset_row(fields, where)
            yield (f"{file}#{key}", _text(_field(row, caption_column, where)), _seed_of(row, seed_column, where),
                   _webdataset_image(fields, image_column, where))


def read_hf_dataset(path: str, split: str, image_column: str, caption_column: str,
                    seed_column: str | None) -> Iterator[tuple[str, str, int | None, bytes]]:
    """Pairs of a Hugging Face dataset (``save_to_disk`` folder or hub id); images read undecoded."""
    import datasets

    if Path(path).is_dir():
        data = datasets.load_from_disk(path)
        if isinstance(data, datasets.DatasetDict):
            data = data[split]
    else:
        data = datasets.load_dataset(path, split=split)
    missing = {image_column, caption_column} - set(data.column_names)
    if missing:
        raise ImagePairError(f"Dataset {path} lacks the columns {sorted(missing)} (it has {data.column_names}).")
    if isinstance(data.features[image_column], datasets.Image):
        data = data.cast_column(image_column, datasets.Image(decode=False))
    for i, row in enumerate(data):
        where = f"Dataset {path} [{split}] row {i}"
        yield (f"{path}[{split}][{i}]", str(_field(row, caption_column, where)), _seed_of(row, seed_column, where),
               _image_bytes(row[image_column], where))


# --- datasets ----------------------------------------------------------------------------------------------------


class TeacherPairDataset(NoisePairDataset):
    """Teacher records addressed as (shard, row), read through cached memory maps (x_T and the guided x_0)."""

    target_key = "latent"


class ImagePairDataset(Dataset):
    """External pairs: cached VAE latents and the seed's Gaussian noise.

    Args:
        items: the pairs.
        latents: the latent cache (keyed by image hash).
        embeddings: the prompt-embedding cache.
    """

    def __init__(self, items: list[ExternalItem], latents: EmbeddingCache, embeddings: EmbeddingCache) -> None:
        self.items, self.latents, self.embeddings = items, latents, embeddings

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        latent = self.latents.get(item.key)  # (C, h, w)
        return {
            "noise": noise_for_seeds([item.seed], latent.shape)[0],  # (C, h, w)
            "latent": latent,
            **self.embeddings.conditioning(item.prompt),  # prompt_embeds (L, D), pooled / extras where cached
            "prompt": item.prompt,
            "seed": item.seed,
        }


class TextImagePairDataModule(SplitDataModule):
    """Text–image pairs (teacher records or external images) for NoiseRefine; see the module docstring.

    Args:
        path: the teacher folder, image folder, parquet file or folder, WebDataset shard or folder, or dataset
            folder or hub id.
        source: ``teacher``, ``image_folder``, ``parquet``, ``webdataset`` or ``hf_dataset``.
        backbone: backbone of the text embeddings and (external sources) of the VAE; default: the teacher's.
        backbone_dtype: weight dtype when the backbone is loaded to build a cache.
        image_size: side in pixels every external image must have; default: the backbone's native size.
        captions: the image folder's captions file (``.jsonl`` or ``.csv``), relative to ``path``.
        file_column: the captions file's image-file column.
        caption_column: caption column of external sources; default ``txt`` for WebDataset shards (the
            ``.txt`` member), else ``text``. A WebDataset column is a member's extension or a key of its ``.json``.
        image_column: image column of parquet, WebDataset and Hugging Face sources; default ``image``, and for
            WebDataset shards the sample's one member with an image extension (jpg, jpeg, png, webp).
        seed_column: optional column giving an external pair's noise seed; else a stable hash of the item.
        hf_split: split of a Hugging Face dataset.
        min_score: keep only teacher records whose ``filter_metric`` score is at least this (``None``: all).
        filter_metric: score ``min_score`` reads; default: the only score stored.
        cache_root: where caches of external sources go; default: ``path`` if it is a folder, else a
            ``<path>.goldennoise-cache`` folder beside it. Teacher caches live in the teacher folder.
        val_fraction: share of the prompts (``split_by="prompt"`` / ``"prompt_hash"``) or pairs (``"item"`` /
            ``"item_hash"``) held out.
        split_by: ``prompt`` (validation prompts never appear in training; exactly ``val_fraction`` of them, drawn
            by a seeded permutation of the distinct prompts, which reshuffles when prompts are added), ``prompt_hash``
            (as ``prompt``, but each prompt's side decided by a seeded hash of the prompt alone: records added to a
            collection later never move a prompt across, and the held-out share is ``val_fraction`` on average),
            ``item`` or ``item_hash`` (the same for (prompt, seed) pairs; :func:`~goldennoise.data.base.split_indices`).
        split_seed: seed of the split permutation or hash.
        batch_size: pairs per batch.
        num_workers: DataLoader workers.
        embed_batch_size: prompts per text-encoder call, and images per VAE call, when building caches.
        embed_device: device of the one-off encoding pass; default: the current accelerator, else the CPU.
        on_bad_shard: a bad or missing teacher shard: ``error`` (raise, naming it) or ``skip`` (warn).
        pin_memory: pin batches in page-locked memory.
    """

    def __init__(
        self,
        path: str,
        source: Source = "teacher",
        backbone: str | None = None,
        backbone_dtype: str = "float32",
        image_size: int | None = None,
        captions: str = "metadata.jsonl",
        file_column: str = "file_name",
        caption_column: str | None = None,
        image_column: str | None = None,
        seed_column: str | None = "seed",
        hf_split: str = "train",
        min_score: float | None = None,
        filter_metric: str | None = None,
        cache_root: str | None = None,
        val_fraction: float = 0.1,
        split_by: SplitBy = "prompt",
        split_seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        embed_batch_size: int = 32,
        embed_device: str | None = None,
        on_bad_shard: str = "error",
        pin_memory: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory)
        if source not in get_args(Source):
            raise ValueError(f"source must be one of {', '.join(get_args(Source))}, got {source!r}.")
        if source != "teacher" and backbone is None:
            raise ValueError(f"source={source!r} needs backbone= (its VAE encodes the images).")
        check_split(split_by, val_fraction)
        self.path, self.source, self.backbone, self.backbone_dtype = path, source, backbone, backbone_dtype
        self.image_size, self.captions, self.file_column = image_size, captions, file_column
        webdataset = source == "webdataset"
        self.caption_column = caption_column or ("txt" if webdataset else "text")
        self.image_column = image_column or (None if webdataset else "image")
        self.seed_column = seed_column
        self.hf_split, self.min_score, self.filter_metric = hf_split, min_score, filter_metric
        self.cache_root, self.val_fraction = cache_root, val_fraction
        self.split_by, self.split_seed = split_by, split_seed
        self.embed_batch_size, self.embed_device, self.on_bad_shard = embed_batch_size, embed_device, on_bad_shard
        self._shards: list[Shard] | None = None
        self._items: list[ExternalItem] | None = None

    # --- index -----------------------------------------------------------------------------------------------

    def _teacher_shards(self) -> list[Shard]:
        if self._shards is None:
            folder = Path(self.path)
            if not (folder / TEACHER_FORMAT.manifest).is_file():
                raise FileNotFoundError(f"{folder} holds no teacher data ({TEACHER_FORMAT.manifest} is missing); "
                                        "run `python -m goldennoise collect-teacher` first.")
            shards = list(iter_shards(TEACHER_FORMAT, folder, self.on_bad_shard))
            if not any(len(s) for s in shards):
                raise FileNotFoundError(f"The teacher folder {folder} holds no records.")
            self._shards = shards
        return self._shards

    def _raw_pairs(self) -> Iterator[tuple[str, str, int | None, bytes]]:
        path = Path(self.path)
        if self.source == "image_folder":
            if not path.is_dir():
                raise FileNotFoundError(f"Image folder {path} does not exist.")
            return read_image_folder(path, self.captions, self.file_column, self.caption_column, self.seed_column)
        if self.source == "parquet":
            return read_parquet(path, self.image_column, self.caption_column, self.seed_column)
        if self.source == "webdataset":
            return read_webdataset(path, self.image_column, self.caption_column, self.seed_column)
        return read_hf_dataset(self.path, self.hf_split, self.image_column, self.caption_column, self.seed_column)

    def _external(self, keep_bytes: bool = False) -> tuple[list[ExternalItem], dict[str, tuple[str, bytes]]]:
        """The external pairs (indexed once) and, with ``keep_bytes``, each image's name and bytes by key."""
        items, images = [], {}
        for name, prompt, seed, data in self._raw_pairs():
            key = image_key(data)
            items.append(ExternalItem(name, prompt, stable_seed(key, prompt) if seed is None else seed, key))
            if keep_bytes:
                images.setdefault(key, (name, data))
        if not items:
            raise FileNotFoundError(f"The {self.source} source {self.path} holds no pairs.")
        self._items = items
        return items, images

    def _external_items(self) -> list[ExternalItem]:
        return self._items if self._items is not None else self._external()[0]

    def _backbone_name(self) -> str:
        return self.backbone or self._teacher_shards()[0].backbone

    def _root(self) -> Path:
        """Folder of the caches: the teacher folder, ``cache_root``, or beside/inside an external source."""
        path = Path(self.path)
        if self.source == "teacher":
            return path
        if self.cache_root is not None:
            return Path(self.cache_root)
        return path if path.is_dir() else path.with_name(path.name + ".goldennoise-cache")

    def _latent_dir(self) -> Path:
        return self._root() / LATENT_DIR / self._backbone_name().strip("/").replace("/", "--")

    def _image_signature(self) -> str | None:
        """The signature of the backbone's VAE files, which the latent cache records (``None``: unknown)."""
        from goldennoise.backbones.loading import IMAGE_PARTS, weights_signature  # imports diffusers

        return weights_signature(self._backbone_name(), IMAGE_PARTS)

    def _prompts(self) -> list[str]:
        if self.source == "teacher":
            return [r["prompt"] for s in self._teacher_shards() for r in s.records]
        return [item.prompt for item in self._external_items()]

    # --- Lightning hooks ---------------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Build the missing caches once (one process): text embeddings, and for external images their latents."""
        name = self._backbone_name()
        need_latents = False
        if self.source != "teacher":
            items, images = self._external(keep_bytes=True)  # indexes the pairs: _prompts() reuses it
            need_latents = usable_cache(self._latent_dir(), [i.key for i in items], self._image_signature()) is None
        prompts = self._prompts()
        need_text = usable_cache(cache_dir(self._root(), name), prompts, text_signature(name)) is None
        if not (need_text or need_latents):
            return
        from goldennoise.backbones import load_backbone

        device = self.embed_device or (torch.accelerator.current_accelerator(check_available=True) or "cpu")
        backbone = load_backbone(name, dtype=self.backbone_dtype, device=device)
        if need_latents:
            size = self.image_size or backbone.default_size
            for image_name, data in images.values():  # every image checked before any is encoded
                decode_image(data, image_name, size)

            def encode(keys: list[str]) -> torch.Tensor:
                pixels = torch.stack([decode_image(images[k][1], images[k][0], size) for k in keys])  # (n,3,H,W)
                return backbone.encode_images(pixels.to(backbone.device)).float()  # (n, C, h, w)

            # signed again after loading: a hub id fetched just now has files to sign only from here on
            build_keyed_cache(self._latent_dir(), list(images), encode, self.embed_batch_size,
                              dtype=torch.float32, source=self._image_signature(), backbone=name)
        if need_text:
            build_embedding_cache(self._root(), name, backbone, prompts, batch_size=self.embed_batch_size,
                                  whole_conditioning=True)

    def _cache(self, folder: Path, keys: list[str], what: str, source: str | None) -> EmbeddingCache:
        try:
            cache = EmbeddingCache(folder)
        except EmbeddingCacheError as err:
            raise EmbeddingCacheError(f"{err} Run prepare_data() to build the {what} cache.") from None
        if is_stale(cache, source):
            raise EmbeddingCacheError(f"{stale_message(cache, source)} Run prepare_data() to rebuild it.")
        missing = cache.missing(keys)
        if missing:
            raise EmbeddingCacheError(f"The {what} cache {folder} lacks {len(missing)} entries; run prepare_data().")
        return cache

    def setup(self, stage: str | None = None) -> None:
        """Index the pairs, filter teacher records by score, split deterministically."""
        name = self._backbone_name()
        embeddings = self._cache(cache_dir(self._root(), name), self._prompts(), "prompt-embedding",
                                 text_signature(name))
        if self.source == "teacher":
            entries, kept = self._teacher_entries()
            prompts = [e[2] for e in entries]
            val, train = self._split(prompts, [e[3] for e in entries])  # before the filter: a stricter one keeps it
            self.train_set = TeacherPairDataset([entries[i] for i in train if kept[i]], embeddings)
            self.val_set = TeacherPairDataset([entries[i] for i in val if kept[i]], embeddings)
        else:
            items = self._external_items()
            latents = self._cache(self._latent_dir(), [i.key for i in items], "latent", self._image_signature())
            prompts = [i.prompt for i in items]
            val, train = self._split(prompts, [i.seed for i in items])
            self.train_set = ImagePairDataset([items[i] for i in train], latents, embeddings)
            self.val_set = ImagePairDataset([items[i] for i in val], latents, embeddings)
        self.total_pairs = len(prompts)

    def _teacher_entries(self) -> tuple[list[tuple[Path, int, str, int]], list[bool]]:
        """Every teacher record as ``(shard, row, prompt, seed)`` and whether the score filter keeps it."""
        shards = self._teacher_shards()
        metric = self.filter_metric
        names = sorted(next(r for s in shards for r in s.records).get("scores", {}))
        if self.min_score is not None:
            if metric is None and len(names) != 1:
                raise ValueError(f"The teacher data {self.path} stores scores {names}; choose filter_metric=.")
            metric = metric or names[0]
            if metric not in names:
                raise ValueError(f"Score {metric!r} is not in the teacher data {self.path} (scores: {names}).")
        records = [(s.path, row, r) for s in shards for row, r in enumerate(s.records)]
        kept = [self.min_score is None or r["scores"][metric] >= self.min_score for _, _, r in records]
        if not any(kept):
            raise ValueError(f"No teacher record of {self.path} has {metric} >= {self.min_score}.")
        return [(path, row, r["prompt"], int(r["seed"])) for path, row, r in records], kept

    def _split(self, prompts: list[str], seeds: list[int]) -> tuple[list[int], list[int]]:
        """(validation, train) indices of the pairs, by ``split_by`` (:func:`~goldennoise.data.base.split_indices`)."""
        return split_indices(prompts, seeds, self.split_by, self.val_fraction, self.split_seed)
