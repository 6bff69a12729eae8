"""NoiseRefine teacher data: guided DDIM samples of stored noises, as a job of the generation engine.

Per item ``(prompt, seed)`` (Ahn et al., 2024, arXiv 2412.03895, Sec. 4; ``docs/noiserefine_data.md``), in batches:

1. x_T: the seed's CPU noise (:func:`~goldennoise.sampling.noise_for_seeds`) in ``noise_dtype``, rounded to
   ``storage_dtype`` before the teacher samples from it, so the stored x_T is exactly the teacher's;
2. the sample's guidance scales: fixed, or drawn uniformly from the configured range by a generator seeded with the
   sample's seed (:func:`draw_scales`), so a record does not depend on its batch, shard or rank;
3. x_0 = N'-step DDIM (η = 0) from x_T with CFG, or CFG + PAG (:mod:`goldennoise.collection.guidance`);
4. the decoded image is scored by each configured metric; with ``min_score`` a record whose filter score is below
   it is not stored, and the shard header counts it as dropped.

The engine (:mod:`goldennoise.engine`) cuts the items into fixed, atomic, content-hashed shards: a rerun after
SIGKILL skips the complete ones and yields exactly the uninterrupted records; rank r of W takes shards r, r+W, ...
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goldennoise.backbones import load_backbone, parse_dtype
from goldennoise.collection.collect import encode_unique
from goldennoise.collection.config import build_items
from goldennoise.collection.guidance import check_pag_layers, guided_denoiser, perturbed_attention
from goldennoise.collection.scoring import build_scorers
from goldennoise.collection.teacher_config import TeacherConfig, teacher_hash
from goldennoise.data.integrity import write_json_atomic
from goldennoise.data.npd_embeddings import build_embedding_cache, cache_dir, text_signature, usable_cache
from goldennoise.data.shards import iter_shards, read_manifest
from goldennoise.data.teacher_store import TEACHER_FORMAT
from goldennoise.engine import EngineSettings, Item, RunStats, run_job
from goldennoise.sampling import noise_for_seeds, sample

CFG_STREAM, PAG_STREAM = 1, 2
"""Generator streams of the per-sample scale draws (the noise itself comes from ``torch`` seeded with the seed)."""


def draw_scales(seeds: list[int], low: float, high: float | None, stream: int) -> torch.Tensor:
    """Each sample's scale: ``low`` when ``high`` is unset, else uniform on ``[low, high]`` seeded by its seed (B,)."""
    if high is None:
        return torch.full((len(seeds),), float(low))
    return torch.tensor([np.random.default_rng([stream, s]).uniform(low, high) for s in seeds], dtype=torch.float32)


@torch.inference_mode()
def teacher_batch(backbone, items: list[Item], config: TeacherConfig, schedule, scorers: dict,
                  latent_shape: tuple[int, int, int], text=None) -> dict:
    """Guided samples and scores of one batch of B items.

    Returns:
        ``{"noise", "latent"}`` (B, C, h, w) float32 on the CPU, ``"cfg"``, ``"pag"`` (B,) and ``"scores"``
        ``{name: (B,)}``.
    """
    prompts, seeds = [prompt for _, prompt, _ in items], [seed for _, _, seed in items]
    noise = noise_for_seeds(seeds, latent_shape, dtype=parse_dtype(config.noise_dtype))
    stored = noise.to(parse_dtype(config.storage_dtype))  # the x_T the record keeps, exactly
    x = stored.to(backbone.device, torch.float32)  # (B, C, h, w); sampler arithmetic in fp32
    rows, cond_all, uncond_all = text or encode_unique(backbone, prompts, len(prompts))
    index = torch.tensor([rows[p] for p in prompts], device=cond_all.embeds.device)
    cond, uncond = cond_all.take(index), uncond_all.take(index)  # (B, L, D)
    cfg = draw_scales(seeds, config.guidance_scale, config.guidance_scale_max, CFG_STREAM)  # (B,)
    pag = draw_scales(seeds, config.pag_scale, config.pag_scale_max, PAG_STREAM) if config.pag_enabled else None
    denoiser = guided_denoiser(backbone, cond, uncond, cfg, pag)
    if pag is None:
        latent = sample(denoiser, x, schedule)
    else:
        with perturbed_attention(backbone.unet, config.pag_layers):
            latent = sample(denoiser, x, schedule)
    scores = {}
    if scorers:
        images = backbone.decode(latent)  # (B, 3, H, W)
        scores = {name: score(images, prompts).float().cpu() for name, score in scorers.items()}
    return {"noise": x.cpu(), "latent": latent.float().cpu(), "cfg": cfg,
            "pag": torch.zeros(len(items)) if pag is None else pag, "scores": scores}


