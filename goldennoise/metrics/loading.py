"""Find scorer weight files (hub id, URL or local path) and share loaded scorers within one process.

Nothing here downloads at import. A weight file that cannot be found becomes a
:class:`~goldennoise.errors.MissingWeightsError` with one sentence naming the file and how to get it, so an offline
machine fails fast, and a machine whose network does not answer fails within one request's timeout
(:func:`goldennoise.hub.timeout_s`) instead of retrying for minutes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import hf_hub_download

from goldennoise import hub
from goldennoise.errors import MissingWeightsError
from goldennoise.tensor_files import read_tensor_file

M = TypeVar("M", bound=torch.nn.Module)
T = TypeVar("T")

_SHARED: dict[Hashable, torch.nn.Module] = {}
"""Loaded scorers by key, kept until :func:`release` (functional calls would otherwise reload every time)."""


def shared(key: Hashable, build: Callable[[], M]) -> M:
    """The module cached under ``key``, built by ``build()`` the first time (or after every holder let go).

    Two metrics asking for the same backbone weights (e.g. ``val/hpsv2`` and ``test/hpsv2``, or AES and CLIPScore on
    the same CLIP) get the same module instead of loading it twice.
    """
    if key not in _SHARED:
        _SHARED[key] = build()
    return _SHARED[key]


def release(key: Hashable | None = None) -> None:
    """Forget the shared scorer under ``key`` (all of them for ``None``) so its memory can be freed."""
    if key is None:
        _SHARED.clear()
    else:
        _SHARED.pop(key, None)


def cache_dir() -> Path:
    """Where files fetched from a URL are kept: ``$GOLDENNOISE_CACHE`` or ``~/.cache/goldennoise``."""
    return Path(os.environ.get("GOLDENNOISE_CACHE", Path.home() / ".cache" / "goldennoise")).expanduser()


def is_url(source: str) -> bool:
    """True for ``http://`` and ``https://`` addresses."""
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def split_hub_source(source: str, default_filename: str) -> tuple[str, str]:
    """``"owner/repo"`` → (repo, default file); ``"owner/repo/sub/file.pt"`` → (``"owner/repo"``, ``"sub/file.pt"``)."""
    parts = source.strip("/").split("/")
    return "/".join(parts[:2]), "/".join(parts[2:]) or default_filename


def _fetch_url(url: str) -> Path:
    target = cache_dir() / "url" / Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if target.is_file():
        return target
    if hub_constants.HF_HUB_OFFLINE:
        raise MissingWeightsError(f"'{target.name}' is not in {target.parent} and downloads are off "
                                  f"(HF_HUB_OFFLINE=1); download {url} there where the network is reachable, "
                                  f"or pass a local path.")
    try:
        _download(url, target)
    except (urllib.error.URLError, OSError) as err:  # timeouts included (TimeoutError is an OSError)
        reason = getattr(err, "reason", None) or err
        raise MissingWeightsError(f"Could not download '{target.name}' from {url} ({reason}); download it by hand and "
                                  f"pass its local path.") from err
    return target


def _download(url: str, target: Path) -> None:
    """Fetch ``url`` into ``target`` atomically; each connect or read waits at most :func:`hub.timeout_s`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as part:
        try:
            with urllib.request.urlopen(url, timeout=hub.timeout_s()) as response:
                shutil.copyfileobj(response, part)
        except BaseException:
            Path(part.name).unlink()
            raise
    os.replace(part.name, target)


def _fetch_hub(source: str, default_filename: str) -> Path:
    repo_id, filename = split_hub_source(source, default_filename)
    what = f"'{filename}' of hub repo '{repo_id}'"
    cached = hub.cached_file(repo_id, filename)
    if cached is not None:
        return cached
    if hub_constants.HF_HUB_OFFLINE:
        raise MissingWeightsError(f"{what} is not in the Hugging Face cache and the hub is offline "
                                  f"(HF_HUB_OFFLINE=1); run `hf download {repo_id} {filename}` where it is reachable, "
                                  "or pass a local path.")
    hub.probe(repo_id, filename, what, "pass a local path")
    try:
        return Path(hf_hub_download(repo_id, filename))
    except (OSError, ValueError) as err:  # 404s, gated repos and bad ids all derive from these
        raise MissingWeightsError(f"{what} could not be downloaded ({type(err).__name__}); check the id and your "
                                  f"access to it, or pass a local path.") from err


def resolve_file(source: str | os.PathLike, default_filename: str) -> Path:
    """A local path to a single weight file given as a local path, a URL or a hub id.

    Args:
        source: an existing file; an ``http(s)://`` URL (kept under :func:`cache_dir`); or a hub id ``owner/repo``
            (file ``default_filename``) or ``owner/repo/path/in/repo.pt`` (fetched into the Hugging Face cache).
        default_filename: the file to take from a hub repo given without a path.

    Raises:
        MissingWeightsError: the file is not there and cannot be fetched; the message says how to get it.
    """
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if is_url(text):
        return _fetch_url(text)
    looks_local = path.suffix in (".pt", ".pth", ".bin", ".safetensors", ".json") and text.count("/") < 2
    if text.startswith((".", "/", "~")) or looks_local:
        raise MissingWeightsError(f"No weight file at '{text}'; pass an existing file, a URL or a hub id such as "
                                  f"'owner/repo' (file '{default_filename}').")
    return _fetch_hub(text, default_filename)


def load_state_dict(path: Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pt`` / ``.pth`` / ``.safetensors`` file, optionally the entry ``key`` of a wrapping dict.

    Raises:
        CheckpointError: the file is truncated or corrupt; the message names it.
    """
    checkpoint = read_tensor_file(path)
    return checkpoint[key] if key is not None and key in checkpoint else checkpoint


def load_pretrained(load: Callable[[str], T], name: str, what: str, probe_file: str = "config.json") -> T:
    """``load(name)`` for a ``from_pretrained`` folder or hub id, with one-sentence errors.

    A hub id that is not cached is probed first (:func:`goldennoise.hub.probe`), so a silent network fails at once.

    Args:
        load: e.g. ``CLIPModel.from_pretrained``.
        name: local folder or hub id.
        what: what is loaded, for the error (``"CLIP model"``).
        probe_file: a file every such folder has (``config.json``, ``preprocessor_config.json``, ``vocab.txt``).

    Raises:
        MissingWeightsError: the folder or hub id cannot be loaded; the message says how to get it.
    """
    if hub.is_hub_id(name):
        hub.probe(name, probe_file, f"The {what} '{name}'", "pass a folder written by save_pretrained")
    try:
        return load(name)
    except OSError as err:
        raise pretrained_error(name, what, err) from err


def pretrained_error(name: str, what: str, err: Exception) -> MissingWeightsError:
    """One-sentence error for a ``from_pretrained`` folder or hub id that could not be loaded."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if Path(name).expanduser().is_dir():
        return MissingWeightsError(f"'{name}' is not a complete {what} folder ({first}); "
                                   f"re-save it with save_pretrained.")
    how = (f"run `hf download {name}` where the hub is reachable" if hub_constants.HF_HUB_OFFLINE
           else "check the id and the network")
    return MissingWeightsError(f"The {what} '{name}' is neither a local folder nor in the Hugging Face cache; {how}, "
                               f"or pass a folder written by save_pretrained.")
