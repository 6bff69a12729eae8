"""Sharded run outputs: atomic, content-hashed safetensors shards beside a manifest of the run.

Every output of the generation engine (an NPD collection, an evaluation's per-sample records) is a folder:

* ``<folder>/shards/shard-<k>.safetensors`` holds a fixed, contiguous block of the run's (prompt, seed) items: the
  job's tensors, and in the header metadata the per-item records (JSON), the run's digest (the hash of its settings
  and items), the format name and ``content_sha256``, the :func:`~goldennoise.data.integrity.content_hash` of the
  tensors and of every other metadata string. A shard is written to a temporary name and renamed (atomic on POSIX),
  so a shard is either absent or complete, and its hash is checked on load and on resume: a changed shard is
  treated like a truncated one.
* ``<folder>/<manifest>``: the run's digest, its item count and ``shard_size``, and its description, written before
  the first shard; a reader compares the shards present with it and names the missing ones.

A :class:`ShardFormat` names what one kind of run stores (format name, manifest file, required tensors).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
from goldennoise.tensor_files import TMP_SUFFIX, save_atomic

HASH_KEY = "content_sha256"
SHARD_DIR = "shards"


class ShardError(CorruptFileError):
    """A shard, or the manifest listing them, is missing, corrupt, truncated or of another kind; names the file."""


@dataclass(frozen=True)
class ShardFormat:
    """What one kind of run stores.

    Attributes:
        name: the format name written into every shard (``goldennoise-npd/2``).
        label: how messages call a shard (``NPD shard``).
        manifest: the manifest's file name.
        count_key: the manifest's key for the number of items.
        unit: what messages call an item (``pairs``).
        tensors: tensors every shard must hold.
        row_tensor: a tensor with one row per record, checked against the records (``None``: no such tensor).
        legacy: older format names still read, unverified (written before shards carried a hash).
        error: the error raised for a bad shard or manifest.
    """

    name: str
    label: str
    manifest: str = "manifest.json"
    count_key: str = "num_items"
    unit: str = "items"
    tensors: frozenset[str] = frozenset()
    row_tensor: str | None = None
    legacy: tuple[str, ...] = ()
    error: type[ShardError] = ShardError


@dataclass
class Shard:
    """One shard's header: where it is and what it holds.

    Attributes:
        path: the shard file.
        records: the per-item records, in order.
        config_hash: the digest of the run that wrote it.
        meta: the header's other metadata (e.g. ``backbone``).
        hashed: whether the shard carries a content hash (``False`` for legacy formats).
    """

    path: Path
    records: list[dict]
    config_hash: str
    meta: dict[str, str] = field(default_factory=dict)
    hashed: bool = True

    @property
    def backbone(self) -> str:
        """The backbone id the shard was produced with (``""`` if not recorded)."""
        return self.meta.get("backbone", "")

    def __len__(self) -> int:
        return len(self.records)


def shard_dir(folder: str | Path) -> Path:
    """The folder holding a run's shards."""
    return Path(folder) / SHARD_DIR


def shard_path(folder: str | Path, shard_id: int) -> Path:
    """The file of shard ``shard_id`` (a name that does not depend on the rank that writes it)."""
    return shard_dir(folder) / f"shard-{shard_id:06d}.safetensors"


def shard_files(folder: str | Path) -> list[Path]:
    """The shard files present in a run's folder, in name order (their contents unread)."""
    folder = shard_dir(folder)
    return sorted(folder.glob("shard-*.safetensors")) if folder.is_dir() else []


def write_shard(fmt: ShardFormat, path: str | Path, tensors: dict[str, torch.Tensor], records: list[dict],
                config_hash: str, meta: dict[str, str] | None = None) -> Path:
    """Write a shard atomically (:func:`~goldennoise.tensor_files.save_atomic`), with its content hash.

    Args:
        fmt: the run's shard format.
        path: the final shard file.
        tensors: the job's tensors (``fmt.tensors`` at least).
        records: the per-item records (JSON-serialisable).
        config_hash: the run's digest.
        meta: further header strings (e.g. ``backbone``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not fmt.tensors <= set(tensors):
        raise ValueError(f"{fmt.label} {path}: tensors {sorted(fmt.tensors - set(tensors))} are missing.")
    if fmt.row_tensor is not None and any(t.shape[0] != len(records) for t in tensors.values()):
        raise ValueError(f"{fmt.label} {path}: every tensor needs {len(records)} rows, one per record.")
    metadata = {**(meta or {}), "format": fmt.name, "config_hash": config_hash, "records": json.dumps(records)}
    return save_atomic(path, tensors, {**metadata, HASH_KEY: content_hash(tensors, metadata)})


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete temporary shard files left by killed runs; returns how many were removed.

    Call it only while holding the folder's :class:`~goldennoise.data.folder_lock.FolderLock`: a temporary of a
    live run is that run's shard in progress.
    """
    folder = shard_dir(folder)
    stale = list(folder.glob(f"*{TMP_SUFFIX}")) if folder.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def _header(fmt: ShardFormat, path: Path) -> tuple[dict[str, str], set[str], int]:
    """The metadata, tensor names and row count (of ``fmt.row_tensor``, else -1) of a shard."""
    check_length(path, fmt.label, fmt.error)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta, keys = handle.metadata() or {}, set(handle.keys())
            rows = handle.get_slice(fmt.row_tensor).get_shape()[0] if fmt.row_tensor in keys else -1
    except Exception as err:  # safetensors raises SafetensorError for any malformed file
        raise fmt.error(f"{fmt.label} {path} cannot be read ({err}).") from None
    return meta, keys, rows


