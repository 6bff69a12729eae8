"""Cached text embeddings for the noise prompt dataset: each unique prompt encoded once, stored, looked up per sample.

NPNet conditions on the backbone's own per-token prompt embedding (``docs/npnet.md`` §1.2: SDXL
``[77, 2048]``). The official training encodes on the fly and only ``prompt[0]`` of each batch (§4.1, item 1); here
every unique prompt is encoded once by the frozen text encoders (``Backbone.encode_prompt(...)[0].embeds``) and
stored under ``<dataset>/prompt_embeds/<backbone>/`` in parts of ``part_size`` prompts (``embeds`` (n, L, D),
float16 by default: ≈308 KiB per SDXL prompt), with a ``manifest.json`` written last. Lookups memory-map one row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

EMBED_DIR = "prompt_embeds"


def cache_dir(dataset: str | Path, backbone: str) -> Path:
    """The cache folder of ``backbone``'s embeddings inside a dataset (``/`` in hub ids becomes ``--``)."""
    return Path(dataset) / EMBED_DIR / backbone.strip("/").replace("/", "--")


def cached_backbones(dataset: str | Path) -> list[str]:
    """Backbone folder names that have a complete cache in ``dataset``."""
    root = Path(dataset) / EMBED_DIR
    return sorted(p.parent.name for p in root.glob("*/manifest.json")) if root.is_dir() else []


def _atomic_json(path: Path, value: object) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


@torch.inference_mode()
def build_embedding_cache(dataset: str | Path, backbone_name: str, backbone, prompts: Sequence[str],
                          batch_size: int = 32, part_size: int = 1024,
                          dtype: torch.dtype = torch.float16) -> Path:
    """Encode each unique prompt once and store the embeddings.

    Args:
        dataset: the dataset folder.
        backbone_name: id the cache is filed under.
        backbone: a :class:`~goldennoise.backbones.Backbone` (its ``encode_prompt`` gives ``cond.embeds``).
        prompts: the prompts to cache (duplicates are encoded once).
        batch_size: prompts per text-encoder call.
        part_size: prompts per stored part file.
        dtype: storage dtype.

    Returns:
        The cache folder.
    """
    unique = list(dict.fromkeys(prompts))
    folder = cache_dir(dataset, backbone_name)
    folder.mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, len(unique), part_size)):
        chunk = unique[start:start + part_size]
        embeds = torch.cat([backbone.encode_prompt(chunk[i:i + batch_size])[0].embeds.to("cpu", dtype)
                            for i in range(0, len(chunk), batch_size)])  # (n, L, D)
        tmp = folder / f"part-{part:05d}.safetensors.{os.getpid()}.tmp"
        save_file({"embeds": embeds.contiguous()}, str(tmp))
        os.replace(tmp, folder / f"part-{part:05d}.safetensors")
    _atomic_json(folder / "manifest.json", {"prompts": unique, "part_size": part_size})
    return folder


class EmbeddingCache:
    """Read-only, memory-mapped lookups of cached prompt embeddings.

    Args:
        folder: a cache folder written by :func:`build_embedding_cache`.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        manifest = json.loads((self.folder / "manifest.json").read_text())
        self.part_size = int(manifest["part_size"])
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
            self._handles[part] = safe_open(str(self.folder / f"part-{part:05d}.safetensors"), framework="pt")
        return self._handles[part]

    def get(self, prompt: str) -> torch.Tensor:
        """The float32 embedding (L, D) of one prompt."""
        row = self.rows[prompt]
        part, offset = divmod(row, self.part_size)
        return self._handle(part).get_slice("embeds")[offset:offset + 1][0].float()
