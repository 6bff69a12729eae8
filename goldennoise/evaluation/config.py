"""Settings of an evaluation: a backbone, prompts × seeds, sampler settings, methods, metrics, output.

Parsed from YAML by ``python -m goldennoise evaluate`` (every field is a flag; ``--print_config`` prints the resolved
config), or built in Python for the Lightning callback, the experiments and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from torchmetrics import Metric

from goldennoise.checks import check_prompts
from goldennoise.data.prompt_sources import PromptList, load_prompts
from goldennoise.evaluation.harness import Item, MethodSpec
from goldennoise.noise.base import SamplerSettings
from goldennoise.sampling import paired_items, parse_seeds, seed_spec

METHOD_NAME = re.compile(r"^[A-Za-z0-9_.\- ]+$")


@dataclass
class EvaluateConfig:
    """One evaluation: every method on the same prompts × seeds, scored by the same metrics.

    Args:
        name: the evaluation's name: its MLflow experiment and default output folder.
        output_dir: folder of the per-sample shards, table, grid and summary; default ``runs/eval/<name>``; a rerun
            resumes it.
        backbone: built-in name (``shapes``, ``tiny-sd``, ...), hub id or diffusers folder.
        backbone_dtype: weight dtype of the backbone.
        prompts: prompts given inline (used when ``prompt_source`` is unset).
        prompt_source: a prompt file (txt/csv/jsonl/parquet), named set, ``shapes:<split>[:<count>]`` or hub id.
        prompt_column: prompt column of tabular sources.
        prompt_split: dataset split of hub sources.
        max_prompts: keep only the first prompts.
        seeds: seed list such as ``"0-3"`` (an integer: one seed), paired with every prompt.
        distinct_seeds: give every prompt its own seeds: the k-th seed of prompt p is ``seeds[k] + p · len(seeds)``,
            so no two pairs share a noise (independent pairs); ``false`` reuses the same seeds for every prompt.
        steps: sampler steps of the images.
        scheduler: ``ddim`` (goldennoise's loop) or a diffusers scheduler name run through the pipeline.
        image_size: image side in pixels; default the backbone's native size.
        methods: the evaluated methods, each with a name and its own guidance scale.
        baseline: the method every other is compared with (paired); default the first.
        metrics: goldennoise metrics (``class_path: goldennoise.metrics.ShapesAlignment``, ...).
        budget: denoiser evaluations per image granted to search methods (best-of-N sets its n from it); ``null``
            leaves each method as configured.
        batch_size: items per batch (every method runs on the same batch).
        shard_size: items per shard file, the unit of crash recovery.
        save_images: ``grid`` keeps the images of the grid's rows, ``all`` every image, ``none`` none.
        grid_prompts: prompts shown in the image grid (the first ones, each with its first seed).
        bootstrap_resamples: resamples of the bootstrap CIs.
        accelerator: Lightning Fabric accelerator (``auto``, ``cpu``, ``cuda``, ...).
        devices: processes; each takes every ``devices``-th shard.
        strategy: Fabric strategy (``auto``: spawn, or join torchrun's processes).
        progress: show a progress bar with ETA on rank 0.
        mlflow_tracking_uri: MLflow tracking URI; ``null`` logs nothing.
    """

    name: str = "evaluation"
    output_dir: str | None = None
    backbone: str = "shapes"
    backbone_dtype: str = "float32"
    prompts: list[str] | None = None
    prompt_source: str | None = None
    prompt_column: str | None = None
    prompt_split: str | None = None
    max_prompts: int | None = None
    seeds: str | int = "0-3"
    distinct_seeds: bool = False
    steps: int = 20
    scheduler: str = "ddim"
    image_size: int | None = None
    methods: list[MethodSpec] = field(default_factory=list)
    baseline: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    budget: float | None = None
    batch_size: int = 32
    shard_size: int = 256
    save_images: str = "grid"
    grid_prompts: int = 8
    bootstrap_resamples: int = 10_000
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    progress: bool = True
    mlflow_tracking_uri: str | None = "sqlite:///mlruns.db"

    def __post_init__(self) -> None:
        self.seeds = seed_spec(self.seeds)
        if not self.methods:
            raise ValueError("An evaluation needs at least one method.")
        names = [m.name for m in self.methods]
        bad = [n for n in names if not METHOD_NAME.match(n)]
        if bad:
            raise ValueError(f"Method names may hold letters, digits, '_', '-', '.' and spaces only: {bad}.")
        if len(set(names)) != len(names):
            raise ValueError(f"Method names must be unique, got {names}.")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"The baseline {self.baseline!r} is not one of the methods {names}.")
        if not self.metrics:
            raise ValueError("An evaluation needs at least one metric.")
        if self.save_images not in ("none", "grid", "all"):
            raise ValueError(f"save_images must be 'none', 'grid' or 'all', got {self.save_images!r}.")
        for key in ("batch_size", "shard_size", "devices", "bootstrap_resamples"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}.")
        if self.budget is not None and self.budget <= 0:
            raise ValueError(f"budget must be positive, got {self.budget}.")
        SamplerSettings(self.steps, scheduler=self.scheduler)  # checks steps and scheduler before anything loads

    @property
    def baseline_name(self) -> str:
        """The baseline method's name."""
        return self.baseline or self.methods[0].name

    @property
    def sampler(self) -> SamplerSettings:
        """The sampler settings shared by every method (each sets its own guidance)."""
        return SamplerSettings(steps=self.steps, scheduler=self.scheduler, image_size=self.image_size)

    def method_sampler(self, spec: MethodSpec) -> SamplerSettings:
        """The sampler settings of one method's images: the shared ones with that method's guidance."""
        return replace(self.sampler, guidance_scale=spec.guidance_scale)

    def fit_budgets(self) -> None:
        """Size every search method to ``budget`` at the cost of its own sampling (a guided one costs twice)."""
        if self.budget is None:
            return
        for spec in self.methods:
            spec.method.fit_budget(self.budget, self.method_sampler(spec))

    @property
    def folder(self) -> str:
        """The output folder."""
        return self.output_dir or f"runs/eval/{self.name}"

    def prompt_list(self) -> PromptList:
        """The prompts of the evaluation."""
        if self.prompt_source is not None:
            return load_prompts(self.prompt_source, self.prompt_column, self.prompt_split, self.max_prompts)
        if not self.prompts:
            raise ValueError("Give prompts or a prompt_source.")
        return PromptList(check_prompts("prompts", self.prompts)).head(self.max_prompts)

    def image_kept(self, index: int, prompt_id: int) -> bool:
        """Whether the images of item ``index`` (of prompt ``prompt_id``) are stored (see ``save_images``)."""
        if self.save_images != "grid":
            return self.save_images == "all"
        return prompt_id < self.grid_prompts and index % len(parse_seeds(self.seeds)) == 0

    def items(self) -> list[Item]:
        """``(prompt_id, prompt, seed)`` of every evaluated pair, prompt-major."""
        seeds = parse_seeds(self.seeds)
        prompts = self.prompt_list().prompts
        if not prompts:
            raise ValueError("The prompt set holds no prompts.")
        return paired_items(prompts, seeds, self.distinct_seeds)