def read_shard(fmt: ShardFormat, path: str | Path, verify: bool = True) -> Shard:
    """Read and validate a shard's header; with ``verify``, also check its content hash (reads the tensors).

    Raises:
        ShardError: (``fmt.error``) the file is truncated, corrupt, changed since it was written or of another
            kind (the message names it).
    """
    path = Path(path)
    meta, keys, rows = _header(fmt, path)
    name = meta.get("format")
    if name not in (fmt.name, *fmt.legacy) or not fmt.tensors <= keys:
        raise fmt.error(f"{path} is not a {fmt.label} (format {name!r}, tensors {sorted(keys)}).")
    if verify and name == fmt.name:
        content = {k: v for k, v in meta.items() if k != HASH_KEY}
        verify_hash(path, read_tensors(path), content, meta.get(HASH_KEY), fmt.label, fmt.error)
    try:
        records = json.loads(meta["records"])
    except (KeyError, json.JSONDecodeError):
        raise fmt.error(f"{fmt.label} {path} is corrupt: its records are not valid JSON.") from None
    if fmt.row_tensor is not None and len(records) != rows:
        raise fmt.error(f"{fmt.label} {path} is corrupt: {len(records)} records for {rows} rows.")
    other = {k: v for k, v in meta.items() if k not in ("records", "config_hash", "format", HASH_KEY)}
    return Shard(path, records, meta.get("config_hash", ""), other, hashed=name == fmt.name)


def complete_shard(fmt: ShardFormat, path: Path, digest: str) -> bool:
    """Whether ``path`` is an intact shard of the run ``digest``, content hash checked (a bad one is reported)."""
    if not path.is_file():
        return False
    try:
        shard = read_shard(fmt, path)
    except ShardError as err:
        warnings.warn(f"{err} It will be produced again.", stacklevel=2)
        return False
    return shard.config_hash == digest


