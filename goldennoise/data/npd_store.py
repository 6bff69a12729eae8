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

import os
from collections.abc import Iterator
from pathlib import Path

import torch

from goldennoise.data import shards
from goldennoise.data.shards import (
    Shard,
    ShardError,
    ShardFormat,
    load_shard_tensors,
    remove_stale_temporaries,
    shard_dir,
    shard_files,
    shard_path,
)
from goldennoise.tensor_files import temporary_path

__all__ = ["NPD_FORMAT", "NPDShardError", "Shard", "flat_records", "iter_shards", "load_shard_tensors",
           "manifest_shard_ids", "read_manifest", "read_shard", "remove_stale_temporaries", "shard_dir",
           "shard_files", "shard_path", "write_index", "write_manifest", "write_shard"]


class NPDShardError(ShardError):
    """An NPD shard, or the manifest listing them, is missing, corrupt, truncated or not NPD data; names the file."""


NPD_FORMAT = ShardFormat(name="goldennoise-npd/2", label="NPD shard", manifest="collection.json",
                         count_key="num_pairs", unit="pairs", tensors=frozenset({"noise", "target", "seed", "index"}),
                         row_tensor="noise", legacy=("goldennoise-npd/1",), error=NPDShardError)
"""The NPD's shards: ``noise``, ``target``, ``seed``, ``index`` with one row per pair, ``collection.json``."""


def write_shard(path: str | Path, tensors: dict[str, torch.Tensor], records: list[dict], backbone: str,
                config_hash: str) -> Path:
    """Write an NPD shard atomically, with its content hash (:func:`goldennoise.data.shards.write_shard`).

    Args:
        path: the final shard file.
        tensors: ``noise``, ``target`` (n, C, h, w); ``seed``, ``index`` (n,) int64.
        records: n per-sample dicts (JSON-serialisable).
        backbone: backbone id.
        config_hash: collection-config hash.
    """
    return shards.write_shard(NPD_FORMAT, path, tensors, records, config_hash, {"backbone": backbone})


def read_shard(path: str | Path, verify: bool = True) -> Shard:
    """Read an NPD shard's header, checking its content hash with ``verify`` (see :func:`.shards.read_shard`).

    Raises:
        NPDShardError: the file is truncated, corrupt, changed since it was written or not an NPD shard.
    """
    return shards.read_shard(NPD_FORMAT, path, verify)


def iter_shards(dataset: str | Path, on_bad: str = "error", verify: bool = True) -> Iterator[Shard]:
    """The valid shards of an NPD, checked against its ``collection.json`` (see :func:`.shards.iter_shards`)."""
    return shards.iter_shards(NPD_FORMAT, dataset, on_bad, verify)


def write_manifest(dataset: str | Path, config_hash: str, num_pairs: int, config: dict) -> Path:
    """Write ``collection.json``: what the dataset holds when complete (``config`` must give ``shard_size``)."""
    return shards.write_manifest(NPD_FORMAT, dataset, config_hash, num_pairs, config)


def read_manifest(dataset: str | Path) -> dict | None:
    """The dataset's ``collection.json`` (``None`` when it has none); a corrupt one raises :class:`NPDShardError`."""
    return shards.read_manifest(NPD_FORMAT, dataset)


def manifest_shard_ids(manifest: dict) -> range:
    """Ids of the shards a complete collection holds."""
    return shards.manifest_shard_ids(NPD_FORMAT, manifest)


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
