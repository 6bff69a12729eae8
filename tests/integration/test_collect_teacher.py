"""``python -m goldennoise collect-teacher`` end to end: SIGKILL mid-run, then the same command, gives exactly the
records of an uninterrupted run (slow: two interpreter starts; the in-process crash-resume test is in
tests/component/test_teacher_collect.py)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from goldennoise.cli import main
from goldennoise.data.shards import iter_shards, load_shard_tensors, shard_dir
from goldennoise.data.teacher_store import TEACHER_FORMAT

CONFIG = {"backbone": "tiny-sd", "prompts": ["a red cube", "a blue ball", "a gray owl"], "seeds": "0-1",
          "num_steps": 3, "image_size": 16, "guidance_scale": 3.0, "guidance_scale_max": 5.0, "pag_scale": 1.0,
          "batch_size": 2, "shard_size": 2, "scorers": [{"metric": "hpsv2", "model": "tiny"}],
          "accelerator": "cpu", "progress": False}
NUM_SHARDS = 3


def write_config(folder: Path) -> Path:
    path = folder / "teacher.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(folder / "teacher")}))
    return path


def records(folder: Path) -> dict:
    out = {}
    for shard in iter_shards(TEACHER_FORMAT, folder):
        tensors = load_shard_tensors(shard.path)
        for row, record in enumerate(shard.records):
            out[record["index"]] = (tensors["noise"][row], tensors["latent"][row], record, shard.config_hash)
    return out


@pytest.mark.slow
def test_killed_teacher_collection_resumes_to_the_uninterrupted_records(tmp_path):
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    main(["collect-teacher", "--config", str(write_config(reference_dir))])
    config = write_config(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "goldennoise", "collect-teacher", "--config", str(config)],
                               env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, shards = time.monotonic() + 300, shard_dir(tmp_path / "teacher")
    while process.poll() is None and time.monotonic() < deadline:
        if shards.is_dir() and list(shards.glob("shard-*.safetensors")):
            break
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list(shards.glob("shard-*.safetensors")))
    assert 1 <= written < NUM_SHARDS, "the run should have been killed mid-collection"
    with pytest.warns(UserWarning, match="Taking over the stale lock"):
        summary = main(["collect-teacher", "--config", str(config)])
    assert summary["count"] == 6 and summary["collected_this_run"] == 6 - 2 * written
    resumed, reference = records(tmp_path / "teacher"), records(reference_dir / "teacher")
    assert resumed.keys() == reference.keys()
    for index, (noise, latent, record, digest) in resumed.items():
        ref = reference[index]
        assert torch.equal(noise, ref[0]) and torch.equal(latent, ref[1]) and record == ref[2] and digest == ref[3]
