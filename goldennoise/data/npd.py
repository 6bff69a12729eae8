"""``NoisePairDataModule``: the noise prompt dataset (NPD) that NPNet trains on, loaded lazily from shards.

NPNet (Zhou et al., 2024, arXiv 2411.09502) learns ``x_T → x'_T`` from pairs collected by re-denoise sampling
(``docs/npnet.md`` §2). Pairs are kept only when the golden-noise image beats the random-noise image:
the paper keeps a pair iff ``s0 + m < s0'`` (§2.3); the official code uses m = 0, strict. The filter is applied
here, at load time, so it can change without re-collection.

Contract (with the NPNet LightningModule). Every batch is a dict:

* ``"noise"``: (B, C, h, w) float32, the random source noise x_T;
* ``"target"``: (B, C, h, w) float32, the golden noise x'_T;
* ``"prompt_embeds"``: (B, L, D) float32, the cached ``cond.embeds`` of ``Backbone.encode_prompt`` for each
  sample's *own* prompt (not ``prompt[0]`` of the batch, official bug: docs/npnet.md §4.1); NPD caches hold token
  embeddings only (teacher caches, read by the same dataset class, hold the whole conditioning: text_image.py);
* ``"prompt"``: list[str] of B prompts;
* ``"seed"``: (B,) int64.

Loading never holds the set in RAM: shard headers give the index, tensors are memory-mapped one row at a time
(safetensors), and embeddings come from the per-dataset cache (:mod:`goldennoise.data.npd_embeddings`), built once
in ``prepare_data`` from the ``backbone`` when absent or damaged. With ``collect`` (a collection's settings), the
dataset is collected first when ``path`` does not hold it whole (a partial one is resumed, a complete one reused),
so one ``fit`` command runs the whole chain. Nothing is trusted blindly: the shards are scanned
once per DataModule, each checked against its content hash and against ``collection.json`` (a missing shard is
named), and the cache is verified the same way when it opens (:mod:`goldennoise.data.npd_store`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import safe_open
from torch.utils.data import Dataset

import goldennoise.collection.config as collection  # a module, not its class: the two packages import each other
from goldennoise.data.base import SplitBy, SplitDataModule, check_split, split_indices
from goldennoise.data.npd_embeddings import (
    EmbeddingCache,
    EmbeddingCacheError,
    build_embedding_cache,
    cache_dir,
    cached_backbones,
    is_stale,
    stale_message,
    text_signature,
    usable_cache,
)
from goldennoise.data.npd_store import Shard, iter_shards


def score_names(shards: list[Shard]) -> list[str]:
    """Score names present in the first record of the dataset."""
    return sorted(shards[0].records[0].get("scores", {})) if shards and shards[0].records else []


def keep_pair(record: dict, metric: str, margin: float | None) -> bool:
    """The margin filter: keep iff ``golden − random > margin`` on ``metric`` (``margin=None`` keeps everything)."""
    if margin is None:
        return True
    random, golden = record["scores"][metric]
    return golden - random > margin


class NoisePairDataset(Dataset):
    """Pairs addressed as (shard file, row); tensors are read on access through cached memory maps.

    Args:
        entries: ``(shard path, row, prompt, seed)`` per pair.
        embeddings: the prompt-embedding cache.
        max_open: shard handles kept open per process (least recently used are closed).
    """

    target_key = "target"
    """The stored tensor read beside the noise, under the same key in the batch."""

    def __init__(self, entries: list[tuple[Path, int, str, int]], embeddings: EmbeddingCache, max_open: int = 64):
        self.entries, self.embeddings, self.max_open = entries, embeddings, max_open
        self._handles: OrderedDict[Path, object] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": OrderedDict()}

    def _handle(self, path: Path):
        if path in self._handles:
            self._handles.move_to_end(path)
        else:
            self._handles[path] = safe_open(str(path), framework="pt")
            if len(self._handles) > self.max_open:
                self._handles.popitem(last=False)
        return self._handles[path]

    def __getitem__(self, i: int) -> dict:
        path, row, prompt, seed = self.entries[i]
        handle = self._handle(path)
        return {
            "noise": handle.get_slice("noise")[row:row + 1][0].float(),  # (C, h, w)
            self.target_key: handle.get_slice(self.target_key)[row:row + 1][0].float(),  # (C, h, w)
            **self.embeddings.conditioning(prompt),  # prompt_embeds (L, D); pooled / extras where cached (teacher)
            "prompt": prompt,
            "seed": seed,
        }


def collection_into(config: collection.CollectConfig, path: Path) -> collection.CollectConfig:
    """``config`` writing into ``path``; refuses an ``output_dir`` set to another folder than the default's."""
    default = collection.CollectConfig.__dataclass_fields__["output_dir"].default
    if Path(config.output_dir) not in (path, Path(default)):
        raise ValueError(f"collect.output_dir ({config.output_dir}) is not the dataset's path ({path}); the NPD is "
                         "collected into path: drop collect.output_dir.")
    return replace(config, output_dir=str(path))


