"""The evaluation harness as a Lightning callback: validation check, ``test`` and ``predict`` of a trained noise method.

:class:`NoiseMethodHarness` sits in ``trainer.callbacks`` next to any :class:`~goldennoise.lit.NoiseMethodModule`
and runs the one evaluation step, :func:`~goldennoise.evaluation.harness.evaluate_batch`, on the module's live noise
method (``pl_module.noise_method()``) beside Gaussian-noise baselines, with the same noise of the same seeds:

- **validation**, every ``every_n_epochs`` epochs (and on every ``validate``), on its own fixed prompts × seeds:
  logs ``val/gen/<method>/<score>`` (each method's mean), ``val/gen/delta/<score>`` (the trained method's paired
  Δ vs the first baseline) and an image grid (``generation/epoch_<k>.png``) to every MLflow logger;
- **test**, on the test batches (``{"prompt", "seed"}``: :class:`~goldennoise.data.PromptSeedDataModule`, or NPD
  batches): logs per method and score ``test/<method>/<score>/mean`` with its 95 % CI, against the first baseline
  ``…/delta`` with its CI resampled by prompt and the win/tie/loss shares, and per-image costs ``test/<method>/cost/…``;
  prints the summary table and logs the grid, table and per-sample parquet under ``test/`` to MLflow;
- **at the end of fit**, with ``final`` (:class:`FinalEvaluation`): the same as test on the final evaluation's
  prompts × seeds, with a progress bar, on the weights of the best checkpoint (or the last ones); each method also
  gets its own MLflow run, nested under the fit's run, for the UI's run comparison;
- **predict**, on the predict batches: writes ``<predict_dir>/<index>.png`` (prompt and seed in its text chunks) and
  ``<index>.safetensors`` (``noise``: the seed's Gaussian noise, ``method_noise``: the method's, metadata prompt,
  seed, sampler) per pair.

The backbone loads in ``setup`` (on the CPU; moved to the module's device on first use); the backbone and the metrics
live in the callback, so they never enter a checkpoint (the callback's state is empty).

**DDP.** Validation items are split across ranks (rank r takes items r, r + W, ...), test batches are split by
Lightning's distributed sampler; the records are gathered (``all_gather_object``) so every rank logs the same
numbers, duplicates from the sampler's padding are dropped, and rank 0 logs the artifacts. Predict writes each rank's
own files.

**Gradients.** Lightning runs validation, test and predict under ``torch.inference_mode``. The harness steps out of
it (gradients off, ordinary tensors), so a method that optimises noise can turn gradients on with
``torch.enable_grad()`` under the default trainer; ``trainer.inference_mode: false`` works as well and changes nothing
here. Autocast is off during the harness (noise methods and samplers choose their own precision).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.trainer.states import TrainerFn
from torchmetrics import Metric
from tqdm.auto import tqdm

from goldennoise.backbones import Backbone, load_backbone
from goldennoise.checks import check_finite, check_int, check_prompts
from goldennoise.data.prompt_sources import SHAPES_PREFIX, load_prompts, parse_shapes_source
from goldennoise.evaluation.config import METHOD_NAME
from goldennoise.evaluation.grid import save_image_grid
from goldennoise.evaluation.harness import Item, MethodSpec, evaluate_batch, generate_batch
from goldennoise.evaluation.report import flat_rows, format_table, summarize
from goldennoise.evaluation.tracking import log_evaluation, summary_metrics
from goldennoise.lit.noise_method import NoiseMethodModule
from goldennoise.metrics.registry import primary_key
from goldennoise.noise.base import Gaussian, SamplerSettings
from goldennoise.sampling import paired_items, parse_seeds
from goldennoise.tensor_files import save_atomic


@contextmanager
def harness_mode(device: torch.device) -> Iterator[None]:
    """Outside inference mode with gradients off and autocast off: what the harness runs under in every stage."""
    with torch.inference_mode(False), torch.no_grad(), torch.autocast(device.type, enabled=False):
        yield


def gather_objects(trainer: L.Trainer, value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` in a single process)."""
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return [value]
    out: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(out, value)
    return out


def batch_items(batch: dict[str, Any]) -> tuple[list[str], list[int]]:
    """The prompts and seeds of a ``{"prompt", "seed"}`` batch, refusing batches without them."""
    if not isinstance(batch, dict) or "prompt" not in batch or "seed" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"NoiseMethodHarness needs batches with 'prompt' and 'seed' (got {keys}); use "
                         "goldennoise.data.PromptSeedDataModule for test and predict.")
    seeds = batch["seed"]
    return list(batch["prompt"]), seeds.tolist() if isinstance(seeds, torch.Tensor) else list(seeds)


