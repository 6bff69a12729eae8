"""Ask the Hugging Face hub once before fetching, so an unreachable hub fails in one sentence instead of minutes.

huggingface_hub retries a file it has no copy of: when the first request times out it tries again with a 60 s
timeout and five retries with backoff, minutes against a host that accepts connections and never answers. Before a
file that is not cached is fetched, :func:`probe` sends one request with the hub's metadata timeout
(``HF_HUB_ETAG_TIMEOUT``, default 10 s) and no retry; any answer, even an error status, means the hub is reachable
and the download may go on.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from huggingface_hub import constants as hub_constants
from huggingface_hub import get_hf_file_metadata, try_to_load_from_cache
from huggingface_hub.errors import HfHubHTTPError

from goldennoise.errors import MissingWeightsError


def timeout_s() -> float:
    """Seconds one request may wait for the network: ``HF_HUB_ETAG_TIMEOUT`` (huggingface_hub's default 10)."""
    return float(hub_constants.HF_HUB_ETAG_TIMEOUT)


def endpoint() -> str:
    """The hub address huggingface_hub uses (``HF_ENDPOINT``, default https://huggingface.co)."""
    return hub_constants.ENDPOINT


def is_hub_id(name: str | os.PathLike) -> bool:
    """True for ``owner/name`` strings that are not local paths."""
    text = str(name)
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).expanduser().exists()


def cached_file(repo_id: str, filename: str) -> Path | None:
    """The cached copy of ``filename`` of hub repo ``repo_id`` (main revision), or ``None`` (also for invalid ids)."""
    try:
        found = try_to_load_from_cache(repo_id, filename)
    except ValueError:  # not a valid repo id: nothing cached under it
        return None
    return Path(found) if isinstance(found, str) else None


def cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of hub repo ``repo_id`` (main revision, the one holding its ``model_index.json``)."""
    found = cached_file(repo_id, "model_index.json")
    return found.parent if found is not None else None


def unreachable_reason(repo_id: str, filename: str) -> str | None:
    """``None`` if the hub answers one request for the file within :func:`timeout_s`, else why not (one word)."""
    url = f"{endpoint()}/{repo_id}/resolve/main/{quote(filename)}"
    try:
        get_hf_file_metadata(url, timeout=timeout_s())
    except HfHubHTTPError:  # the hub answered (404, 401, ...): reachable; the download reports what it said
        return None
    except Exception as err:  # timeouts and connection errors are the HTTP library's own types, not OSError
        return type(err).__name__
    return None


def probe(repo_id: str, filename: str, what: str, remedy: str) -> None:
    """Raise :class:`MissingWeightsError` at once if ``filename`` of ``repo_id`` is not cached and the hub is silent.

    Nothing happens offline (``HF_HUB_OFFLINE=1``: the loader fails fast by itself) or when the file is cached.

    Args:
        repo_id: hub repository, ``owner/name``.
        filename: a file the repository must have (the one asked for, or ``config.json`` of a model folder).
        what: the subject of the error sentence, e.g. ``"'model.pt' of hub repo 'owner/name'"``.
        remedy: how to do without the hub, the end of the sentence, e.g. ``"pass a local path"``.
    """
    if hub_constants.HF_HUB_OFFLINE or cached_file(repo_id, filename) is not None:
        return
    reason = unreachable_reason(repo_id, filename)
    if reason is not None:
        raise MissingWeightsError(
            f"{what} is not in the Hugging Face cache and the hub at {endpoint()} did not answer within "
            f"{timeout_s():g} s ({reason}); check the network (or HF_ENDPOINT), or {remedy}.")