class NoisePairDataModule(SplitDataModule):
    """NPD pairs from a dataset folder, margin-filtered and split deterministically (see the module docstring).

    Args:
        path: dataset folder written by ``goldennoise collect`` or
            :func:`~goldennoise.data.npd_official.import_official`.
        metric: score name the margin filter reads (e.g. ``"hpsv2"``); default: the only score stored.
        margin: keep a pair iff golden score − random score > margin (docs/npnet.md §2.3: official m = 0, strict);
            ``None`` keeps every pair.
        val_fraction: share of the pairs (or prompts) held out, drawn before filtering, so the split is stable across
            margins.
        split_by: ``item`` (default: a seeded permutation of the pairs), ``item_hash`` (each pair's side fixed by a
            seeded hash of its prompt and seed, so a dataset grown later never moves a pair across), ``prompt`` or
            ``prompt_hash`` (the same over distinct prompts: validation prompts never appear in training);
            :func:`~goldennoise.data.base.split_indices`.
        split_seed: seed of the split permutation or hash.
        batch_size: pairs per batch (official: 64).
        num_workers: DataLoader workers.
        backbone: backbone whose text encoders give the embeddings (built-in name, hub id or folder); needed only
            when the dataset has no cache for it; default: the dataset's single cache or collection backbone.
        backbone_dtype: weight dtype when the backbone must be loaded to build the cache.
        embed_batch_size: prompts per text-encoder call when building the cache.
        embed_device: device of that one-off encoding pass; default: the current accelerator, else the CPU.
        on_bad_shard: what a bad shard (truncated, corrupt, changed since written: its content hash fails) or a
            shard missing from ``collection.json`` does: ``"error"`` (raise, naming the file) or ``"skip"`` (one
            warning listing them, and the other shards load). Shards are scanned once per DataModule.
        pin_memory: pin batches in page-locked memory.
        collect: collect the dataset into ``path`` when it is not there whole (``goldennoise collect``'s settings;
            ``output_dir`` is ``path``, and an ``output_dir`` set to another folder is refused); ``None``: the
            dataset must exist.

    Raises:
        ValueError: a bad setting, or ``collect.output_dir`` names another folder than ``path``.
    """

    def __init__(
        self,
        path: str,
        metric: str | None = None,
        margin: float | None = 0.0,
        val_fraction: float = 0.1,
        split_by: SplitBy = "item",
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        backbone: str | None = None,
        backbone_dtype: str = "float32",
        embed_batch_size: int = 32,
        embed_device: str | None = None,
        on_bad_shard: str = "error",
        pin_memory: bool = False,
        collect: collection.CollectConfig | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory)
        check_split(split_by, val_fraction)
        self.path, self.metric, self.margin = Path(path), metric, margin
        self.val_fraction, self.split_by, self.split_seed = val_fraction, split_by, split_seed
        self.backbone, self.backbone_dtype, self.embed_batch_size = backbone, backbone_dtype, embed_batch_size
        self.embed_device = embed_device
        self.on_bad_shard = on_bad_shard
        self.collect = None if collect is None else collection_into(collect, self.path)
        self._scanned: list[Shard] | None = None
        self._embeddings: EmbeddingCache | None = None

    # --- index --------------------------------------------------------------------------------------------------

    def _shards(self) -> list[Shard]:
        """The verified shards, scanned on first use (so problems are reported once, not by every hook)."""
        if self._scanned is None:
            if not self.path.is_dir():
                raise FileNotFoundError(f"NPD dataset folder {self.path} does not exist; run `goldennoise collect` "
                                        "first.")
            shards = list(iter_shards(self.path, self.on_bad_shard))
            if not shards:
                raise FileNotFoundError(f"NPD dataset folder {self.path} holds no readable shards.")
            self._scanned = shards
        return self._scanned

    def _embedding_cache(self, shards: list[Shard]) -> EmbeddingCache:
        """The verified embedding cache (opened once).

        Raises:
            EmbeddingCacheError: the cache is missing, damaged (the message names the file) or made from other
                weights than the backbone's now.
        """
        if self._embeddings is None:
            name = self._backbone_name(shards)
            try:
                cache = EmbeddingCache(cache_dir(self.path, name))
            except EmbeddingCacheError as err:
                raise EmbeddingCacheError(f"{err} Run prepare_data() to rebuild it.") from None
            source = text_signature(name)
            if is_stale(cache, source):
                raise EmbeddingCacheError(f"{stale_message(cache, source)} Run prepare_data() to rebuild it.")
            self._embeddings = cache
        return self._embeddings

    def _backbone_name(self, shards: list[Shard]) -> str:
        if self.backbone is not None:
            return self.backbone
        collected, cached = shards[0].backbone, cached_backbones(self.path)
        if len(cached) == 1 and cache_dir(self.path, collected) != cache_dir(self.path, cached[0]):
            return cached[0]  # a cache made with another text encoder than the collection's (e.g. an import)
        return collected

    def _metric(self, shards: list[Shard]) -> str:
        names = score_names(shards)
        if self.metric is not None:
            if self.metric not in names:
                raise ValueError(f"Score {self.metric!r} is not in the dataset {self.path} (scores: {names}).")
            return self.metric
        if self.margin is not None and len(names) != 1:
            raise ValueError(f"The dataset {self.path} stores scores {names}; choose the filter's one with metric=.")
        return names[0] if names else ""

    # --- Lightning hooks ----------------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Collect the dataset if needed, then build the prompt-embedding cache if needed (once, on one process).

        The dataset is collected when ``collect`` is set and ``path`` does not hold that collection whole; the cache
        is built when it is missing, incomplete, damaged or made from other weights than the backbone's now.
        """
        if self.collect is not None:
            self._collect_if_missing()
        shards = self._shards()
        name = self._backbone_name(shards)
        prompts = [r["prompt"] for s in shards for r in s.records]
        folder = cache_dir(self.path, name)
        self._embeddings = usable_cache(folder, prompts, text_signature(name))
        if self._embeddings is not None:
            return
        from goldennoise.backbones import load_backbone

        device = self.embed_device or (torch.accelerator.current_accelerator(check_available=True) or "cpu")
        backbone = load_backbone(name, dtype=self.backbone_dtype, device=device)
        build_embedding_cache(self.path, name, backbone, prompts, batch_size=self.embed_batch_size)

    def _collect_if_missing(self) -> None:
        from goldennoise.collection import collect, is_collected

        if is_collected(self.collect):
            print(f"NPD: reusing the complete collection in {self.path}")
            return
        print(f"NPD: collecting into {self.path} (a rerun resumes it)")
        collect(self.collect)
        self._scanned = None  # index the new shards

    def setup(self, stage: str | None = None) -> None:
        """Index the shards, split all pairs by ``split_by``, then apply the margin filter to each split."""
        shards = self._shards()
        metric = self._metric(shards)
        embeddings = self._embedding_cache(shards)
        pairs = [(s.path, row, r) for s in shards for row, r in enumerate(s.records)]
        missing = embeddings.missing([r["prompt"] for _, _, r in pairs])
        if missing:
            raise RuntimeError(f"The embedding cache of {self.path} lacks {len(missing)} prompts; run prepare_data().")
        val, train = split_indices([r["prompt"] for _, _, r in pairs], [int(r["seed"]) for _, _, r in pairs],
                                   self.split_by, self.val_fraction, self.split_seed)
        self.total_pairs = len(pairs)
        split = {"val": val, "train": train}
        for name, indices in split.items():
            entries = [(pairs[i][0], pairs[i][1], pairs[i][2]["prompt"], int(pairs[i][2]["seed"]))
                       for i in indices if keep_pair(pairs[i][2], metric, self.margin)]
            setattr(self, f"{name}_set", NoisePairDataset(entries, embeddings))
        kept = len(self.train_set) + len(self.val_set)
        self.kept_fraction = kept / len(pairs)

