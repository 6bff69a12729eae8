"""NPD collection: NPNet's re-denoise sampling over prompts × seeds, batched, sharded, resumable and multi-process.

Per pair (Zhou et al., 2024, arXiv 2411.09502, Sec. 3.1; ``docs/npnet.md`` §2.2), in batches:

1. x_T: per-seed CPU noise (:func:`~goldennoise.sampling.noise_for_seeds`, fp16 for official parity);
2. x'_T = :func:`~goldennoise.sampling.redenoise_step` (ω_l denoise, ω_w inversion, official or textbook levels);
3. both images — from x_T and from x'_T — sampled together in one 2B batch of N-step DDIM at ω_l and decoded;
4. each configured score of both images; the pair is stored with every score, whatever they are (docs/npnet.md §2.3).

The (prompt, seed) index is cut into fixed shards of ``shard_size`` pairs; rank r of W processes collects shards
r, r+W, ... and writes each with one atomic rename (:func:`~goldennoise.data.npd_store.write_shard`). A rerun skips
complete shards (their content hash checked; a damaged one is collected again), so SIGKILL at any moment followed by
the same command yields exactly the uninterrupted dataset. The shard layout does not depend on W, so a W-process run
writes the same files as a 1-process run. The run as a whole holds the folder's lock
(:class:`~goldennoise.data.folder_lock.FolderLock`, taken by rank 0): a second run on the same folder is refused, and
only the lock holder clears the temporaries a killed run left.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from goldennoise.backbones import PromptEmbeds, load_backbone, parse_dtype
from goldennoise.collection.config import CollectConfig, build_items, config_hash
from goldennoise.collection.scoring import ScoreFn, build_scorers
from goldennoise.data.folder_lock import FolderLock
from goldennoise.data.npd_embeddings import build_embedding_cache, cache_dir, usable_cache
from goldennoise.data.npd_store import (
    MANIFEST,
    NPDShardError,
    iter_shards,
    read_manifest,
    read_shard,
    remove_stale_temporaries,
    shard_files,
    shard_path,
    write_index,
    write_manifest,
    write_shard,
)
from goldennoise.sampling import DDIMSchedule, noise_for_seeds, redenoise_step, sample_ddim

Item = tuple[int, str, int]  # (prompt_id, prompt, seed)


def _rows(embeds: PromptEmbeds, rows: torch.Tensor) -> PromptEmbeds:
    return PromptEmbeds(embeds.embeds[rows], None if embeds.pooled is None else embeds.pooled[rows])


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
def collect_batch(backbone, items: list[Item], config: CollectConfig, schedule: DDIMSchedule,
                  scorers: dict[str, ScoreFn], latent_shape: tuple[int, int, int], text=None) -> dict:
    """Re-denoise, sample both images and score them for one batch of B pairs.

    Args:
        backbone: the frozen model.
        items: B ``(prompt_id, prompt, seed)``.
        config: run settings.
        schedule: the DDIM grid (one per run).
        scorers: score functions by name.
        latent_shape: ``(C, h, w)``.
        text: :func:`encode_unique` of prompts covering the batch; ``None`` encodes the batch's prompts.

    Returns:
        ``{"noise", "target"}`` (B, C, h, w) float32 on the CPU and ``"scores"`` ``{name: (random (B,), golden (B,))}``.
    """
    prompts, seeds = [prompt for _, prompt, _ in items], [seed for _, _, seed in items]
    noise = noise_for_seeds(seeds, latent_shape, dtype=parse_dtype(config.noise_dtype))
    x = noise.to(backbone.device, torch.float32)  # (B, C, h, w); DDIM arithmetic in fp32
    rows, cond_all, uncond_all = text or encode_unique(backbone, prompts, len(prompts))
    index = torch.tensor([rows[p] for p in prompts], device=cond_all.embeds.device)
    cond, uncond = _rows(cond_all, index), _rows(uncond_all, index)  # (B, L, D) each
    golden = redenoise_step(backbone.denoiser(cond, uncond, config.denoise_guidance),
                            backbone.denoiser(cond, uncond, config.inversion_guidance),
                            x, schedule, config.convention, config.repeats)  # (B, C, h, w)
    both = backbone.denoiser(cond.cat(cond), uncond.cat(uncond), config.denoise_guidance)
    images = backbone.decode(sample_ddim(both, torch.cat([x, golden]), schedule))  # (2B, 3, H, W)
    b = len(items)
    scores = {}
    for name, score in scorers.items():
        values = score(images, prompts + prompts).float().cpu()  # (2B,)
        scores[name] = (values[:b], values[b:])
    return {"noise": x.cpu(), "target": golden.float().cpu(), "scores": scores}


def collect_shard(backbone, items: list[Item], first_index: int, config: CollectConfig, schedule: DDIMSchedule,
                  scorers: dict[str, ScoreFn], latent_shape: tuple[int, int, int], on_batch=None) -> tuple[dict, list]:
    """Collect one shard's pairs in batches; returns its tensors and records (format: ``data/npd_store.py``)."""
    noises, targets, records = [], [], []
    storage = parse_dtype(config.storage_dtype)
    text = encode_unique(backbone, [prompt for _, prompt, _ in items], config.batch_size)
    for start in range(0, len(items), config.batch_size):
        batch = items[start:start + config.batch_size]
        out = collect_batch(backbone, batch, config, schedule, scorers, latent_shape, text)
        noises.append(out["noise"].to(storage))
        targets.append(out["target"].to(storage))
        for j, (prompt_id, prompt, seed) in enumerate(batch):
            scores = {name: [float(r[j]), float(g[j])] for name, (r, g) in out["scores"].items()}
            records.append({"index": first_index + start + j, "seed": seed, "prompt": prompt,
                            "prompt_id": prompt_id, "scores": scores})
        if on_batch is not None:
            on_batch(len(batch))
    tensors = {"noise": torch.cat(noises), "target": torch.cat(targets),
               "seed": torch.tensor([r["seed"] for r in records], dtype=torch.int64),
               "index": torch.tensor([r["index"] for r in records], dtype=torch.int64)}
    return tensors, records


