"""Settings of a NoiseRefine teacher-data run (``python -m goldennoise collect-teacher``).

Defaults follow ``docs/noiserefine.md`` §4: 20 DDIM steps, CFG with the empty prompt as the unconditional input,
PAG off unless ``pag_scale`` > 0 (the paper's Pick-a-Pic subset: CFG 3 + PAG 2 on the mid block), fixed scales with
an option to draw each sample's scales uniformly from ``[scale, scale_max]`` with a generator seeded by the sample's
own seed, so a resumed or re-sharded run gives identical records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from goldennoise.backbones import parse_dtype
from goldennoise.checks import check_finite, check_int, check_prompts
from goldennoise.collection.config import ScorerSpec
from goldennoise.data.prompt_sources import SHAPES_PREFIX, parse_shapes_source
from goldennoise.sampling import seed_spec


@dataclass
class TeacherConfig:
    """A teacher-data run: guided DDIM samples of stored noises over prompts × seeds, scored, optionally filtered.

    Every setting is checked at construction, so a bad one fails before any model is loaded or file written.

    Args:
        output_dir: teacher folder (shards, ``teacher.json``, embedding cache, summary); a rerun resumes it.
        backbone: built-in name (``tiny-sd``, ``tiny-sdxl``, ``shapes``), hub id or diffusers folder.
        backbone_dtype: backbone weight dtype.
        image_size: image side in pixels; default: the backbone's native size.
        prompts: prompts given inline (used when ``prompt_source`` is unset).
        prompt_source: a prompt file (txt/csv/jsonl/parquet), named set, ``shapes:<split>[:<count>]`` or hub id.
        prompt_column: prompt column of tabular sources.
        prompt_split: dataset split of hub sources.
        max_prompts: keep only the first prompts.
        seeds: seed list such as ``"0-3"`` (an integer: one seed) paired with every prompt; ``null`` uses the
            source's per-prompt seeds.
        distinct_seeds: give every prompt its own seeds (the k-th seed of prompt p is ``seeds[k] + p · len(seeds)``),
            so no two records share an x_T, the paper's fresh Gaussian noise per sample; false pairs every prompt
            with the same seeds (then per-sample scale draws repeat across prompts too).
        num_steps: teacher DDIM steps N' (paper: 20).
        guidance_scale: CFG scale w (paper: 7.5 for COCO prompts, 3.0 with PAG for Pick-a-Pic).
        guidance_scale_max: if set, each sample's w is drawn uniformly from ``[guidance_scale, guidance_scale_max]``.
        pag_scale: Perturbed-Attention Guidance scale s (Ahn et al., 2024, arXiv 2403.17377); 0 turns PAG off.
        pag_scale_max: if set, each sample's s is drawn uniformly from ``[pag_scale, pag_scale_max]``.
        pag_layers: self-attention layers PAG perturbs, diffusers' rule (``mid``, ``down.block_1``, a regex).
        noise_dtype: dtype the per-seed CPU noise is drawn in.
        storage_dtype: dtype of the stored noises and latents.
        batch_size: samples per batch.
        shard_size: items per shard file; the unit of crash recovery.
        scorers: scores of each decoded teacher image (any registered metric); may be empty.
        min_score: keep only records whose ``filter_metric`` score is at least this; ``null`` keeps all.
        filter_metric: the score ``min_score`` reads; default: the first scorer.
        cache_embeddings: also write the prompt-embedding cache the TextImagePairDataModule reads.
        accelerator: Lightning Fabric accelerator (``auto``, ``cpu``, ``cuda``, ...).
        devices: processes (ranks); each takes every ``devices``-th shard.
        strategy: Fabric strategy; ``auto`` spawns ``devices`` processes (gloo on CPU) or joins torchrun's.
        progress: show a progress bar (samples/s and ETA) on rank 0.
    """

    output_dir: str = "data/teacher"
    backbone: str = "tiny-sd"
    backbone_dtype: str = "float32"
    image_size: int | None = None
    prompts: list[str] | None = None
    prompt_source: str | None = None
    prompt_column: str | None = None
    prompt_split: str | None = None
    max_prompts: int | None = None
    seeds: str | int | None = "0"
    distinct_seeds: bool = True
    num_steps: int = 20
    guidance_scale: float = 7.5
    guidance_scale_max: float | None = None
    pag_scale: float = 0.0
    pag_scale_max: float | None = None
    pag_layers: list[str] = field(default_factory=lambda: ["mid"])
    noise_dtype: str = "float32"
    storage_dtype: str = "float32"
    batch_size: int = 8
    shard_size: int = 256
    scorers: list[ScorerSpec] = field(default_factory=list)
    min_score: float | None = None
    filter_metric: str | None = None
    cache_embeddings: bool = True
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        self.scorers = [s if isinstance(s, ScorerSpec) else ScorerSpec(**s) for s in self.scorers]
        if self.prompts:
            check_prompts("prompts", self.prompts)
        if self.prompt_source is not None and self.prompt_source.startswith(SHAPES_PREFIX):
            parse_shapes_source(self.prompt_source)
        if self.max_prompts is not None:
            check_int("max_prompts", self.max_prompts, minimum=1)
        if self.seeds is not None:
            self.seeds = seed_spec(self.seeds)
        self._check_guidance()
        self._check_execution()

    def _check_guidance(self) -> None:
        check_int("num_steps", self.num_steps, minimum=1)
        for low, high in (("guidance_scale", "guidance_scale_max"), ("pag_scale", "pag_scale_max")):
            check_finite(low, getattr(self, low))
            if getattr(self, high) is not None and check_finite(high, getattr(self, high)) < getattr(self, low):
                raise ValueError(f"{high}={getattr(self, high)} is below {low}={getattr(self, low)}; the range "
                                 f"[{low}, {high}] runs backwards.")
        if self.pag_scale < 0:
            raise ValueError(f"pag_scale must be >= 0 (0 turns PAG off), got {self.pag_scale}.")
        if self.pag_enabled and not self.pag_layers:
            raise ValueError("PAG needs at least one entry in pag_layers (e.g. 'mid').")
        if self.image_size is not None:
            check_int("image_size", self.image_size, minimum=1)
        for name in ("backbone_dtype", "noise_dtype", "storage_dtype"):
            try:
                parse_dtype(getattr(self, name))
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None

    def _check_execution(self) -> None:
        for name in ("batch_size", "shard_size", "devices"):
            check_int(name, getattr(self, name), minimum=1)
        columns = [s.column for s in self.scorers]
        if len(set(columns)) != len(columns):
            raise ValueError(f"Scorer names must be unique, got {columns}.")
        if self.filter_metric is not None and self.filter_metric not in columns:
            raise ValueError(f"filter_metric {self.filter_metric!r} is none of the scorers' columns {columns}.")
        if self.min_score is not None:
            check_finite("min_score", self.min_score)
            if not columns:
                raise ValueError("min_score filters by a score, but no scorers are configured.")

    @property
    def pag_enabled(self) -> bool:
        """Whether any sample gets Perturbed-Attention Guidance."""
        return self.pag_scale > 0 or (self.pag_scale_max or 0) > 0

    @property
    def filter_column(self) -> str | None:
        """The score ``min_score`` reads (``None`` without scorers)."""
        return self.filter_metric or (self.scorers[0].column if self.scorers else None)


CONTENT_FIELDS = ("backbone", "backbone_dtype", "image_size", "num_steps", "guidance_scale", "guidance_scale_max",
                  "pag_scale", "pag_scale_max", "pag_layers", "noise_dtype", "storage_dtype", "batch_size",
                  "shard_size", "scorers", "min_score", "filter_metric")
"""Settings that change what a shard contains; their hash (with the items) names the run."""


def teacher_hash(config: TeacherConfig, items: list[tuple[int, str, int]]) -> str:
    """SHA-256 (16 hex digits) of the content settings and the items: equal hashes mean equal records."""
    settings = {k: v for k, v in asdict(config).items() if k in CONTENT_FIELDS}
    payload = json.dumps({"settings": settings, "items": items}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
