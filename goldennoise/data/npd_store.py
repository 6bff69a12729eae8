"""On-disk format of the noise prompt dataset (NPD): atomic safetensors shards whose headers carry the records.

NPNet (Zhou et al., 2024, arXiv 2411.09502) trains on (random noise, golden noise, prompt) pairs collected by
re-denoise sampling (``docs/npnet.md`` §2.2). The official code writes one ``.npz`` per pair plus a JSONL of scores
(§2.4); goldennoise stores shards instead (``docs/npd_format.md``):

* ``<dataset>/shards/shard-<k>.safetensors`` holds a fixed, contiguous block of the collection's (prompt, seed)
  index: tensors ``noise`` and ``target`` (n, C, h, w), ``seed`` and ``index`` (n,) int64; its header metadata holds
  the per-sample records (index, seed, prompt, prompt_id, scores ``{name: [random, golden]}``), the backbone id
  and the collection-config hash. A shard is one file written to a temporary name and renamed (atomic on POSIX),
  so a killed run never leaves a partial shard, and a shard is either absent or complete.
* Format ``goldennoise-npd/2``: the header also holds ``content_sha256``, the
  :func:`~goldennoise.data.integrity.content_hash` of the tensors and of every other metadata string (records
  included), checked on load and on resume; a shard that fails it is treated like a truncated one. Shards of
  ``goldennoise-npd/1`` (written before the hash) stay readable, unverified, with one warning per scan: they hold
  costly pairs that nothing can re-derive, and the version tells such a shard from a v2 shard whose hash was removed
  (an error).
* ``<dataset>/collection.json``: the collection's config hash, ``num_pairs`` and config (``shard_size``), written
  before the first shard; loaders compare the shards present with it and name the missing ones.
* ``<dataset>/index.parquet``: every record flattened (one row per pair, ``score/<name>/random|golden`` columns),
  written when a collection finishes, for inspection with pandas; loaders read the shard headers.

Every pair is stored; the margin filter (``docs/npnet.md`` §2.3) is applied at load time.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from goldennoise.data.integrity import (
    TMP_SUFFIX,
    CorruptFileError,
    check_length,
    content_hash,
    read_tensors,
    save_atomic,
    temporary_path,
    verify_hash,
    write_json_atomic,
)

FORMAT = "goldennoise-npd/2"
LEGACY_FORMAT = "goldennoise-npd/1"
HASH_KEY = "content_sha256"
SHARD_DIR = "shards"
MANIFEST = "collection.json"
TENSORS = frozenset({"noise", "target", "seed", "index"})


class NPDShardError(CorruptFileError):
    """An NPD shard, or the manifest listing them, is missing, corrupt, truncated or not NPD data; names the file."""


@dataclass
class Shard:
    """One shard's header: where it is and what it holds.

    Attributes:
        path: the shard file.
        records: one dict per sample, in row order.
        backbone: backbone id the pairs were collected with.
        config_hash: hash of the collection config.
        hashed: whether the shard carries a content hash (``False`` for ``goldennoise-npd/1`` shards).
    """

    path: Path
    records: list[dict]
    backbone: str
    config_hash: str
    hashed: bool = True

    def __len__(self) -> int:
        return len(self.records)


def shard_dir(dataset: str | Path) -> Path:
    """The folder holding a dataset's shards."""
    return Path(dataset) / SHARD_DIR


def shard_path(dataset: str | Path, shard_id: int) -> Path:
    """The file of shard ``shard_id`` (a name that does not depend on the rank that writes it)."""
    return shard_dir(dataset) / f"shard-{shard_id:06d}.safetensors"


def shard_files(dataset: str | Path) -> list[Path]:
    """The shard files present in a dataset, in name order (their contents unread)."""
    folder = shard_dir(dataset)
    return sorted(folder.glob("shard-*.safetensors")) if folder.is_dir() else []


