"""``goldennoise collect`` end to end: SIGKILL mid-run then rerun (taking over the killed run's lock) gives the
uninterrupted dataset; 2 processes (rank 0 holding the lock for the run) = 1."""

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
from goldennoise.data.npd_store import iter_shards, load_shard_tensors, shard_dir

CONFIG = {
    "backbone": "tiny-sd", "prompts": ["a red cube", "a blue ball", "a gray owl"], "seeds": "0-1",
    "num_steps": 2, "image_size": 16, "batch_size": 2, "shard_size": 2, "storage_dtype": "float32",
    "scorers": [{"metric": "hpsv2", "model": "tiny"}], "accelerator": "cpu", "progress": False,
}
NUM_PAIRS, NUM_SHARDS = 6, 3


def write_config(folder: Path, **overrides) -> Path:
    path = folder / f"{folder.name}.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(folder / "npd"), **overrides}))
    return path


def dataset(folder: Path) -> dict[tuple, tuple]:
    """(index, seed, prompt) → (noise, target, scores) of every stored pair."""
    pairs = {}
    for shard in iter_shards(folder):
        tensors = load_shard_tensors(shard.path)
        for row, record in enumerate(shard.records):
            key = (record["index"], record["seed"], record["prompt"])
            assert key not in pairs, f"duplicate pair {key}"
            pairs[key] = (tensors["noise"][row], tensors["target"][row], record["scores"], shard.config_hash)
    return pairs


def launch(config: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "goldennoise", "collect", "--config", str(config), *extra],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted single-process collection, in this process."""
    folder = tmp_path_factory.mktemp("reference")
    summary = main(["collect", "--config", str(write_config(folder))])
    assert summary["count"] == NUM_PAIRS
    return dataset(folder / "npd")


def test_killed_collection_resumes_to_the_uninterrupted_dataset(tmp_path, reference):
    config = write_config(tmp_path)
    process = launch(config)
    deadline, shards = time.monotonic() + 300, shard_dir(tmp_path / "npd")
    while process.poll() is None and time.monotonic() < deadline:
        if shards.is_dir() and list(shards.glob("shard-*.safetensors")):  # a complete shard, not a .tmp
            break
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list(shard_dir(tmp_path / "npd").glob("shard-*.safetensors")))
    assert 1 <= written < NUM_SHARDS, "the run should have been killed mid-collection"
    (shard_dir(tmp_path / "npd") / "shard-000002.safetensors.4242.tmp").write_bytes(b"half a shard")  # torn write
    with pytest.warns(UserWarning, match=rf"Taking over the stale lock .*\(pid {process.pid} on host"):
        summary = main(["collect", "--config", str(config)])
    assert not (tmp_path / "npd" / ".goldennoise.lock").exists()
    assert summary["count"] == NUM_PAIRS and summary["collected_this_run"] == NUM_PAIRS - 2 * written
    assert not list(shard_dir(tmp_path / "npd").glob("*.tmp"))
    resumed = dataset(tmp_path / "npd")
    assert resumed.keys() == reference.keys()
    for key, (noise, target, scores, digest) in resumed.items():
        ref = reference[key]
        assert torch.equal(noise, ref[0]) and torch.equal(target, ref[1]) and scores == ref[2] and digest == ref[3]


@pytest.mark.slow  # spawns two gloo processes: half a minute on 2 cores
def test_two_process_collection_equals_one_process_as_a_set(tmp_path, reference):
    process = launch(write_config(tmp_path), "--devices", "2")
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output.decode()[-3000:]
    assert b"count=6" in output
    two = dataset(tmp_path / "npd")
    assert two.keys() == reference.keys()
    for key, (noise, target, scores, digest) in two.items():
        ref = reference[key]
        assert torch.equal(noise, ref[0]) and digest == ref[3]
        torch.testing.assert_close(target, ref[1], atol=1e-5, rtol=1e-5)  # thread counts may differ per rank
        for name, values in scores.items():
            assert values == pytest.approx(ref[2][name], abs=1e-4)


def test_a_different_config_refuses_an_existing_dataset(tmp_path, reference, capsys):
    folder = tmp_path / "npd"
    main(["collect", "--config", str(write_config(tmp_path)), "--prompts", "[a red cube]", "--seeds", "0"])
    with pytest.raises(SystemExit) as info:  # a user error: one line, exit code 2
        main(["collect", "--config", str(write_config(tmp_path)), "--prompts", "[a red cube]", "--seeds", "0",
              "--convention", "textbook"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "holds another run" in err
    assert 'settings that differ: convention ("' in err and '→ "textbook")' in err  # names the change
    assert len(list(iter_shards(folder))) == 1


@pytest.mark.parametrize("name", ["tiny_sdxl", "sdxl", "shapes"])
def test_shipped_npd_configs_parse(name):
    from goldennoise.collection.cli import parse_config

    config = parse_config(["--config", str(Path(__file__).parents[2] / "configs" / "npd" / f"{name}.yaml")])
    assert config.scorers and config.num_steps == (4 if name == "tiny_sdxl" else 10)
    assert config.scorers[0].metric == ("shapes_alignment" if name == "shapes" else "hpsv2")