@dataclass
class Collected:
    """What one rank evaluated in a stage: the records, and the grid's images by global item index.

    Rank ``r`` of ``W`` sees global items ``r, r + W, ...`` (the distributed sampler's order and the validation
    split alike), so its k-th item has global index ``k · W + r``.
    """

    records: list[dict] = field(default_factory=list)
    grid: dict[int, tuple[str, dict[str, torch.Tensor]]] = field(default_factory=dict)
    seen: int = 0

    def add(self, items: Sequence[Item], records: list[dict], images: dict[str, torch.Tensor], rank: int,
            world: int, grid_items: int) -> None:
        """Keep one batch's records (with their global ``index``) and the images of grid items."""
        indices = [(self.seen + k) * world + rank for k in range(len(items))]
        for n, record in enumerate(records):  # evaluate_batch orders records method-major
            record["index"] = indices[n % len(items)]
        for k, (index, (_, prompt, seed)) in enumerate(zip(indices, items, strict=True)):
            if index < grid_items:
                self.grid[index] = (f"{prompt} (seed {seed})", {name: im[k] for name, im in images.items()})
        self.records += records
        self.seen += len(items)


def merge_records(parts: Sequence[Collected]) -> list[dict]:
    """Every rank's records in item order, without the sampler's padded duplicates, prompts numbered in order."""
    records, seen, prompt_ids = [], set(), {}
    for record in sorted((r for part in parts for r in part.records), key=lambda r: r["index"]):
        key = (record["prompt"], record["seed"], record["method"])
        if key not in seen:
            seen.add(key)
            record["prompt_id"] = prompt_ids.setdefault(record["prompt"], len(prompt_ids))
            records.append(record)
    return records


def merge_grid(parts: Sequence[Collected], grid_items: int) -> tuple[list[str], dict[str, torch.Tensor]]:
    """The grid's row labels and per-method image stacks (rows, 3, H, W) from every rank's first items."""
    grid = {index: entry for part in parts for index, entry in part.grid.items()}
    order = sorted(grid)[:grid_items]
    methods = list(grid[order[0]][1]) if order else []
    return [grid[i][0] for i in order], {m: torch.stack([grid[i][1][m] for i in order]) for m in methods}


@dataclass
class FinalEvaluation:
    """The evaluation a fit ends with (:class:`NoiseMethodHarness`'s ``final``): every method on fixed pairs.

    Args:
        prompt_source: its prompts: a prompt file, named set, ``shapes:<split>[:<count>]`` or
            ``shapes:<split>:<first>-<last>``, or a hub id.
        seeds: seeds paired with every prompt (``"0-3"``).
        distinct_seeds: give every prompt its own seeds (the k-th seed of prompt p is ``seeds[k] + p · len(seeds)``,
            as in ``goldennoise evaluate``), so no two pairs share a noise.
        weights: the trained method's weights: ``best`` (the best checkpoint of the fit's ``ModelCheckpoint``, as
            ``test --ckpt_path best``; the last weights when there is none) or ``last``.
    """

    prompt_source: str
    seeds: str = "0"
    distinct_seeds: bool = True
    weights: Literal["best", "last"] = "best"

    def __post_init__(self) -> None:
        parse_seeds(self.seeds)
        if self.prompt_source.startswith(SHAPES_PREFIX):
            parse_shapes_source(self.prompt_source)  # a bad split or range fails here, before any collection
        if self.weights not in ("best", "last"):
            raise ValueError(f"FinalEvaluation weights must be 'best' or 'last', got {self.weights!r}.")

    def items(self) -> list[Item]:
        """``(prompt_id, prompt, seed)`` of every pair, prompt-major."""
        prompts = load_prompts(self.prompt_source).prompts
        if not prompts:
            raise ValueError(f"The final evaluation's prompt source {self.prompt_source!r} holds no prompts.")
        return paired_items(prompts, parse_seeds(self.seeds), self.distinct_seeds)


