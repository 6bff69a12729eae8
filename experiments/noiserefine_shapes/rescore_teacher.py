"""Re-read stored teacher latents with the current (calibrated) shapes reader, into a new teacher folder.

Several teacher folders of one setting (e.g. a first collection and its extension on more scenes) can be joined into
one: their shards are renumbered in order under the first folder's digest, and the text-embedding cache is left to
be rebuilt by the data module.

The teacher records of this experiment were scored when they were collected; if that was before the shapes reader's
calibration (``experiments/shapes_metric``), their ``shapes_alignment`` is the old reader's. This decodes every
stored guided latent with the backbone's VAE, scores it with the scorers of the run's own config (the registered
metric, today's reader), and writes a copy of the folder whose records carry the new score under the same column and
the stored one under ``<column>_as_collected``. Tensors, seeds, shard ids and the run's digest are unchanged, so the
copy reads like the original; filter it with ``TextImagePairDataModule(min_score=..., filter_metric=...)``.

    python experiments/noiserefine_shapes/rescore_teacher.py <teacher folder> [<teacher folder> ...] <new folder>
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
from goldennoise.data.shards import iter_shards, load_shard_tensors, read_manifest, shard_path, write_shard
from goldennoise.data.teacher_store import TEACHER_FORMAT


def teacher_config(manifest: dict) -> TeacherConfig:
    """The collection's config as stored in ``teacher.json``."""
    fields = TeacherConfig.__dataclass_fields__
    return TeacherConfig(**{key: value for key, value in manifest["config"].items() if key in fields})


@torch.inference_mode()
def rescore(sources: list[Path], target: Path, batch_size: int) -> dict:
    """Write the rescored (and joined) copy of ``sources`` to ``target``; return the score counts."""
    manifests = [read_manifest(TEACHER_FORMAT, source) for source in sources]
    config = teacher_config(manifests[0])
    backbone = load_backbone(config.backbone, dtype=config.backbone_dtype)
    scorers = build_scorers(config.scorers)
    target.mkdir(parents=True, exist_ok=False)
    if len(sources) == 1 and (sources[0] / "prompt_embeds").is_dir():
        shutil.copytree(sources[0] / "prompt_embeds", target / "prompt_embeds")
    digest, old, new, written = manifests[0]["config_hash"], Counter(), Counter(), 0
    for source in sources:
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
            write_shard(TEACHER_FORMAT, shard_path(target, written), tensors, records, digest, shard.meta)
            written += 1
    num_items = sum(int(m["num_items"]) for m in manifests)
    if -(-num_items // int(config.shard_size)) != written:
        raise ValueError("Only folders whose shards are all full (but the last folder's last) can be joined.")
    note = {"rescored_from": [str(source) for source in sources],
            "rescored_with": "the current reader of each configured scorer", "num_items": num_items}
    write_json_atomic(target / TEACHER_FORMAT.manifest, {**manifests[0], **note})
    return {"as_collected": dict(sorted(old.items())), "rescored": dict(sorted(new.items()))}


def main() -> None:
    """Rescore and print the distribution of the stored and the new scores."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", help="the teacher folders, then the new folder")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    print(json.dumps(rescore(args.folders[:-1], args.folders[-1], args.batch_size), indent=1))


if __name__ == "__main__":
    main()