class TeacherJob:
    """A teacher-data run as a job of the generation engine (see the module docstring).

    Args:
        config: the run.
    """

    format = TEACHER_FORMAT

    def __init__(self, config: TeacherConfig) -> None:
        self.config = config
        self.backbone = None
        self.text = None
        self.dropped = 0

    def digest(self, items: list[Item]) -> str:
        """The settings-and-items hash (:func:`~goldennoise.collection.teacher_config.teacher_hash`)."""
        return teacher_hash(self.config, items)

    def manifest(self) -> dict[str, Any]:
        """The run's settings (``teacher.json``'s ``config``)."""
        return asdict(self.config)

    def shard_meta(self) -> dict[str, str]:
        """The backbone and the count of the shard's items the filter dropped (read when the shard is written)."""
        return {"backbone": self.config.backbone, "dropped": str(self.dropped)}

    def setup(self, device: torch.device) -> None:
        """Load the backbone and the scorers, check the PAG layers (all before any shard)."""
        c = self.config
        if self.backbone is not None and self.backbone.device == device:
            return
        self.backbone = load_backbone(c.backbone, dtype=c.backbone_dtype, device=device)
        if c.pag_enabled:
            check_pag_layers(self.backbone.unet, c.pag_layers)
        self.scorers = build_scorers(c.scorers)
        self.latent_shape = self.backbone.latent_shape(c.image_size, c.image_size)
        self.schedule = self.backbone.schedule(c.num_steps, self.latent_shape[1:])

    def begin_shard(self, items: list[Item]) -> None:
        """Encode the shard's distinct prompts once; reset the shard's dropped count."""
        self.text = encode_unique(self.backbone, [prompt for _, prompt, _ in items], self.config.batch_size)
        self.dropped = 0

    def run_batch(self, items: list[Item], first_index: int) -> tuple[dict[str, torch.Tensor], list[dict]]:
        """The kept rows of one batch: tensors and one record per kept item."""
        c = self.config
        out = teacher_batch(self.backbone, items, c, self.schedule, self.scorers, self.latent_shape, self.text)
        keep = [j for j in range(len(items)) if self._kept(out["scores"], j)]
        self.dropped += len(items) - len(keep)
        storage = parse_dtype(c.storage_dtype)
        records = []
        for j in keep:
            prompt_id, prompt, seed = items[j]
            records.append({"index": first_index + j, "seed": seed, "prompt": prompt, "prompt_id": prompt_id,
                            "scores": {name: float(v[j]) for name, v in out["scores"].items()},
                            "guidance": {"cfg": float(out["cfg"][j]), "pag": float(out["pag"][j])}})
        rows = torch.tensor(keep, dtype=torch.int64)
        tensors = {"noise": out["noise"][rows].to(storage), "latent": out["latent"][rows].to(storage),
                   "cfg": out["cfg"][rows].float(), "pag": out["pag"][rows].float(),
                   "seed": torch.tensor([r["seed"] for r in records], dtype=torch.int64),
                   "index": torch.tensor([r["index"] for r in records], dtype=torch.int64)}
        return tensors, records

    def _kept(self, scores: dict[str, torch.Tensor], j: int) -> bool:
        c = self.config
        return c.min_score is None or float(scores[c.filter_column][j]) >= c.min_score

    def finalize(self, output_dir: Path, stats: RunStats) -> dict:
        """Count kept and dropped records into ``teacher.json``, cache the embeddings, write ``summary.json``."""
        c = self.config
        shards = list(iter_shards(TEACHER_FORMAT, output_dir))
        records = [r for s in shards for r in s.records]
        dropped = sum(int(s.meta.get("dropped", 0)) for s in shards)
        manifest = read_manifest(TEACHER_FORMAT, output_dir)
        write_json_atomic(output_dir / TEACHER_FORMAT.manifest, {**manifest, "kept": len(records), "dropped": dropped})
        prompts = [r["prompt"] for r in records]
        if c.cache_embeddings and prompts and usable_cache(cache_dir(output_dir, c.backbone), prompts,
                                                               text_signature(c.backbone)) is None:
            build_embedding_cache(output_dir, c.backbone, self.backbone, prompts, batch_size=c.batch_size,
                                  whole_conditioning=True)
        summary = summarize(records, dropped, stats)
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        print("Teacher data summary: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
        return summary


def summarize(records: list[dict], dropped: int, stats: RunStats) -> dict:
    """Kept and dropped counts, distinct prompts, mean scores and this run's samples/s."""
    summary = {"count": len(records), "dropped": dropped, "distinct_prompts": len({r["prompt"] for r in records}),
               "collected_this_run": stats.produced,
               "samples_per_s": stats.produced / stats.seconds if stats.seconds else None}
    for name in records[0]["scores"] if records else []:
        summary[f"mean/{name}"] = sum(r["scores"][name] for r in records) / len(records)
    return summary


def collect_teacher(config: TeacherConfig) -> dict | None:
    """Run a teacher-data collection on ``config.devices`` processes and return the summary (rank 0)."""
    settings = EngineSettings(output_dir=config.output_dir, batch_size=config.batch_size,
                              shard_size=config.shard_size, accelerator=config.accelerator, devices=config.devices,
                              strategy=config.strategy, progress=config.progress, unit="sample",
                              description="collect-teacher")
    return run_job(TeacherJob(config), build_items(config, config.distinct_seeds), settings)