def write_shard(path: str | Path, tensors: dict[str, torch.Tensor], records: list[dict], backbone: str,
                config_hash: str) -> Path:
    """Write a shard atomically (:func:`~goldennoise.data.integrity.save_atomic`), with its content hash.

    Args:
        path: the final shard file.
        tensors: ``noise``, ``target`` (n, C, h, w); ``seed``, ``index`` (n,) int64.
        records: n per-sample dicts (JSON-serialisable).
        backbone: backbone id.
        config_hash: collection-config hash.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(records)
    if any(t.shape[0] != n for t in tensors.values()):
        raise ValueError(f"Shard {path}: every tensor needs {n} rows, one per record.")
    metadata = {"format": FORMAT, "backbone": backbone, "config_hash": config_hash, "records": json.dumps(records)}
    return save_atomic(path, tensors, {**metadata, HASH_KEY: content_hash(tensors, metadata)})


def remove_stale_temporaries(dataset: str | Path) -> int:
    """Delete temporary shard files left by killed runs; returns how many were removed.

    Call it only while holding the dataset's :class:`~goldennoise.data.folder_lock.FolderLock`: a temporary of a
    live run is that run's shard in progress.
    """
    folder = shard_dir(dataset)
    stale = list(folder.glob(f"*{TMP_SUFFIX}")) if folder.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def read_shard(path: str | Path, verify: bool = True) -> Shard:
    """Read and validate a shard's header; with ``verify``, also check its content hash (reads the tensors).

    Shards of ``goldennoise-npd/1`` (written before shards carried a hash) are read unverified, ``hashed=False``.

    Raises:
        NPDShardError: the file is truncated, corrupt, changed since it was written or not an NPD shard (the
            message names it).
    """
    path = Path(path)
    check_length(path, "NPD shard", NPDShardError)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta, keys = handle.metadata() or {}, set(handle.keys())
            rows = handle.get_slice("noise").get_shape()[0] if "noise" in keys else -1
    except Exception as err:  # safetensors raises SafetensorError for any malformed file
        raise NPDShardError(f"NPD shard {path} cannot be read ({err}).") from None
    fmt = meta.get("format")
    if fmt not in (FORMAT, LEGACY_FORMAT) or not TENSORS <= keys:
        raise NPDShardError(f"{path} is not an NPD shard (format {fmt!r}, tensors {sorted(keys)}).")
    if verify and fmt == FORMAT:
        content = {k: v for k, v in meta.items() if k != HASH_KEY}
        verify_hash(path, read_tensors(path), content, meta.get(HASH_KEY), "NPD shard", NPDShardError)
    try:
        records = json.loads(meta["records"])
    except (KeyError, json.JSONDecodeError):
        raise NPDShardError(f"NPD shard {path} is corrupt: its records are not valid JSON.") from None
    if len(records) != rows:
        raise NPDShardError(f"NPD shard {path} is corrupt: {len(records)} records for {rows} rows.")
    return Shard(path, records, meta.get("backbone", ""), meta.get("config_hash", ""), hashed=fmt == FORMAT)


def write_manifest(dataset: str | Path, config_hash: str, num_pairs: int, config: dict) -> Path:
    """Write ``collection.json``: what the dataset holds when complete (``config`` must give ``shard_size``)."""
    Path(dataset).mkdir(parents=True, exist_ok=True)
    manifest = {"config_hash": config_hash, "num_pairs": num_pairs, "config": config}
    return write_json_atomic(Path(dataset) / MANIFEST, manifest)


def read_manifest(dataset: str | Path) -> dict | None:
    """The dataset's ``collection.json`` (``None`` when it has none).

    Raises:
        NPDShardError: the manifest is not valid JSON or lacks ``config_hash``, ``num_pairs`` or
            ``config.shard_size``.
    """
    path = Path(dataset) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        valid = (isinstance(manifest["config_hash"], str) and int(manifest["num_pairs"]) >= 0
                 and int(manifest["config"]["shard_size"]) >= 1)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise NPDShardError(f"{path} is corrupt: not a collection manifest with config_hash, num_pairs and "
                            "config.shard_size.")
    return manifest


def manifest_shard_ids(manifest: dict) -> range:
    """Ids of the shards a complete collection holds."""
    return range(-(-int(manifest["num_pairs"]) // int(manifest["config"]["shard_size"])))


def _missing_shards(dataset: Path, manifest: dict | None, present: list[Path]) -> NPDShardError | None:
    """The error describing the shards ``collection.json`` lists but the folder lacks (``None`` if none)."""
    if manifest is None:
        return None
    missing = sorted(set(manifest_shard_ids(manifest)) - {_shard_id(p) for p in present})
    if not missing:
        return None
    shown = ", ".join(shard_path(dataset, k).name for k in missing[:10]) + (", ..." if len(missing) > 10 else "")
    return NPDShardError(f"{dataset} lacks {len(missing)} of the {len(manifest_shard_ids(manifest))} shards its "
                         f"{MANIFEST} records ({manifest['num_pairs']} pairs): {shown}. Rerun the collection to "
                         "complete it, or load with on_bad_shard='skip'.")


def _shard_id(path: Path) -> int | None:
    number = path.name.removeprefix("shard-").removesuffix(".safetensors")
    return int(number) if number.isdigit() else None


def _check_membership(shard: Shard, manifest: dict | None) -> None:
    """Raise unless ``shard`` is one of the shards of the collection ``manifest`` describes."""
    if manifest is None:
        return
    if shard.config_hash != manifest["config_hash"]:
        raise NPDShardError(f"NPD shard {shard.path} belongs to another collection (config hash "
                            f"{shard.config_hash}, {MANIFEST}: {manifest['config_hash']}).")
    if _shard_id(shard.path) not in manifest_shard_ids(manifest):
        raise NPDShardError(f"NPD shard {shard.path} is not one of the {len(manifest_shard_ids(manifest))} shards "
                            f"{MANIFEST} records.")


def iter_shards(dataset: str | Path, on_bad: str = "error", verify: bool = True) -> Iterator[Shard]:
    """The valid shards of a dataset, in name order, checked against its ``collection.json``.

    Each shard is read with :func:`read_shard` and must belong to the manifest's collection; shards the manifest
    lists but the folder lacks are reported before any shard is read. With ``on_bad="skip"`` every problem of the
    scan is reported in one warning at its end; shards without a content hash (``goldennoise-npd/1``) get one warning
    too. A folder without a manifest (an import written before imports wrote one) cannot be checked for missing
    shards, which one warning says.

    Args:
        dataset: the dataset folder.
        on_bad: ``"error"`` raises :class:`NPDShardError` on the first problem; ``"skip"`` warns and goes on.
        verify: check each shard's content hash (reads every tensor once); ``False`` reads headers only.
    """
    if on_bad not in ("error", "skip"):
        raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}.")
    dataset, problems, unhashed = Path(dataset), [], 0
    manifest, present = read_manifest(dataset), shard_files(dataset)
    missing = _missing_shards(dataset, manifest, present)
    if missing is not None:
        if on_bad == "error":
            raise missing
        problems.append(str(missing))
    for path in present:
        try:
            shard = read_shard(path, verify)
            _check_membership(shard, manifest)
        except NPDShardError as err:
            if on_bad == "error":
                raise
            problems.append(f"skipped: {err}")
            continue
        unhashed += not shard.hashed
        yield shard
    _warn_after_scan(dataset, manifest, present, problems, unhashed)


def _warn_after_scan(dataset: Path, manifest: dict | None, present: list[Path], problems: list[str],
                     unhashed: int) -> None:
    if manifest is None and present:
        warnings.warn(f"{dataset} has no {MANIFEST}: missing shards cannot be detected.", stacklevel=3)
    if unhashed:
        warnings.warn(f"{unhashed} shards of {dataset} were written before shards carried a content hash "
                      f"({LEGACY_FORMAT}); they are read unverified.", stacklevel=3)
    if problems:
        warnings.warn(f"Loading {dataset} without its bad or missing shards: " + " ".join(problems), stacklevel=3)


def load_shard_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of one shard (small: one shard, not the dataset)."""
    return read_tensors(path)


def flat_records(shards: list[Shard]) -> list[dict]:
    """One flat dict per pair: record fields, ``shard``, ``row``, ``backbone``, ``config_hash``, score columns."""
    rows = []
    for shard in shards:
        for row, record in enumerate(shard.records):
            flat = {k: v for k, v in record.items() if k != "scores"}
            for name, (random, golden) in record.get("scores", {}).items():
                flat[f"score/{name}/random"], flat[f"score/{name}/golden"] = random, golden
            rows.append({**flat, "shard": shard.path.name, "row": row, "backbone": shard.backbone,
                         "config_hash": shard.config_hash})
    return rows


def write_index(dataset: str | Path, shards: list[Shard]) -> Path:
    """Write ``index.parquet`` (atomically) from the shard headers; returns its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(dataset) / "index.parquet"
    tmp = temporary_path(path)
    pq.write_table(pa.Table.from_pylist(flat_records(shards)), tmp)
    os.replace(tmp, path)
    return path
