"""Re-read stored teacher latents with the current (calibrated) shapes reader, into a new teacher folder.

The teacher records of this experiment were scored when they were collected; if that was before the shapes reader's
calibration (``experiments/shapes_metric``), their ``shapes_alignment`` is the old reader's. This decodes every
stored guided latent with the backbone's VAE, scores it with the scorers of the run's own config (the registered
metric, today's reader), and writes a copy of the folder whose records carry the new score under the same column and
the stored one under ``<column>_as_collected``. Tensors, seeds, shard ids and the run's digest are unchanged, so the
copy reads like the original; filter it with ``TextImagePairDataModule(min_score=..., filter_metric=...)``.

    python experiments/noiserefine_shapes/rescore_teacher.py <teacher folder> <new folder>
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from pathlib import Path

import torch

from goldennoise.backbones import load_backbone
from goldennoise.collection.scoring import build_scorers
from goldennoise.collection.teacher_config import TeacherConfig
from goldennoise.data.integrity import write_json_atomic
from goldennoise.data.shards import iter_shards, load_shard_tensors, read_manifest, write_shard
from goldennoise.data.teacher_store import TEACHER_FORMAT


def teacher_config(manifest: dict) -> TeacherConfig:
    """The collection's config as stored in ``teacher.json``."""
    fields = TeacherConfig.__dataclass_fields__
    return TeacherConfig(**{key: value for key, value in manifest["config"].items() if key in fields})


@torch.inference_mode()
def rescore(source: Path, target: Path, batch_size: int) -> dict:
    """Write the rescored copy of ``source`` to ``target``; return the counts of the stored and the new scores."""
    manifest = read_manifest(TEACHER_FORMAT, source)
    config = teacher_config(manifest)
    backbone = load_backbone(config.backbone, dtype=config.backbone_dtype)
    scorers = build_scorers(config.scorers)
    target.mkdir(parents=True, exist_ok=False)
    if (source / "prompt_embeds").is_dir():
        shutil.copytree(source / "prompt_embeds", target / "prompt_embeds")
    old, new = Counter(), Counter()
    for shard in iter_shards(TEACHER_FORMAT, source):
        tensors = load_shard_tensors(shard.path)
        prompts = [r["prompt"] for r in shard.records]
        scores = {name: [] for name in scorers}
        for start in range(0, len(prompts), batch_size):
            images = backbone.decode(tensors["latent"][start:start + batch_size].float())  # (b, 3, H, W)
            for name, score in scorers.items():
                scores[name].append(score(images, prompts[start:start + batch_size]).float())
        records = []
        for row, record in enumerate(shard.records):
            rescored = {name: float(torch.cat(values)[row]) for name, values in scores.items()}
            for name, value in rescored.items():
                old[round(record["scores"][name], 4)] += 1
                new[round(value, 4)] += 1
            kept = {f"{name}_as_collected": v for name, v in record["scores"].items()}
            records.append({**record, "scores": {**rescored, **kept}})
        write_shard(TEACHER_FORMAT, target / "shards" / shard.path.name, tensors, records, shard.config_hash,
                    shard.meta)
    note = {"rescored_from": str(source), "rescored_with": "the current reader of each configured scorer"}
    write_json_atomic(target / TEACHER_FORMAT.manifest, {**manifest, **note})
    return {"as_collected": dict(sorted(old.items())), "rescored": dict(sorted(new.items()))}


def main() -> None:
    """Rescore and print the distribution of the stored and the new scores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the teacher folder")
    parser.add_argument("target", type=Path, help="the new folder")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    print(json.dumps(rescore(args.source, args.target, args.batch_size), indent=1))


if __name__ == "__main__":
    main()
