"""Settings of an NPD collection run and the (prompt, seed) index they define.

The defaults follow ``docs/npnet.md`` §2.2: N = 10 DDIM steps (goldennoise's choice; the official flag says 50 but
its files say 10), ω_l = 5.5, ω_w = 1.0, ``T_max = 1``, the official inversion-timestep convention, fp16 CPU
noise per seed, HPSv2 v2.1 scores, and a margin m = 0 (strict) for the summary's kept fraction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from goldennoise.backbones import parse_dtype
from goldennoise.backbones.cost import evaluations_per_step
from goldennoise.checks import check_finite, check_int, check_prompts
from goldennoise.data.prompt_sources import SHAPES_PREFIX, PromptList, load_prompts, parse_shapes_source
from goldennoise.metrics.registry import METRICS
from goldennoise.sampling import paired_items, parse_seeds, seed_spec


@dataclass
class ScorerSpec:
    """One score computed for both images of every pair.

    Args:
        metric: one of ``hpsv2``, ``pickscore``, ``image_reward``, ``aesthetic``, ``clip_score`` or
            ``shapes_alignment`` (the embedded backbone's exact alignment metric).
        name: column name in the dataset; default: ``metric``.
        model: weights (hub id, URL or path; ``None`` = the metric's official weights); ``"tiny"`` builds the
            random-weight tiny scorer of :mod:`goldennoise.metrics.tiny` (tests, smoke runs).
        version: HPSv2 version (``v2.1`` in the official collection).
    """

    metric: str = "hpsv2"
    name: str | None = None
    model: str | None = None
    version: str = "v2.1"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"Unknown metric {self.metric!r}; choose one of {sorted(METRICS)}.")

    @property
    def column(self) -> str:
        """The score's name in the dataset."""
        return self.name or self.metric


@dataclass
class CollectConfig:
    """An NPD collection: re-denoise sampling (docs/npnet.md §2.2) over prompts × seeds, scored, in atomic shards.

    Every setting is checked at construction, so a bad one fails before any model is loaded or file written.

    Args:
        output_dir: dataset folder (shards, index, embedding cache, summary); a rerun resumes it.
        backbone: built-in name (``tiny-sd``, ``tiny-sdxl``, ``shapes``), hub id or diffusers folder.
        backbone_dtype: backbone weight dtype (``float16`` as the official SDXL collection, ``float32``, ``bf16``).
        image_size: image side in pixels; default: the backbone's native size.
        prompts: prompts given inline (used when ``prompt_source`` is unset).
        prompt_source: a prompt file (txt/csv/jsonl/parquet), named set, ``shapes:<split>[:<count>]`` or hub id.
        prompt_column: prompt column of tabular sources.
        prompt_split: dataset split of hub sources.
        max_prompts: keep only the first prompts.
        seeds: seed list such as ``"0-3"`` (an integer: one seed) paired with every prompt; ``null`` uses the
            source's per-prompt seeds (the official ``train_60000.json`` style: one seed per prompt).
        num_steps: DDIM steps N, at least 2 (docs/npnet.md §2.2: ambiguous in the official code; 10 here).
        denoise_guidance: ω_l, CFG of the denoising move and of both images (official 5.5).
        inversion_guidance: ω_w, CFG of the inversion move (official 1.0: conditional only).
        convention: ``official`` (ᾱ[t1−Δ] → ᾱ[t1], NPD parity) or ``textbook`` (ᾱ[t1] → ᾱ[t0]) inversion levels.
        repeats: re-denoise repetitions (official ``T_max = 1``).
        noise_dtype: dtype the per-seed CPU noise is drawn in (``float16`` reproduces the official noise).
        storage_dtype: dtype of the stored noises (official: ``float16``).
        batch_size: pairs per batch (both images of a batch are sampled together, 2·batch_size latents).
        shard_size: pairs per shard file; the unit of crash recovery.
        scorers: scores computed for both images (default HPSv2 v2.1).
        filter_metric: score the summary's kept fraction uses; default: the first scorer.
        margin: m of the summary's filter (keep iff golden − random > m; official m = 0).
        cache_embeddings: also write the prompt-embedding cache the NoisePairDataModule reads.
        accelerator: Lightning Fabric accelerator (``auto``, ``cpu``, ``cuda``, ...).
        devices: processes (ranks); each takes every ``devices``-th shard and writes its own shards.
        strategy: Fabric strategy; ``auto`` spawns ``devices`` processes (gloo on CPU) or joins torchrun's.
        progress: show a progress bar (pairs/s and ETA) on rank 0.
        mlflow_tracking_uri: log the summary to MLflow there (e.g. ``sqlite:///mlruns.db``); ``null`` skips it.
        mlflow_experiment: MLflow experiment name.
    """

    output_dir: str = "data/npd"
    backbone: str = "tiny-sdxl"
    backbone_dtype: str = "float32"
    image_size: int | None = None
    prompts: list[str] | None = None
    prompt_source: str | None = None
    prompt_column: str | None = None
    prompt_split: str | None = None
    max_prompts: int | None = None
    seeds: str | int | None = "0"
    num_steps: int = 10
    denoise_guidance: float = 5.5
    inversion_guidance: float = 1.0
    convention: Literal["official", "textbook"] = "official"
    repeats: int = 1
    noise_dtype: str = "float16"
    storage_dtype: str = "float16"
    batch_size: int = 8
    shard_size: int = 256
    scorers: list[ScorerSpec] = field(default_factory=lambda: [ScorerSpec()])
    filter_metric: str | None = None
    margin: float = 0.0
    cache_embeddings: bool = True
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    progress: bool = True
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "goldennoise-npd"

    def __post_init__(self) -> None:
        self.scorers = [s if isinstance(s, ScorerSpec) else ScorerSpec(**s) for s in self.scorers]
        self._check_prompts_and_seeds()
        self._check_sampling()
        self._check_execution()

    def _check_prompts_and_seeds(self) -> None:
        if self.prompts:
            check_prompts("prompts", self.prompts)
        if self.prompt_source is not None and self.prompt_source.startswith(SHAPES_PREFIX):
            parse_shapes_source(self.prompt_source)
        if self.max_prompts is not None:
            check_int("max_prompts", self.max_prompts, minimum=1)
        if self.seeds is not None:
            self.seeds = seed_spec(self.seeds)

    def _check_sampling(self) -> None:
        check_int("num_steps", self.num_steps, minimum=2)  # the re-denoise step moves between the first two levels
        check_int("repeats", self.repeats, minimum=1)
        for name in ("denoise_guidance", "inversion_guidance", "margin"):
            check_finite(name, getattr(self, name))
        if self.convention not in ("official", "textbook"):
            raise ValueError(f"convention must be 'official' or 'textbook', got {self.convention!r}.")
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
        if not self.scorers:
            raise ValueError("A collection needs at least one scorer (the filter compares scores).")
        columns = [s.column for s in self.scorers]
        if self.filter_metric is not None and self.filter_metric not in columns:
            raise ValueError(f"filter_metric {self.filter_metric!r} is none of the scorers' columns {columns}.")

    @property
    def filter_column(self) -> str:
        """The score the summary's margin filter reads."""
        return self.filter_metric or self.scorers[0].column


CONTENT_FIELDS = ("backbone", "backbone_dtype", "image_size", "num_steps", "denoise_guidance", "inversion_guidance",
                  "convention", "repeats", "noise_dtype", "storage_dtype", "batch_size", "shard_size", "scorers")
"""Settings that change what a shard contains; their hash (with the index) names the collection."""


def prompt_list(config: CollectConfig) -> PromptList:
    """The prompts (and source seeds) of a run."""
    if config.prompt_source is not None:
        return load_prompts(config.prompt_source, config.prompt_column, config.prompt_split, config.max_prompts)
    if not config.prompts:
        raise ValueError("Give prompts or a prompt_source.")
    return PromptList(list(config.prompts)).head(config.max_prompts)


def build_items(config: CollectConfig, distinct_seeds: bool = False) -> list[tuple[int, str, int]]:
    """The collection index: ``(prompt_id, prompt, seed)`` for pair ``i``, prompt-major (prompts × seeds).

    With ``distinct_seeds`` every prompt gets its own seeds (:func:`~goldennoise.sampling.paired_items`).
    """
    source = prompt_list(config)
    if config.seeds is not None:
        return paired_items(source.prompts, parse_seeds(config.seeds), distinct_seeds)
    if source.seeds is None:
        raise ValueError("seeds is null but the prompt source gives no per-prompt seeds; set seeds, e.g. '0-3'.")
    return [(p, prompt, s) for p, (prompt, s) in enumerate(zip(source.prompts, source.seeds, strict=True))]


def config_hash(config: CollectConfig, items: list[tuple[int, str, int]]) -> str:
    """SHA-256 (16 hex digits) of the content settings and the index: equal hashes mean equal datasets."""
    settings = {k: v for k, v in asdict(config).items() if k in CONTENT_FIELDS}
    payload = json.dumps({"settings": settings, "items": items}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def unet_evals_per_pair(config: CollectConfig) -> int:
    """Per-sample UNet evaluations of one pair: the re-denoise step plus two N-step guided samplings."""
    denoise, invert = evaluations_per_step(config.denoise_guidance), evaluations_per_step(config.inversion_guidance)
    return config.repeats * (denoise + invert) + 2 * config.num_steps * denoise
