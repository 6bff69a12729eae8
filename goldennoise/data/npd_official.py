"""Import the official NPD layout (``docs/npnet.md`` §2.4, ``docs/npd_format.md`` §8) into goldennoise shards.

The official collection (``training/dataset_collection.py`` of xie-lab-ml/Golden-Noise-for-Diffusion-Models) writes
``{index}_{seed}.npz`` per pair — ``arr_0`` source noise fp16 [1, 4, 128, 128], ``arr_1`` target noise, ``arr_2``
the 0-d index — and appends ``{index, seed, caption, original_score_list, optimized_score_list}`` lines to a JSONL
(named ``.json``). Scores are HPSv2 v2.1 (one entry per list; extra entries get ``<name>_<k>`` columns). Pairs are
imported unfiltered; the margin filter is the DataModule's. The import writes the same checked format as a collection
(shards with content hashes, a ``collection.json`` listing them) while holding the folder's lock.
"""

from __future__ import annotations

import ast
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from goldennoise.data.folder_lock import FolderLock
from goldennoise.data.npd_store import read_shard, shard_path, write_index, write_manifest, write_shard

OFFICIAL_BACKBONE = "stabilityai/stable-diffusion-xl-base-1.0"


def read_official_scores(path: str | Path) -> list[dict]:
    """Parse the official score JSONL (JSON, or the Python-literal lines the official readers ``eval``)."""
    path, rows = Path(path), []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            try:
                row = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                raise ValueError(f"{path}, line {number}: neither JSON nor a Python literal.") from None
        missing = {"index", "seed", "caption", "original_score_list", "optimized_score_list"} - set(row)
        if missing:
            raise ValueError(f"{path}, line {number}: missing {sorted(missing)}.")
        rows.append(row)
    return rows


def _scores(row: dict, metric: str) -> dict[str, list[float]]:
    pairs = zip(row["original_score_list"], row["optimized_score_list"], strict=True)
    return {(metric if k == 0 else f"{metric}_{k}"): [float(r), float(g)] for k, (r, g) in enumerate(pairs)}


def _load_npz(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(path) as data:
        source, target = torch.from_numpy(data["arr_0"]), torch.from_numpy(data["arr_1"])
    return source.reshape(source.shape[-3:]), target.reshape(target.shape[-3:])  # (C, h, w) each


def import_official(npz_dir: str | Path, scores_jsonl: str | Path, output_dir: str | Path,
                    metric: str = "hpsv2", backbone: str = OFFICIAL_BACKBONE, shard_size: int = 1024) -> int:
    """Convert an official NPD folder + score JSONL into a goldennoise dataset folder.

    Args:
        npz_dir: folder of ``{index}_{seed}.npz`` files.
        scores_jsonl: the official score JSONL (``SDXL_step_10_training.json``).
        output_dir: the new dataset folder.
        metric: name given to the first score of each list (official: HPSv2 v2.1).
        backbone: backbone id recorded with the pairs (its text encoders give the embedding cache).
        shard_size: pairs per shard.

    Returns:
        The number of pairs imported (JSONL lines whose npz exists; missing ones are reported).
    """
    rows = sorted(read_official_scores(scores_jsonl), key=lambda r: (int(r["index"]), int(r["seed"])))
    present = [r for r in rows if (Path(npz_dir) / f"{r['index']}_{r['seed']}.npz").is_file()]
    if len(present) < len(rows):
        warnings.warn(f"{len(rows) - len(present)} score lines of {scores_jsonl} have no npz in {npz_dir}.",
                      stacklevel=2)
    digest = "official-" + hashlib.sha256(Path(scores_jsonl).read_bytes()).hexdigest()[:16]
    source = {"source": "official", "npz_dir": str(npz_dir), "scores_jsonl": str(scores_jsonl), "metric": metric,
              "backbone": backbone, "shard_size": shard_size}
    chunks = [present[i:i + shard_size] for i in range(0, len(present), shard_size)]
    with FolderLock(output_dir):
        write_manifest(output_dir, digest, len(present), source)
        shards = [_import_shard(npz_dir, chunk, k, output_dir, metric, backbone, digest)
                  for k, chunk in enumerate(chunks)]
        write_index(output_dir, [read_shard(p, verify=False) for p in shards])
    return len(present)


def _import_shard(npz_dir: str | Path, chunk: list[dict], k: int, output_dir: str | Path, metric: str, backbone: str,
                  digest: str) -> Path:
    """Write shard ``k`` from the official score rows ``chunk`` and their npz files."""
    pairs = [_load_npz(Path(npz_dir) / f"{r['index']}_{r['seed']}.npz") for r in chunk]
    records = [{"index": int(r["index"]), "seed": int(r["seed"]), "prompt": r["caption"],
                "prompt_id": int(r["index"]), "scores": _scores(r, metric)} for r in chunk]
    tensors = {"noise": torch.stack([p[0] for p in pairs]), "target": torch.stack([p[1] for p in pairs]),
               "seed": torch.tensor([r["seed"] for r in records], dtype=torch.int64),
               "index": torch.tensor([r["index"] for r in records], dtype=torch.int64)}
    return write_shard(shard_path(output_dir, k), tensors, records, backbone, digest)