def shard_is_complete(path: Path, digest: str) -> bool:
    """Whether ``path`` is an intact shard of this collection, content hash checked (a bad one is reported)."""
    if not path.is_file():
        return False
    try:
        shard = read_shard(path)
    except NPDShardError as err:
        warnings.warn(f"{err} It will be collected again.", stacklevel=2)
        return False
    return shard.config_hash == digest


def prepare_output(config: CollectConfig, digest: str, num_pairs: int) -> None:
    """Check the dataset folder for this collection, (re)write its manifest, clear temporaries of killed runs.

    Call it holding the folder's lock. A folder without shards is reused whatever its ``collection.json`` says: a
    run that failed before its first shard (a bad backbone, dtype, steps, scorer or prompt) leaves nothing to
    protect, so the corrected rerun proceeds.
    """
    out = Path(config.output_dir)
    manifest, shards = read_manifest(out), shard_files(out)
    if manifest is None and shards:
        raise ValueError(f"{out} holds shards of no goldennoise collection (no {MANIFEST}); choose a new "
                         "output_dir.")
    if manifest is not None and manifest["config_hash"] != digest:
        if shards:
            raise ValueError(f"{out} holds another collection ({len(shards)} shards, config hash "
                             f"{manifest['config_hash']}; this one {digest}); choose a new output_dir or restore the "
                             "settings it was collected with.")
        manifest = None
    if manifest is None:
        write_manifest(out, digest, num_pairs, asdict(config))
    remove_stale_temporaries(out)


