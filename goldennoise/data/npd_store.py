"""On-disk format of the noise prompt dataset (NPD): atomic safetensors shards whose headers carry the records.

NPNet (Zhou et al., 2024, arXiv 2411.09502) trains on (random noise, golden noise, prompt) pairs collected by
re-denoise sampling (``docs/npnet.md`` §2.2). The official code writes one ``.npz`` per pair plus a JSONL of scores
(§2.4); goldennoise stores shards instead (``docs/npd_format.md``):

* ``<dataset>/shards/shard-<k>.safetensors`` holds a fixed, contiguous block of the collection's (prompt, seed)
  index: tensors ``noise`` and ``target`` (n, C, h, w), ``seed`` and ``index`` (n,) int64; its header metadata holds
  the per-sample records (index, seed, prompt, prompt_id, scores ``{name: [random, golden]}``), the backbone id
  and the collection-config hash. A shard is one file written to a temporary name and renamed (atomic on POSIX),
  so a killed run never leaves a partial shard, and a shard is either absent or complete.
* ``<dataset>/index.parquet``: every record flattened (one row per pair, ``score/<name>/random|golden`` columns),
  written when a collection finishes, for inspection with pandas; loaders read the shard headers.

Every pair is stored; the margin filter (``docs/npnet.md`` §2.3) is applied at load time.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT = "goldennoise-npd/1"
SHARD_DIR = "shards"
TMP_SUFFIX = ".tmp"


class NPDShardError(ValueError):
    """A shard is corrupt, truncated or not an NPD shard; the message names the file."""


@dataclass
class Shard:
    """One shard's header: where it is and what it holds.

    Attributes:
        path: the shard file.
        records: one dict per sample, in row order.
        backbone: backbone id the pairs were collected with.
        config_hash: hash of the collection config.
    """

    path: Path
    records: list[dict]
    backbone: str
    config_hash: str

    def __len__(self) -> int:
        return len(self.records)


def shard_dir(dataset: str | Path) -> Path:
    """The folder holding a dataset's shards."""
    return Path(dataset) / SHARD_DIR


def shard_path(dataset: str | Path, shard_id: int) -> Path:
    """The file of shard ``shard_id`` (a name that does not depend on the rank that writes it)."""
    return shard_dir(dataset) / f"shard-{shard_id:06d}.safetensors"


def write_shard(path: str | Path, tensors: dict[str, torch.Tensor], records: list[dict], backbone: str,
                config_hash: str) -> Path:
    """Write a shard atomically: to ``<path>.<pid>.tmp``, flushed to disk, then renamed onto ``path``.

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
    tmp = path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
    save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)  # readable like any other data file (the writer's temporary is private)
    os.replace(tmp, path)
    return path


def remove_stale_temporaries(dataset: str | Path) -> int:
    """Delete temporary shard files left by killed runs; returns how many were removed."""
    folder = shard_dir(dataset)
    stale = list(folder.glob(f"*{TMP_SUFFIX}")) if folder.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def _check_size(path: Path) -> None:
    """Check that the file is as long as its safetensors header says (catches truncation without reading data)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise NPDShardError(f"NPD shard {path} is truncated ({size} bytes, no safetensors header).")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise NPDShardError(f"NPD shard {path} is truncated inside its header ({size} bytes).")
        try:
            header = json.loads(handle.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise NPDShardError(f"NPD shard {path} is corrupt: its header is not valid JSON.") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end != size:
        raise NPDShardError(f"NPD shard {path} is truncated or corrupt: {size} bytes where its header "
                            f"describes {8 + header_len + end}.")


def read_shard_header(path: str | Path) -> Shard:
    """Read and validate a shard's header (not its tensors).

    Raises:
        NPDShardError: the file is truncated, corrupt or not an NPD shard (the message names it).
    """
    path = Path(path)
    _check_size(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta, keys = handle.metadata() or {}, set(handle.keys())
            rows = handle.get_slice("noise").get_shape()[0] if "noise" in keys else -1
    except Exception as err:  # safetensors raises SafetensorError for any malformed file
        raise NPDShardError(f"NPD shard {path} cannot be read ({err}).") from None
    if meta.get("format") != FORMAT or not {"noise", "target", "seed", "index"} <= keys:
        raise NPDShardError(f"{path} is not an NPD shard (format {meta.get('format')!r}, tensors {sorted(keys)}).")
    records = json.loads(meta["records"])
    if len(records) != rows:
        raise NPDShardError(f"NPD shard {path} is corrupt: {len(records)} records for {rows} rows.")
    return Shard(path, records, meta["backbone"], meta["config_hash"])


def iter_shards(dataset: str | Path, on_bad: str = "error") -> Iterator[Shard]:
    """The valid shards of a dataset, in name order.

    Args:
        dataset: the dataset folder.
        on_bad: ``"error"`` raises :class:`NPDShardError` on the first bad shard; ``"skip"`` warns and goes on.
    """
    if on_bad not in ("error", "skip"):
        raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}.")
    for path in sorted(shard_dir(dataset).glob("shard-*.safetensors")):
        try:
            yield read_shard_header(path)
        except NPDShardError as err:
            if on_bad == "error":
                raise
            warnings.warn(f"Skipping a bad shard: {err}", stacklevel=2)


def load_shard_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of one shard (small: one shard, not the dataset)."""
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}


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
    tmp = path.with_name(f"index.parquet.{os.getpid()}{TMP_SUFFIX}")
    pq.write_table(pa.Table.from_pylist(flat_records(shards)), tmp)
    os.replace(tmp, path)
    return path