class NoiseMethodHarness(BasePredictionWriter):
    """Evaluate a :class:`~goldennoise.lit.NoiseMethodModule`'s method against Gaussian noise through a backbone.

    Args:
        backbone: built-in name, hub id or diffusers folder of the frozen backbone the images are made with.
        backbone_dtype: weight dtype of the backbone.
        prompts: the validation check's prompts, inline (each with some text).
        prompt_source: or a prompt source (a txt/csv/jsonl/parquet file, a named set, ``shapes:<split>[:<count>]``
            or a hub id), read in ``setup``; with neither, validation runs no check (test and predict read their
            prompts from the data).
        max_prompts: keep only the first prompts of ``prompt_source``.
        seeds: the validation check's seeds (``"0-3"``, ``[0, 7]``), paired with every prompt.
        steps: sampler steps of every image.
        scheduler: ``ddim`` (goldennoise's loop) or a diffusers scheduler name (``dpm_solver``, ``euler``).
        image_size: image side in pixels; ``None`` uses the backbone's native size.
        guidance_scale: classifier-free guidance of the trained method's images.
        baselines: Gaussian-noise baselines by name → guidance scale; the first is the one the paired Δ is
            taken against. Default ``{"gaussian": 1.0}``.
        metrics: goldennoise metrics (``class_path: goldennoise.metrics.ShapesAlignment``, ...); their per-sample
            scores are read, their state is untouched.
        methods: further methods of ``test`` and the final evaluation (shipped checkpoints, search methods), each
            with its name and guidance scale, evaluated after the trained method; not in the validation check.
        budget: denoiser evaluations per image granted to search methods among ``methods`` (best-of-N and
            stability selection set their candidates from it, as ``goldennoise evaluate``'s ``budget``).
        final: evaluate every method at the end of fit (:class:`FinalEvaluation`); ``None``: no final evaluation.
        every_n_epochs: run the validation check every k epochs (0: never during fit; ``validate`` always runs it).
        batch_size: items per harness batch of the validation check.
        grid_items: (prompt, seed) rows of the image grids (0: no grid).
        bootstrap_resamples: resamples of the bootstrap CIs.
        predict_dir: folder ``predict`` writes images and noises to; ``predict`` refuses to start without it.

    Raises:
        ValueError: a setting is invalid; checked before anything loads.
    """

    def __init__(
        self,
        backbone: str,
        backbone_dtype: str = "float32",
        prompts: list[str] | None = None,
        prompt_source: str | None = None,
        max_prompts: int | None = None,
        seeds: str | int | list[int] = "0",
        steps: int = 20,
        scheduler: str = "ddim",
        image_size: int | None = None,
        guidance_scale: float = 1.0,
        baselines: dict[str, float] | None = None,
        metrics: list[Metric] | None = None,
        every_n_epochs: int = 1,
        batch_size: int = 8,
        grid_items: int = 8,
        bootstrap_resamples: int = 10_000,
        predict_dir: str | None = None,
        methods: list[MethodSpec] | None = None,
        budget: float | None = None,
        final: FinalEvaluation | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        if prompts and prompt_source is not None:
            raise ValueError("Give the validation check's prompts or a prompt_source, not both.")
        self.prompts = check_prompts("prompts", prompts) if prompts else []
        self.prompt_source, self.max_prompts = prompt_source, max_prompts
        self.seeds = parse_seeds(seeds)
        image_size = None if image_size is None else check_int("image_size", image_size, minimum=1)
        self.sampler = SamplerSettings(check_int("steps", steps, minimum=1), scheduler=scheduler, image_size=image_size)
        self.guidance_scale = check_finite("guidance_scale", guidance_scale)
        self.baselines = self._checked_baselines({"gaussian": 1.0} if baselines is None else baselines)
        self.metrics = list(metrics or [])
        self.every_n_epochs = check_int("every_n_epochs", every_n_epochs, minimum=0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.grid_items = check_int("grid_items", grid_items, minimum=0)
        self.bootstrap_resamples = check_int("bootstrap_resamples", bootstrap_resamples, minimum=1)
        self.backbone_name, self.backbone_dtype = backbone, backbone_dtype
        self.predict_dir = None if predict_dir is None else Path(predict_dir)
        self.methods = self._checked_methods(list(methods or []))
        self.budget = None if budget is None else check_finite("budget", budget)
        if self.budget is not None and self.budget <= 0:
            raise ValueError(f"budget must be positive, got {budget}.")
        self.final = final
        self.final_items: list[Item] = []
        self.backbone: Backbone | None = None
        self._test = Collected()

    @staticmethod
    def _checked_baselines(baselines: dict[str, float]) -> dict[str, float]:
        if not baselines:
            raise ValueError("baselines needs at least one Gaussian baseline, e.g. {'gaussian': 1.0}.")
        bad = [name for name in baselines if not METHOD_NAME.match(name)]
        if bad:
            raise ValueError(f"Baseline names may hold letters, digits, '_', '-', '.' and spaces only: {bad}.")
        return {name: check_finite(f"baselines[{name!r}]", scale) for name, scale in baselines.items()}

    def _checked_methods(self, methods: list[MethodSpec]) -> list[MethodSpec]:
        names = [*self.baselines, *(m.name for m in methods)]
        bad = [m.name for m in methods if not METHOD_NAME.match(m.name)]
        if bad:
            raise ValueError(f"Method names may hold letters, digits, '_', '-', '.' and spaces only: {bad}.")
        if len(set(names)) != len(names):
            raise ValueError(f"The baselines' and methods' names must be unique, got {names}.")
        return methods

    # --- setup ----------------------------------------------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Check the module, the method names and ``predict_dir``, read the prompt source, then load the backbone."""
        if not isinstance(pl_module, NoiseMethodModule):
            raise TypeError(f"NoiseMethodHarness evaluates a goldennoise.lit.NoiseMethodModule, got "
                            f"{type(pl_module).__name__}.")
        if pl_module.method_name in [*self.baselines, *(m.name for m in self.methods)]:
            raise ValueError(f"The trained method's name {pl_module.method_name!r} is also a baseline's or a "
                             "method's; rename that one.")
        if self.prompt_source is not None and not self.prompts:
            self.prompts = load_prompts(self.prompt_source, limit=self.max_prompts).prompts
            if not self.prompts:
                raise ValueError(f"The prompt source {self.prompt_source!r} holds no prompts.")
        if stage == "predict" and self.predict_dir is None:
            raise ValueError("NoiseMethodHarness needs predict_dir (the folder images and noises are written to) "
                             "for predict.")
        if stage == "fit" and self.final is not None:
            self.final_items = self.final.items()  # read before training: a missing source fails now
        if self.backbone is None and (stage in ("test", "predict") or self._checks_validation() or
                                      self.final_items):
            self.backbone = load_backbone(self.backbone_name, self.backbone_dtype)
        if self.budget is not None:
            for spec in self.methods:
                spec.method.fit_budget(self.budget, self.sampler)

    def _checks_validation(self) -> bool:
        return bool(self.prompts) and self.every_n_epochs > 0

    def validation_items(self) -> list[Item]:
        """``(prompt_id, prompt, seed)`` of the validation check, prompt-major."""
        return [(p, prompt, seed) for p, prompt in enumerate(self.prompts) for seed in self.seeds]

    def method_specs(self, pl_module: NoiseMethodModule, every: bool = False) -> list[MethodSpec]:
        """The Gaussian baselines at their guidance, then the module's live method at ``guidance_scale``.

        With ``every`` (test and the final evaluation), the further ``methods`` follow.
        """
        specs = [MethodSpec(name, Gaussian(), scale) for name, scale in self.baselines.items()]
        specs.append(MethodSpec(pl_module.method_name, pl_module.noise_method(), self.guidance_scale))
        return [*specs, *self.methods] if every else specs

    def _ready_backbone(self, device: torch.device) -> Backbone:
        """The backbone and the metrics on ``device``."""
        if self.backbone is None:
            raise RuntimeError("NoiseMethodHarness has no backbone: setup() did not run for this stage.")
        if self.backbone.device != device:
            self.backbone.to(device)
        for metric in self.metrics:
            metric.to(device)
        for spec in self.methods:
            spec.method.to(device)
        return self.backbone

    def _evaluate(self, trainer: L.Trainer, pl_module: NoiseMethodModule, items: list[Item],
                  into: Collected, every: bool = False) -> None:
        """The methods on one batch of items; the records and grid images go ``into`` this rank's collection."""
        with harness_mode(pl_module.device):
            backbone = self._ready_backbone(pl_module.device)
            records, images = evaluate_batch(backbone, items, self.method_specs(pl_module, every), self.metrics,
                                             self.sampler)
        into.add(items, records, images, trainer.global_rank, trainer.world_size, self.grid_items)

    def _summaries(self, trainer: L.Trainer, pl_module: NoiseMethodModule, collected: Collected,
                   every: bool = False) -> tuple[list[dict], list[dict], list[str], dict[str, torch.Tensor]]:
        """Gather every rank's records; the per-method summaries, flat rows, grid labels and grid images."""
        parts = gather_objects(trainer, collected)
        labels, grid = merge_grid(parts, self.grid_items)
        rows = flat_rows(merge_records(parts))
        names = [spec.name for spec in self.method_specs(pl_module, every)]
        return summarize(rows, names, names[0], self.bootstrap_resamples), rows, labels, grid

    # --- validation -----------------------------------------------------------------------------------------------

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Every k epochs: each method's mean scores, the trained method's Δ and an image grid."""
        if not self._validation_due(trainer):
            return
        collected = Collected()
        mine = self.validation_items()[trainer.global_rank::trainer.world_size]
        for start in range(0, len(mine), self.batch_size):
            self._evaluate(trainer, pl_module, mine[start:start + self.batch_size], collected)
        summaries, _, labels, grid = self._summaries(trainer, pl_module, collected)
        for summary in summaries:
            for key, stats in summary["scores"].items():
                pl_module.log(f"val/gen/{summary['method']}/{key}", stats["mean"], sync_dist=True)
        for key, stats in summaries[-1]["scores"].items():
            pl_module.log(f"val/gen/delta/{key}", stats["delta"], sync_dist=True)
        if trainer.is_global_zero:
            self._log_files(trainer, "generation", {f"epoch_{trainer.current_epoch:03d}.png": (labels, grid)})

    def _validation_due(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking or not self._checks_validation():
            return False
        return trainer.state.fn == TrainerFn.VALIDATING or (trainer.current_epoch + 1) % self.every_n_epochs == 0

    # --- test -----------------------------------------------------------------------------------------------------

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start a fresh collection of test records."""
        self._test = Collected()

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        """Evaluate every method on the batch's (prompt, seed) pairs."""
        prompts, seeds = batch_items(batch)
        items = [(0, prompt, seed) for prompt, seed in zip(prompts, seeds, strict=True)]  # ids set when merged
        self._evaluate(trainer, pl_module, items, self._test, every=True)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Summarize, log the means, Δ, CIs and costs per method, print the table, log the artifacts."""
        summaries, rows, labels, grid = self._summaries(trainer, pl_module, self._test, every=True)
        for summary in summaries:
            for key, value in summary_metrics(summary).items():
                pl_module.log(f"test/{summary['method']}/{key}", value, sync_dist=True)
        table = self._table(summaries)
        if trainer.is_global_zero:
            print(f"Test of {pl_module.method_name} ({len(rows) // len(summaries)} prompt-seed pairs):\n{table}")
            self._log_files(trainer, "test", {"grid.png": (labels, grid), "table.txt": table + "\n",
                                              "samples.parquet": rows})

    def _table(self, summaries: list[dict]) -> str:
        baseline = next(iter(self.baselines))
        return format_table(summaries, baseline, primary_key(self.metrics[0]) if self.metrics else None)

    # --- the final evaluation of a fit ----------------------------------------------------------------------------

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """With ``final``: every method on its pairs, logged as in test (under ``test/``), and printed.

        Each method also gets an MLflow run nested under the fit's. Runs before Lightning's teardown, on the
        training device, with the logger still open.
        """
        if self.final is None or trainer.interrupted:
            return
        if self.final.weights == "best":
            load_best_weights(trainer, pl_module)
        mine = self.final_items[trainer.global_rank::trainer.world_size]
        collected = Collected()
        names = [spec.name for spec in self.method_specs(pl_module, every=True)]
        with tqdm(total=len(mine), unit="pair", desc=f"final evaluation ({len(names)} methods)",
                  disable=not trainer.is_global_zero or not trainer.progress_bar_callback,
                  bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]") as bar:
            for start in range(0, len(mine), self.batch_size):
                batch = mine[start:start + self.batch_size]
                self._evaluate(trainer, pl_module, batch, collected, every=True)
                bar.update(len(batch))
        summaries, rows, labels, grid = self._summaries(trainer, pl_module, collected, every=True)
        if not trainer.is_global_zero:
            return
        metrics = {f"test/{s['method']}/{key}": value for s in summaries for key, value in summary_metrics(s).items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        table = self._table(summaries)
        print(f"Final evaluation ({len(rows) // len(summaries)} prompt-seed pairs from {self.final.prompt_source}, "
              f"{self.sampler.steps} {self.sampler.scheduler} steps, budget {self.budget} evaluations/img for "
              f"search):\n{table}")
        self._log_files(trainer, "test", {"grid.png": (labels, grid), "table.txt": table + "\n",
                                          "samples.parquet": rows})
        self._log_method_runs(trainer, pl_module, summaries, rows)

    def _log_method_runs(self, trainer: L.Trainer, pl_module: NoiseMethodModule, summaries: list[dict],
                         rows: list[dict]) -> None:
        """One MLflow run per method (named after it, nested under the fit's run) for the UI's run comparison."""
        specs = self.method_specs(pl_module, every=True)
        params = {spec.name: {"guidance_scale": spec.guidance_scale, **spec.method.describe()} for spec in specs}
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                experiment = logger.experiment.get_experiment(logger.experiment_id).name
                tags = {"mlflow.parentRunId": logger.run_id, "backbone": self.backbone_name,
                        "prompt_set": self.final.prompt_source}
                log_evaluation(logger.experiment.tracking_uri, experiment, logger.run_id, summaries, rows, params,
                               tags)

    # --- predict --------------------------------------------------------------------------------------------------

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Create ``predict_dir`` (``setup`` refused a missing one before the backbone loaded)."""
        self.predict_dir.mkdir(parents=True, exist_ok=True)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Say where the files went."""
        if trainer.is_global_zero:
            print(f"predict: images (PNG) and noises (safetensors) of {pl_module.method_name} in {self.predict_dir}")

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        """Sample the batch with the module's method; write one PNG and one safetensors file per pair."""
        prompts, seeds = batch_items(batch)
        spec = MethodSpec(pl_module.method_name, pl_module.noise_method(), self.guidance_scale)
        with harness_mode(pl_module.device):
            backbone = self._ready_backbone(pl_module.device)
            noise, method_noise, images, _ = generate_batch(backbone, prompts, seeds, spec, self.sampler)
        if not batch_indices:
            batch_indices = [batch_idx * len(prompts) + k for k in range(len(prompts))]
        for k, index in enumerate(batch_indices):
            meta = {"prompt": prompts[k], "seed": str(seeds[k]), "method": spec.name,
                    "guidance_scale": str(spec.guidance_scale), "steps": str(self.sampler.steps),
                    "scheduler": self.sampler.scheduler}
            save_png(self.predict_dir / f"{index:06d}.png", images[k], meta)
            save_atomic(self.predict_dir / f"{index:06d}.safetensors",
                        {"noise": noise[k], "method_noise": method_noise[k].float()}, meta)

    # --- artifacts ------------------------------------------------------------------------------------------------

    @staticmethod
    def _log_files(trainer: L.Trainer, folder: str, files: dict[str, Any]) -> None:
        """Write each artifact (a grid ``(labels, images)``, a text, parquet rows) and log it to every MLflow logger."""
        loggers = [logger for logger in trainer.loggers if isinstance(logger, MLFlowLogger)]
        if not loggers:
            return
        with tempfile.TemporaryDirectory() as tmp:
            paths = [path for name, value in files.items() if (path := write_artifact(Path(tmp) / name, value))]
            for logger in loggers:
                for path in paths:
                    logger.experiment.log_artifact(logger.run_id, str(path), folder)


def load_best_weights(trainer: L.Trainer, pl_module: L.LightningModule) -> None:
    """Load the best checkpoint of the fit's ``ModelCheckpoint`` into ``pl_module`` (nothing when there is none)."""
    callback = trainer.checkpoint_callback
    path = callback.best_model_path if callback is not None else ""
    if path:
        checkpoint = torch.load(path, map_location=pl_module.device, weights_only=True)
        pl_module.load_state_dict(checkpoint["state_dict"])


def write_artifact(path: Path, value: Any) -> Path | None:
    """Write a grid ``(labels, images)`` as PNG, a string as text or rows as parquet; ``None`` for an empty grid."""
    if path.suffix == ".png":
        labels, images = value
        return save_image_grid(path, labels, images) if labels else None
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(value), path)
        return path
    path.write_text(value)
    return path


def save_png(path: Path, image: torch.Tensor, text: dict[str, str]) -> None:
    """An image (3, H, W) in [0, 1] as an 8-bit PNG with ``text`` in its text chunks."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(pixels).save(path, pnginfo=info)