def write_manifest(fmt: ShardFormat, folder: str | Path, config_hash: str, num_items: int, config: dict) -> Path:
    """Write the manifest: what the folder holds when complete (``config`` must give ``shard_size``)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    manifest = {"config_hash": config_hash, fmt.count_key: num_items, "config": config}
    return write_json_atomic(Path(folder) / fmt.manifest, manifest)


def read_manifest(fmt: ShardFormat, folder: str | Path) -> dict | None:
    """The folder's manifest (``None`` when it has none).

    Raises:
        ShardError: the manifest is not valid JSON or lacks ``config_hash``, the item count or
            ``config.shard_size``.
    """
    path = Path(folder) / fmt.manifest
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        valid = (isinstance(manifest["config_hash"], str) and int(manifest[fmt.count_key]) >= 0
                 and int(manifest["config"]["shard_size"]) >= 1)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise fmt.error(f"{path} is corrupt: not a manifest with config_hash, {fmt.count_key} and "
                        "config.shard_size.")
    return manifest


def manifest_shard_ids(fmt: ShardFormat, manifest: dict) -> range:
    """Ids of the shards a complete run holds."""
    return range(-(-int(manifest[fmt.count_key]) // int(manifest["config"]["shard_size"])))


def prepare_folder(fmt: ShardFormat, folder: str | Path, digest: str, num_items: int, config: dict) -> None:
    """Check a run's folder for this run, (re)write its manifest, clear temporaries of killed runs.

    Call it holding the folder's lock. A folder without shards is reused whatever its manifest says: a run that
    failed before its first shard (a bad backbone, dtype, steps, scorer or prompt) leaves nothing to protect, so the
    corrected rerun proceeds.
    """
    out = Path(folder)
    manifest, shards = read_manifest(fmt, out), shard_files(out)
    if manifest is None and shards:
        raise ValueError(f"{out} holds shards of no goldennoise run (no {fmt.manifest}); choose a new output_dir.")
    if manifest is not None and manifest["config_hash"] != digest:
        if shards:
            changed = changed_settings(manifest.get("config", {}), config)
            raise ValueError(f"{out} holds another run ({len(shards)} shards, config hash {manifest['config_hash']}; "
                             f"this one {digest}; settings that differ: {changed or 'none'}, or its prompts or seeds); "
                             "choose a new output_dir or restore the settings it was run with.")
        manifest = None
    if manifest is None:
        write_manifest(fmt, out, digest, num_items, config)
    remove_stale_temporaries(out)


def changed_settings(stored: dict, current: dict, limit: int = 6, width: int = 40) -> str:
    """The settings whose values differ between a stored run's config and this one's, as ``name (old → new)``.

    Nested settings are compared one by one (``settings.batch_size``). Shortened to ``limit`` settings and ``width``
    characters a value; empty when none differs.
    """
    def shown(value: object) -> str:
        text = json.dumps(value, default=str)
        return text if len(text) <= width else text[:width - 1] + "…"

    stored, current = _flat(stored), _flat(current)
    names = sorted(k for k in stored.keys() | current.keys() if stored.get(k) != current.get(k))
    parts = [f"{k} ({shown(stored.get(k))} → {shown(current.get(k))})" for k in names[:limit]]
    return ", ".join(parts + ([f"{len(names) - limit} more"] if len(names) > limit else []))


def _flat(settings: dict, prefix: str = "") -> dict:
    """Nested dicts as one dict with dotted keys."""
    flat: dict = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _shard_id(path: Path) -> int | None:
    number = path.name.removeprefix("shard-").removesuffix(".safetensors")
    return int(number) if number.isdigit() else None


def _missing_shards(fmt: ShardFormat, folder: Path, manifest: dict | None, present: list[Path]) -> ShardError | None:
    """The error describing the shards the manifest lists but the folder lacks (``None`` if none)."""
    if manifest is None:
        return None
    expected = manifest_shard_ids(fmt, manifest)
    missing = sorted(set(expected) - {_shard_id(p) for p in present})
    if not missing:
        return None
    shown = ", ".join(shard_path(folder, k).name for k in missing[:10]) + (", ..." if len(missing) > 10 else "")
    return fmt.error(f"{folder} lacks {len(missing)} of the {len(expected)} shards its {fmt.manifest} records "
                     f"({manifest[fmt.count_key]} {fmt.unit}): {shown}. Rerun to complete it, or load with "
                     "on_bad_shard='skip'.")


def _check_membership(fmt: ShardFormat, shard: Shard, manifest: dict | None) -> None:
    """Raise unless ``shard`` is one of the shards of the run ``manifest`` describes."""
    if manifest is None:
        return
    if shard.config_hash != manifest["config_hash"]:
        raise fmt.error(f"{fmt.label} {shard.path} belongs to another run (config hash {shard.config_hash}, "
                        f"{fmt.manifest}: {manifest['config_hash']}).")
    if _shard_id(shard.path) not in manifest_shard_ids(fmt, manifest):
        raise fmt.error(f"{fmt.label} {shard.path} is not one of the {len(manifest_shard_ids(fmt, manifest))} "
                        f"shards {fmt.manifest} records.")


def iter_shards(fmt: ShardFormat, folder: str | Path, on_bad: str = "error", verify: bool = True) -> Iterator[Shard]:
    """The valid shards of a run's folder, in name order, checked against its manifest.

    Each shard is read with :func:`read_shard` and must belong to the manifest's run; shards the manifest lists but
    the folder lacks are reported before any shard is read. With ``on_bad="skip"`` every problem of the scan is
    reported in one warning at its end; shards of a legacy format (no content hash) get one warning too. A folder
    without a manifest cannot be checked for missing shards, which one warning says.

    Args:
        fmt: the run's shard format.
        folder: the run's folder.
        on_bad: ``"error"`` raises on the first problem; ``"skip"`` warns and goes on.
        verify: check each shard's content hash (reads every tensor once); ``False`` reads headers only.
    """
    if on_bad not in ("error", "skip"):
        raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}.")
    folder, problems, unhashed = Path(folder), [], 0
    manifest, present = read_manifest(fmt, folder), shard_files(folder)
    missing = _missing_shards(fmt, folder, manifest, present)
    if missing is not None:
        if on_bad == "error":
            raise missing
        problems.append(str(missing))
    for path in present:
        try:
            shard = read_shard(fmt, path, verify)
            _check_membership(fmt, shard, manifest)
        except ShardError as err:
            if on_bad == "error":
                raise
            problems.append(f"skipped: {err}")
            continue
        unhashed += not shard.hashed
        yield shard
    _warn_after_scan(fmt, folder, manifest, present, problems, unhashed)


def _warn_after_scan(fmt: ShardFormat, folder: Path, manifest: dict | None, present: list[Path],
                     problems: list[str], unhashed: int) -> None:
    if manifest is None and present:
        warnings.warn(f"{folder} has no {fmt.manifest}: missing shards cannot be detected.", stacklevel=3)
    if unhashed:
        warnings.warn(f"{unhashed} shards of {folder} were written before shards carried a content hash "
                      f"({', '.join(fmt.legacy)}); they are read unverified.", stacklevel=3)
    if problems:
        warnings.warn(f"Loading {folder} without its bad or missing shards: " + " ".join(problems), stacklevel=3)


def load_shard_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of one shard (small: one shard, not the dataset)."""
    return read_tensors(path)
