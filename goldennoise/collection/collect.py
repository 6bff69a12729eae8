"""NPD collection: NPNet's re-denoise sampling over prompts × seeds, batched, sharded, resumable and multi-process.

Per pair (Zhou et al., 2024, arXiv 2411.09502, Sec. 3.1; ``docs/npnet.md`` §2.2), in batches:

1. x_T: per-seed CPU noise (:func:`~goldennoise.sampling.noise_for_seeds`, fp16 for official parity);
2. x'_T = :func:`~goldennoise.sampling.redenoise_step` (ω_l denoise, ω_w inversion, official or textbook levels);
3. both images — from x_T and from x'_T — sampled together in one 2B batch of N-step DDIM at ω_l and decoded;
4. each configured score of both images; the pair is stored with every score, whatever they are (docs/npnet.md §2.3).

A collection is one job of the generation engine (:mod:`goldennoise.engine`): the (prompt, seed) index is cut into
fixed shards of ``shard_size`` pairs written atomically, content-hashed (:mod:`goldennoise.data.npd_store`); a rerun
skips complete shards, so SIGKILL at any moment followed by the same command yields exactly the uninterrupted dataset;
rank r of W processes collects shards r, r+W, ...; the run holds the folder's lock.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from goldennoise.backbones import PromptEmbeds, load_backbone, parse_dtype
from goldennoise.collection.config import CollectConfig, build_items, config_hash
from goldennoise.collection.scoring import ScoreFn, build_scorers
from goldennoise.data.npd_embeddings import build_embedding_cache, cache_dir, text_signature, usable_cache
from goldennoise.data.npd_store import NPD_FORMAT, iter_shards, write_index
from goldennoise.data.shards import complete_shard, shard_path
from goldennoise.engine import EngineSettings, Item, RunStats, run_job
from goldennoise.engine.run import shard_count
from goldennoise.sampling import Schedule, noise_for_seeds, redenoise, sample


@torch.inference_mode()
def encode_unique(backbone, prompts: list[str], batch_size: int) -> tuple[dict[str, int], PromptEmbeds, PromptEmbeds]:
    """Encode each distinct prompt once; a shard of prompts × seeds repeats each prompt.

    Returns:
        ``(row of each prompt, cond, uncond)``, embeddings (P, L, D) for the P distinct prompts.
    """
    unique = list(dict.fromkeys(prompts))
    parts = [backbone.encode_prompt(unique[i:i + batch_size]) for i in range(0, len(unique), batch_size)]
    cond, uncond = parts[0]
    for c, u in parts[1:]:
        cond, uncond = cond.cat(c), uncond.cat(u)
    return {p: i for i, p in enumerate(unique)}, cond, uncond


@torch.inference_mode()
def collect_batch(backbone, items: list[Item], config: CollectConfig, schedule: Schedule,
                  scorers: dict[str, ScoreFn], latent_shape: tuple[int, int, int], text=None) -> dict:
    """Re-denoise, sample both images and score them for one batch of B pairs.

    Args:
        backbone: the frozen model.
        items: B ``(prompt_id, prompt, seed)``.
        config: run settings.
        schedule: the backbone's grid (one per run; DDIM, or σ levels on flow backbones).
        scorers: score functions by name.
        latent_shape: ``(C, h, w)``.
        text: :func:`encode_unique` of prompts covering the batch; ``None`` encodes the batch's prompts.

    Returns:
        ``{"noise", "target"}`` (B, C, h, w) float32 on the CPU and ``"scores"`` ``{name: (random (B,), golden (B,))}``.
    """
    prompts, seeds = [prompt for _, prompt, _ in items], [seed for _, _, seed in items]
    noise = noise_for_seeds(seeds, latent_shape, dtype=parse_dtype(config.noise_dtype))
    x = noise.to(backbone.device, torch.float32)  # (B, C, h, w); sampler arithmetic in fp32
    rows, cond_all, uncond_all = text or encode_unique(backbone, prompts, len(prompts))
    index = torch.tensor([rows[p] for p in prompts], device=cond_all.embeds.device)
    cond, uncond = cond_all.take(index), uncond_all.take(index)  # (B, L, D) each
    golden = redenoise(backbone.denoiser(cond, uncond, config.denoise_guidance),
                            backbone.denoiser(cond, uncond, config.inversion_guidance),
                            x, schedule, config.convention, config.repeats)  # (B, C, h, w)
    both = backbone.denoiser(cond.cat(cond), uncond.cat(uncond), config.denoise_guidance)
    images = backbone.decode(sample(both, torch.cat([x, golden]), schedule))  # (2B, 3, H, W)
    b = len(items)
    scores = {}
    for name, score in scorers.items():
        values = score(images, prompts + prompts).float().cpu()  # (2B,)
        scores[name] = (values[:b], values[b:])
    return {"noise": x.cpu(), "target": golden.float().cpu(), "scores": scores}


class CollectionJob:
    """An NPD collection as a job of the generation engine (see the module docstring).

    Args:
        config: the collection.
    """

    format = NPD_FORMAT

    def __init__(self, config: CollectConfig) -> None:
        self.config = config
        self.backbone = None
        self.text: tuple[dict[str, int], PromptEmbeds, PromptEmbeds] | None = None

    def digest(self, items: list[Item]) -> str:
        """The collection-config hash (:func:`~goldennoise.collection.config.config_hash`)."""
        return config_hash(self.config, items)

    def manifest(self) -> dict[str, Any]:
        """The collection's settings (``collection.json``'s ``config``)."""
        return asdict(self.config)

    def shard_meta(self) -> dict[str, str]:
        """Every shard records the backbone it was collected with."""
        return {"backbone": self.config.backbone}

    def setup(self, device: torch.device) -> None:
        """Load the backbone and the scorers (a missing weight fails here, before any shard)."""
        c = self.config
        if self.backbone is not None and self.backbone.device == device:
            return  # set up already (a job object reused for another run)
        self.backbone = load_backbone(c.backbone, dtype=c.backbone_dtype, device=device)
        self.scorers = build_scorers(c.scorers)
        self.latent_shape = self.backbone.latent_shape(c.image_size, c.image_size)
        self.schedule = self.backbone.schedule(c.num_steps, self.latent_shape[1:])  # a fresh scheduler per run

    def begin_shard(self, items: list[Item]) -> None:
        """Encode the shard's distinct prompts once (a shard of prompts × seeds repeats each prompt)."""
        self.text = encode_unique(self.backbone, [prompt for _, prompt, _ in items], self.config.batch_size)

    def run_batch(self, items: list[Item], first_index: int) -> tuple[dict[str, torch.Tensor], list[dict]]:
        """Noises, golden targets, seeds and indices (B rows) and one record per pair with both images' scores."""
        out = collect_batch(self.backbone, items, self.config, self.schedule, self.scorers, self.latent_shape,
                            self.text)
        storage = parse_dtype(self.config.storage_dtype)
        records = []
        for j, (prompt_id, prompt, seed) in enumerate(items):
            scores = {name: [float(r[j]), float(g[j])] for name, (r, g) in out["scores"].items()}
            records.append({"index": first_index + j, "seed": seed, "prompt": prompt, "prompt_id": prompt_id,
                            "scores": scores})
        tensors = {"noise": out["noise"].to(storage), "target": out["target"].to(storage),
                   "seed": torch.tensor([r["seed"] for r in records], dtype=torch.int64),
                   "index": torch.tensor([r["index"] for r in records], dtype=torch.int64)}
        return tensors, records

    def finalize(self, output_dir: Path, stats: RunStats) -> dict:
        """Write ``index.parquet``, the embedding cache and ``summary.json``; print and (optionally) log the summary."""
        config = self.config
        shards = list(iter_shards(output_dir))
        records = [r for s in shards for r in s.records]
        write_index(output_dir, shards)
        prompts = [r["prompt"] for r in records]
        if config.cache_embeddings and usable_cache(cache_dir(output_dir, config.backbone), prompts,
                                                   text_signature(config.backbone)) is None:
            build_embedding_cache(output_dir, config.backbone, self.backbone, prompts, batch_size=config.batch_size)
        summary = summarize(records, config, stats.produced, stats.seconds)
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        print("NPD collection summary: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
        if config.mlflow_tracking_uri:
            log_to_mlflow(config, summary)
        return summary


def summarize(records: list[dict], config: CollectConfig, collected: int, seconds: float) -> dict:
    """Count, kept fraction at the configured margin, mean scores and this run's pairs/s."""
    column = config.filter_column
    kept = sum(r["scores"][column][1] - r["scores"][column][0] > config.margin for r in records)
    summary = {"count": len(records), "filter_metric": column, "margin": config.margin,
               "kept": kept, "kept_fraction": kept / max(len(records), 1),
               "collected_this_run": collected, "pairs_per_s": collected / seconds if seconds else None}
    for name in records[0]["scores"] if records else []:
        summary[f"mean/{name}/random"] = sum(r["scores"][name][0] for r in records) / len(records)
        summary[f"mean/{name}/golden"] = sum(r["scores"][name][1] for r in records) / len(records)
    return summary


def log_to_mlflow(config: CollectConfig, summary: dict) -> None:
    """Log the settings as params and the numeric summary as metrics of one MLflow run."""
    import mlflow

    from goldennoise.mlflow_ui import mark_experiment

    mlflow.set_tracking_uri(config.mlflow_tracking_uri)
    experiment = mlflow.set_experiment(config.mlflow_experiment)
    mark_experiment(mlflow.MlflowClient(config.mlflow_tracking_uri), experiment.experiment_id)
    with mlflow.start_run(run_name=f"collect-{Path(config.output_dir).name}"):
        mlflow.log_params({k: str(v)[:500] for k, v in asdict(config).items()})
        mlflow.log_metrics({k.replace("/", "."): float(v) for k, v in summary.items()
                            if isinstance(v, int | float) and not isinstance(v, bool)})


def collect(config: CollectConfig) -> dict | None:
    """Run a collection on ``config.devices`` processes (Lightning Fabric; gloo on CPU) and return the summary."""
    settings = EngineSettings(output_dir=config.output_dir, batch_size=config.batch_size,
                              shard_size=config.shard_size, accelerator=config.accelerator, devices=config.devices,
                              strategy=config.strategy, progress=config.progress, unit="pair", description="collect")
    return run_job(CollectionJob(config), build_items(config), settings)


def is_collected(config: CollectConfig) -> bool:
    """Whether ``config.output_dir`` holds this whole collection.

    That is: every shard intact and of these settings and prompts × seeds (content hashes checked), and the summary
    that the last step of a run writes.
    """
    items = build_items(config)
    digest, folder = config_hash(config, items), Path(config.output_dir)
    shards = range(shard_count(len(items), config.shard_size))
    return (folder / "summary.json").is_file() and all(
        complete_shard(NPD_FORMAT, shard_path(folder, k), digest) for k in shards)
