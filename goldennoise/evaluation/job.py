"""An evaluation as a job of the generation engine: per batch every method's images and scores, then the report."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from goldennoise.backbones import load_backbone
from goldennoise.data.shards import ShardFormat, iter_shards, load_shard_tensors
from goldennoise.engine import RunStats
from goldennoise.evaluation.config import EvaluateConfig
from goldennoise.evaluation.grid import save_image_grid
from goldennoise.evaluation.harness import Item, evaluate_batch
from goldennoise.evaluation.report import flat_rows, format_table, summarize
from goldennoise.metrics.registry import primary_key
from goldennoise.noise.base import describe_module


def read_outputs(output_dir: Path) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Every record of an evaluation folder, in item order, and its kept images.

    The images come as ``images``, ``image_index`` and ``image_method`` tensors; empty when none were kept.
    """
    shards = list(iter_shards(EVALUATION_FORMAT, output_dir))
    records = [r for shard in shards for r in shard.records]
    parts = [load_shard_tensors(shard.path) for shard in shards]
    parts = [p for p in parts if "images" in p]
    if not parts:
        return records, {}
    return records, {key: torch.cat([p[key] for p in parts]) for key in ("images", "image_index", "image_method")}


EVALUATION_FORMAT = ShardFormat(name="goldennoise-eval/1", label="evaluation shard")
"""Evaluation shards: records per (item, method) in the header; ``images`` (uint8), ``image_index`` and
``image_method`` tensors when images are kept."""


class EvaluationJob:
    """Every method of ``config`` on each batch of items; records per (item, method), images where kept.

    Args:
        config: the evaluation.
        method_params: each method's resolved configuration for MLflow (the CLI passes the parsed config);
            default each method's :meth:`~goldennoise.noise.NoiseMethod.describe`.
    """

    format = EVALUATION_FORMAT

    def __init__(self, config: EvaluateConfig, method_params: dict[str, Any] | None = None) -> None:
        self.config = config
        self.method_params = method_params or {m.name: m.method.describe() for m in config.methods}
        self.backbone = None
        self._digest = ""

    def settings(self) -> dict[str, Any]:
        """Everything that changes the records, as JSON-able data."""
        c = self.config
        return {"backbone": c.backbone, "backbone_dtype": c.backbone_dtype, "sampler": asdict(c.sampler),
                "methods": [{"name": m.name, "guidance_scale": m.guidance_scale, "method": m.method.describe()}
                            for m in c.methods],
                "metrics": [describe_module(m) for m in c.metrics], "budget": c.budget,
                "save_images": c.save_images, "grid_prompts": c.grid_prompts, "batch_size": c.batch_size,
                "shard_size": c.shard_size}

    def digest(self, items: list[Item]) -> str:
        """SHA-256 (16 hex digits) of the settings and the items: the evaluation id."""
        payload = json.dumps({"settings": self.settings(), "items": items}, sort_keys=True, default=str)
        self._digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return self._digest

    def manifest(self) -> dict[str, Any]:
        """The evaluation's description stored beside its shards."""
        return {"name": self.config.name, "shard_size": self.config.shard_size, "settings": self.settings()}

    def shard_meta(self) -> dict[str, str]:
        """Every shard records the backbone."""
        return {"backbone": self.config.backbone}

    def begin_shard(self, items: list[Item]) -> None:
        """Nothing to prepare per shard (prompts are encoded per batch)."""

    def setup(self, device: torch.device) -> None:
        """Load the backbone, move methods and metrics to ``device`` and size search methods to the budget."""
        c = self.config
        if self.backbone is not None and self.backbone.device == device:
            return  # set up already (a job object reused for another run)
        self.backbone = load_backbone(c.backbone, dtype=c.backbone_dtype, device=device)
        for spec in c.methods:
            spec.method.to(device)
        c.fit_budgets()
        for metric in c.metrics:
            metric.to(device)

    def run_batch(self, items: list[Item], first_index: int) -> tuple[dict[str, torch.Tensor], list[dict]]:
        """Records of every (item, method) and the kept images (uint8) with their item index and method."""
        c = self.config
        records, images = evaluate_batch(self.backbone, items, c.methods, c.metrics, c.sampler)
        width = len(items)
        for k, record in enumerate(records):
            record["index"] = first_index + k % width
        kept = [(j, row) for j, spec in enumerate(c.methods) for row in range(width)
                if c.image_kept(first_index + row, items[row][0])]
        tensors = {}
        if kept:
            stack = torch.stack([images[c.methods[j].name][row] for j, row in kept])  # (K, 3, H, W)
            tensors = {"images": (stack * 255).round().to(torch.uint8),
                       "image_index": torch.tensor([first_index + row for _, row in kept]),
                       "image_method": torch.tensor([j for j, _ in kept])}
        return tensors, records

    def finalize(self, output_dir: Path, stats: RunStats) -> dict[str, Any]:
        """Write the per-sample table, the grid and the summary; log to MLflow; print the table."""
        c = self.config
        records, images = read_outputs(output_dir)
        rows = flat_rows(records)
        names = [m.name for m in c.methods]
        summaries = summarize(rows, names, c.baseline_name, c.bootstrap_resamples)
        self._write_table(output_dir, rows)
        grid = self._write_grid(output_dir, records, images)
        artifacts = [] if grid is None else [grid]  # each run gets its own rows as samples.parquet
        score = primary_key(c.metrics[0])
        table = format_table(summaries, c.baseline_name, score)
        summary = {"evaluation_id": self._digest, "name": c.name, "items": len(records) // len(names),
                   "produced_this_run": stats.produced, "seconds_this_run": stats.seconds, "methods": summaries}
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        (output_dir / "table.txt").write_text(table + "\n")
        print(f"Evaluation '{c.name}' ({summary['items']} prompt-seed pairs, id {self._digest}):\n{table}")
        if c.mlflow_tracking_uri:
            from goldennoise.evaluation.tracking import log_evaluation

            tags = {"backbone": c.backbone, "prompt_set": c.prompt_source or "inline", "evaluation": c.name}
            summary["mlflow_runs"] = log_evaluation(c.mlflow_tracking_uri, c.name, self._digest, summaries, rows,
                                                    self.method_params, tags,
                                                    [*artifacts, output_dir / "manifest.json"])
            print(f"MLflow: experiment '{c.name}' at {c.mlflow_tracking_uri}")
        return summary

    @staticmethod
    def _write_table(output_dir: Path, rows: list[dict]) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = output_dir / "samples.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path

    def _write_grid(self, output_dir: Path, records: list[dict], images: dict[str, torch.Tensor]) -> Path | None:
        if not images:
            return None
        c = self.config
        first = {r["index"]: r for r in records}
        order = sorted({int(i) for i in images["image_index"].tolist()})[:c.grid_prompts]
        labels = [f"{first[i]['prompt']} (seed {first[i]['seed']})" for i in order]
        columns = {}
        for j, spec in enumerate(c.methods):
            rows = {int(i): k for k, (i, m) in enumerate(zip(images["image_index"].tolist(),
                                                             images["image_method"].tolist(), strict=True)) if m == j}
            columns[spec.name] = torch.stack([images["images"][rows[i]] for i in order]).float() / 255
        return save_image_grid(output_dir / "grid.png", labels, columns)

