"""Checked safetensors files: a content hash of tensors and metadata, the checks that use it, atomic JSON writes.

Files are written atomically (:func:`goldennoise.tensor_files.save_atomic`, :func:`write_json_atomic`: temporary
name, flushed, renamed), so never seen half-written, and a safetensors file's content
hash (SHA-256 over the metadata strings and each tensor's name, dtype, shape and bytes) lets a reader tell an intact
file from a truncated, bit-flipped or hand-edited one. The hash depends on the tensors, not on the file's byte
layout, so it is computed once from the tensors being written and checked against the tensors read back.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open

from goldennoise.tensor_files import temporary_path


class CorruptFileError(ValueError):
    """A data file is truncated, corrupt or changed after it was written; the message names the file."""


def content_hash(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """SHA-256 (hex) of ``metadata`` and of each tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256(json.dumps(dict(metadata), sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"\n{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def check_length(path: Path, what: str, error: type[CorruptFileError] = CorruptFileError) -> None:
    """Check that a safetensors file is as long as its header says (catches truncation without reading data).

    Args:
        path: the file.
        what: how messages name it (e.g. ``"NPD shard"``).
        error: the exception raised.
    """
    if not path.is_file():
        raise error(f"{what} {path} is missing.")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise error(f"{what} {path} is truncated ({size} bytes, no safetensors header).")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise error(f"{what} {path} is truncated inside its header ({size} bytes).")
        try:
            header = json.loads(handle.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise error(f"{what} {path} is corrupt: its header is not valid JSON.") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end != size:
        raise error(f"{what} {path} is truncated or corrupt: {size} bytes where its header describes "
                    f"{8 + header_len + end}.")


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (one file's worth of memory)."""
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}


def verify_hash(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str], expected: str | None,
                what: str, error: type[CorruptFileError] = CorruptFileError) -> None:
    """Raise ``error`` naming ``path`` unless the content hash of ``tensors`` and ``metadata`` is ``expected``."""
    if expected is None:
        raise error(f"{what} {path} is corrupt: it has no content hash.")
    if content_hash(tensors, metadata) != expected:
        raise error(f"{what} {path} is corrupt: its content does not match the hash written with it "
                    "(changed on disk after it was written).")


def write_json_atomic(path: str | Path, value: object) -> Path:
    """Write ``value`` as JSON to a temporary name, then rename it onto ``path``."""
    path = Path(path)
    tmp = temporary_path(path)
    tmp.write_text(json.dumps(value, indent=1, default=str))
    os.replace(tmp, path)
    return path
