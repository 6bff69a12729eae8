"""Reading checkpoint and weight files (``.safetensors``, ``.pth``, ``.bin``, ``.ckpt``), and writing safetensors.

Every reader of such files goes through :func:`naming_checkpoint`, so a truncated or corrupt file fails with a
:class:`~goldennoise.errors.CheckpointError` that names it instead of torch's "failed finding central directory" or a
bare safetensors header error. :func:`save_atomic` writes a ``.safetensors`` file that is never seen
half-written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from goldennoise.errors import CheckpointError, MissingWeightsError

TMP_SUFFIX = ".tmp"
"""Suffix of a writer's private temporary file (:func:`temporary_path`)."""


@contextmanager
def naming_checkpoint(path: str | PathLike | None, keep: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Turn any failure to read ``path`` inside the block into a :class:`CheckpointError` naming the file.

    Args:
        path: the file read inside the block; ``None`` (no file) changes nothing.
        keep: further error types that pass through unchanged (besides :class:`MissingWeightsError` and
            :class:`CheckpointError`), for blocks that do more than read the file.
    """
    try:
        yield
    except (MissingWeightsError, CheckpointError, *keep):
        raise
    except Exception as err:  # torch, pickle, zipfile and safetensors each raise their own types for a bad file
        if path is None:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"Cannot read the checkpoint '{path}' (truncated, corrupt or not a checkpoint: "
                              f"{first}); download or export it again.") from err


def read_tensor_file(path: str | PathLike) -> dict:
    """The content of a ``.safetensors`` file (a flat tensor dict) or a torch file (``weights_only``), on the CPU.

    Raises:
        MissingWeightsError: there is no file at ``path``.
        CheckpointError: the file cannot be read; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"No checkpoint file at '{path}'.")
    with naming_checkpoint(path):
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)


def temporary_path(path: Path) -> Path:
    """The writer's private temporary name for ``path`` (``<name>.<pid>.tmp``)."""
    return path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")


def save_atomic(path: str | Path, tensors: Mapping[str, torch.Tensor],
                metadata: Mapping[str, str] | None = None) -> Path:
    """Write a safetensors file to a temporary name, flush it to disk, then rename it onto ``path`` (mode 0644).

    Never seen half-written (the rename is atomic on POSIX); readable by others like any data file, where
    safetensors alone writes it owner-only.
    """
    path = Path(path)
    tmp = temporary_path(path)
    save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=dict(metadata or {}))
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)  # readable like any other data file (the writer's temporary is private)
    os.replace(tmp, path)
    return path