def _rank_shards(num_pairs: int, config: CollectConfig, rank: int, world: int) -> list[int]:
    num_shards = -(-num_pairs // config.shard_size)
    return list(range(rank, num_shards, world))


def collect_rank(config: CollectConfig, rank: int, world: int, device: torch.device | str,
                 barrier=lambda: None) -> dict | None:
    """Collect this rank's missing shards; rank 0 then writes the index, embeddings and summary.

    Args:
        config: the run settings.
        rank: this process's rank.
        world: number of processes.
        device: where the backbone and scorers run.
        barrier: synchronises the ranks (no-op for one process).

    Returns:
        The summary on rank 0, ``None`` elsewhere.
    """
    items = build_items(config)
    digest = config_hash(config, items)
    with FolderLock(config.output_dir) if rank == 0 else nullcontext():  # the run holds the lock through rank 0
        backbone = load_backbone(config.backbone, dtype=config.backbone_dtype, device=device)
        if rank == 0:
            prepare_output(config, digest, len(items))
        barrier()
        todo = [k for k in _rank_shards(len(items), config, rank, world)
                if not shard_is_complete(shard_path(config.output_dir, k), digest)]
        collected, seconds = collect_shards(backbone, items, todo, digest, config, rank)
        barrier()
        collected, seconds = _sum_over_ranks(collected, seconds, world)
        if rank != 0:
            return None
        return finalize(config, backbone, len(items), collected, seconds)


def collect_shards(backbone, items: list[Item], todo: list[int], digest: str, config: CollectConfig,
                   rank: int) -> tuple[int, float]:
    """Collect and write the shards ``todo``; returns the pairs collected and the seconds it took."""
    if not todo:
        return 0, 0.0
    scorers = build_scorers(config.scorers)
    schedule = backbone.ddim_schedule(config.num_steps)  # a fresh scheduler per run
    latent_shape = backbone.latent_shape(config.image_size, config.image_size)
    pairs = sum(len(items[k * config.shard_size:(k + 1) * config.shard_size]) for k in todo)
    bar = tqdm(total=pairs, unit="pair", desc=f"collect rank {rank}", disable=not config.progress or rank != 0,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]")
    start = time.perf_counter()
    for k in todo:
        first = k * config.shard_size
        tensors, records = collect_shard(backbone, items[first:first + config.shard_size], first, config,
                                         schedule, scorers, latent_shape, on_batch=bar.update)
        write_shard(shard_path(config.output_dir, k), tensors, records, config.backbone, digest)
    bar.close()
    return pairs, time.perf_counter() - start


def _sum_over_ranks(collected: int, seconds: float, world: int) -> tuple[int, float]:
    """Pairs collected by all ranks in this run and the slowest rank's time (a no-op for one process)."""
    if world == 1 or not torch.distributed.is_initialized():
        return collected, seconds
    count, slowest = torch.tensor([collected], dtype=torch.float64), torch.tensor([seconds], dtype=torch.float64)
    torch.distributed.all_reduce(count)
    torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
    return int(count.item()), float(slowest.item())


def finalize(config: CollectConfig, backbone, expected: int, collected: int, seconds: float) -> dict:
    """Write ``index.parquet``, the embedding cache and ``summary.json``; print and (optionally) log the summary."""
    shards = list(iter_shards(config.output_dir))
    records = [r for s in shards for r in s.records]
    if len(records) != expected:
        raise RuntimeError(f"{config.output_dir} holds {len(records)} pairs where {expected} were expected.")
    write_index(config.output_dir, shards)
    prompts = [r["prompt"] for r in records]
    if config.cache_embeddings and usable_cache(cache_dir(config.output_dir, config.backbone), prompts) is None:
        build_embedding_cache(config.output_dir, config.backbone, backbone, prompts, batch_size=config.batch_size)
    summary = summarize(records, config, collected, seconds)
    (Path(config.output_dir) / "summary.json").write_text(json.dumps(summary, indent=1))
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

    mlflow.set_tracking_uri(config.mlflow_tracking_uri)
    mlflow.set_experiment(config.mlflow_experiment)
    with mlflow.start_run(run_name=f"collect-{Path(config.output_dir).name}"):
        mlflow.log_params({k: str(v)[:500] for k, v in asdict(config).items()})
        mlflow.log_metrics({k.replace("/", "."): float(v) for k, v in summary.items()
                            if isinstance(v, int | float) and not isinstance(v, bool)})


def _fabric_main(fabric, config: CollectConfig) -> dict | None:
    return collect_rank(config, fabric.global_rank, fabric.world_size, fabric.device, fabric.barrier)


def collect(config: CollectConfig) -> dict | None:
    """Run a collection on ``config.devices`` processes (Lightning Fabric; gloo on CPU) and return the summary."""
    if config.devices == 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        device = torch.device("cpu") if config.accelerator == "cpu" else _auto_device(config.accelerator)
        return collect_rank(config, 0, 1, device)
    from lightning.fabric import Fabric

    strategy = config.strategy
    if strategy == "auto":
        strategy = "ddp" if "LOCAL_RANK" in os.environ else "ddp_spawn"
    fabric = Fabric(accelerator=config.accelerator, devices=config.devices, strategy=strategy)
    return fabric.launch(_fabric_main, config)


def _auto_device(accelerator: str) -> torch.device:
    if accelerator != "auto":
        return torch.device(accelerator)
    found = torch.accelerator.current_accelerator(check_available=True)
    return found if found is not None else torch.device("cpu")
