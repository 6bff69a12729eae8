"""NPD collection on tiny backbones: the stored target is a hand-computed re-denoise step (both conventions); a rerun
re-collects a damaged shard and rebuilds a damaged embedding cache; a failed run does not block the corrected one."""

import importlib
import json
from pathlib import Path

import pytest
import torch

from goldennoise.collection import CollectConfig, ScorerSpec, build_items, collect, config_hash, unet_evals_per_pair
from goldennoise.data.npd import NoisePairDataModule
from goldennoise.data.npd_embeddings import EmbeddingCache, cache_dir
from goldennoise.data.npd_store import (
    iter_shards,
    load_shard_tensors,
    read_manifest,
    read_shard,
    shard_path,
    write_manifest,
)
from goldennoise.sampling import noise_for_seeds

# docs/npnet.md §2.2 table, N = 10: official 701 → 801 (a 0.668, b 0.342); textbook 801 → 901 (a 0.619, b 0.385)
LEVELS = {"official": (701, 801, 0.668, 0.342), "textbook": (801, 901, 0.619, 0.385)}


def hand_redenoise(backbone, prompts, seeds, convention, w_l=5.5, w_w=1.0, size=16, num_steps=10):
    """x'_T = a·x_{t1} + b·ε̂^{ω_w}(x_{t1}, t0), every term spelled out (docs/npnet.md §2.2 step 2)."""
    ab = backbone.alphas_cumprod.double()
    timesteps = backbone.ddim_schedule(num_steps).timesteps
    t0, t1, step = int(timesteps[0]), int(timesteps[1]), len(ab) // num_steps
    source, target = (t1 - step, t1) if convention == "official" else (t1, t0)
    a = (ab[target] / ab[source]).sqrt()
    b = (1 - ab[target]).sqrt() - a * (1 - ab[source]).sqrt()
    if (t0, t1) == (901, 801) and backbone.scheduler_config["beta_schedule"] == "scaled_linear":  # the table's SD grid
        assert (source, target) == LEVELS[convention][:2]
        assert abs(a - LEVELS[convention][2]) < 1e-3 and abs(b - LEVELS[convention][3]) < 1e-3
    x = noise_for_seeds(seeds, backbone.latent_shape(size, size), dtype=torch.float16).float()  # (B, 4, h, w)
    cond, uncond = backbone.encode_prompt(prompts)
    t = torch.tensor(t0)
    eps_c, eps_u = backbone.predict_noise(x, t, cond), backbone.predict_noise(x, t, cond, uncond, guidance_scale=0.0)
    eps1 = eps_u + w_l * (eps_c - eps_u)
    x0 = (x - (1 - ab[t0]).sqrt().float() * eps1) / ab[t0].sqrt().float()
    x_t1 = ab[t1].sqrt().float() * x0 + (1 - ab[t1]).sqrt().float() * eps1
    eps2 = backbone.predict_noise(x_t1, t, cond) if w_w == 1.0 else None
    return x, a.float() * x_t1 + b.float() * eps2


def run_collection(tmp_path, backbone_name, convention, **overrides):
    config = CollectConfig(output_dir=str(tmp_path / convention), backbone=backbone_name, prompts=["a red fox"],
                           seeds="3,8", num_steps=10, image_size=16, convention=convention, batch_size=2,
                           shard_size=2, storage_dtype="float32", scorers=[ScorerSpec("hpsv2", model="tiny")],
                           progress=False, accelerator="cpu", **overrides)
    summary = collect(config)
    (shard,) = list(iter_shards(config.output_dir))
    return summary, shard, load_shard_tensors(shard.path)


@pytest.mark.parametrize(("backbone_name", "convention"), [("tiny-sdxl", "official"), ("tiny-sd", "textbook")])
def test_stored_target_is_the_hand_computed_redenoise_step(tmp_path, backbone_name, convention, request, monkeypatch):
    backbone = request.getfixturevalue(backbone_name.replace("-", "_"))
    if backbone_name == "tiny-sd":  # the images do not enter the target: skip their 40 UNet calls on this backbone
        module = importlib.import_module("goldennoise.collection.collect")  # the package re-exports `collect()`
        monkeypatch.setattr(module, "sample", lambda denoiser, noise, schedule: noise)
    summary, shard, tensors = run_collection(tmp_path, backbone_name, convention)
    x, expected = hand_redenoise(backbone, ["a red fox"] * 2, [3, 8], convention)
    assert torch.equal(tensors["noise"], x)  # fp16 per-seed CPU noise, stored exactly
    torch.testing.assert_close(tensors["target"], expected, atol=1e-5, rtol=1e-5)
    assert tensors["seed"].tolist() == [3, 8] and tensors["index"].tolist() == [0, 1]
    assert [r["prompt"] for r in shard.records] == ["a red fox"] * 2
    assert shard.backbone == backbone_name and len(shard.config_hash) == 16
    scores = [r["scores"]["hpsv2"] for r in shard.records]
    assert all(len(s) == 2 and s[0] != s[1] for s in scores)  # both images scored (from x_T and x'_T), they differ
    kept = sum(g - r > 0 for r, g in scores)
    assert summary["count"] == 2 and summary["kept_fraction"] == kept / 2


def test_datamodule_reads_a_collection_with_each_prompts_own_embedding(tiny_sd, tiny_npd):
    config = tiny_npd(seeds="0-2", storage_dtype="float16")
    dm = NoisePairDataModule(config.output_dir, margin=None, val_fraction=0.0, batch_size=6)
    dm.prepare_data()  # the cache written by collect is complete: no backbone is loaded
    dm.setup("fit")
    batch = next(iter(torch.utils.data.DataLoader(dm.train_set, batch_size=6)))
    assert batch["noise"].dtype == batch["target"].dtype == batch["prompt_embeds"].dtype == torch.float32
    expected = tiny_sd.encode_prompt(batch["prompt"])[0].embeds  # (6, 77, D), per sample
    torch.testing.assert_close(batch["prompt_embeds"], expected.half().float())
    pairs = sorted(zip(batch["prompt"], batch["seed"].tolist(), strict=True))
    assert pairs == [(p, s) for p in ["a blue jay", "a red fox"] for s in range(3)]


def test_conventions_give_different_targets(tiny_sd):
    assert tiny_sd.ddim_schedule(10).timesteps[:2].tolist() == [901, 801]  # so the table of docs/npnet.md is checked
    _, official = hand_redenoise(tiny_sd, ["a red fox"], [3], "official")
    _, textbook = hand_redenoise(tiny_sd, ["a red fox"], [3], "textbook")
    assert not torch.allclose(official, textbook, atol=1e-3)


def test_unet_evaluations_per_pair():
    assert unet_evals_per_pair(CollectConfig(num_steps=10)) == 2 + 1 + 2 * 10 * 2
    assert unet_evals_per_pair(CollectConfig(num_steps=4, denoise_guidance=1.0, repeats=2)) == 2 * 2 + 8


def test_shapes_collection_scores_alignment_and_stores_the_redenoise_target(tmp_path, shapes):
    config = CollectConfig(output_dir=str(tmp_path / "npd"), backbone="shapes", prompt_source="shapes:train:4",
                           seeds=None, num_steps=10, image_size=32, batch_size=4, shard_size=4,
                           storage_dtype="float32", scorers=[ScorerSpec("shapes_alignment")], progress=False,
                           accelerator="cpu")
    summary = collect(config)
    (shard,) = list(iter_shards(config.output_dir))
    tensors = load_shard_tensors(shard.path)
    assert tensors["noise"].shape == (4, 4, 8, 8) and summary["count"] == 4
    prompts = [r["prompt"] for r in shard.records]
    x, expected = hand_redenoise(shapes, prompts, [0, 1, 2, 3], "official", size=32)
    torch.testing.assert_close(tensors["target"], expected, atol=1e-4, rtol=1e-4)
    assert all(0 <= v <= 1 for r in shard.records for v in r["scores"]["shapes_alignment"])


def flip_noise_bytes(path, count=16):
    """Invert ``count`` bytes inside the shard's ``noise`` data; the file stays a readable safetensors file."""
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    start, end = json.loads(data[8:8 + header_len])["noise"]["data_offsets"]
    middle = 8 + header_len + (start + end) // 2
    data[middle:middle + count] = bytes(255 - b for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


def test_rerun_recollects_a_changed_shard_and_rebuilds_a_damaged_cache(tiny_npd):
    config = tiny_npd(seeds="0-2")  # 6 pairs in shards of 4 and 2
    first, second = shard_path(config.output_dir, 0), shard_path(config.output_dir, 1)
    tensors, records, untouched = load_shard_tensors(first), read_shard(first).records, second.stat().st_mtime_ns
    tensors = {k: v.clone() for k, v in tensors.items()}  # not views of the file's memory map
    cache = cache_dir(config.output_dir, "tiny-sd")
    embeds = EmbeddingCache(cache).get("a red fox")
    flip_noise_bytes(first)
    part = cache / "part-00000.safetensors"
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.warns(UserWarning) as record:
        summary = collect(config)
    messages = [str(w.message) for w in record]
    assert any("shard-000000.safetensors is corrupt" in m and "produced again" in m for m in messages), messages
    assert any("part-00000.safetensors is truncated" in m and "Rebuilding it" in m for m in messages), messages
    assert summary["collected_this_run"] == 4 and summary["count"] == 6
    recollected = load_shard_tensors(first)
    assert all(torch.equal(recollected[k], tensors[k]) for k in tensors) and read_shard(first).records == records
    assert second.stat().st_mtime_ns == untouched  # the intact shard was not rewritten
    assert torch.equal(EmbeddingCache(cache).get("a red fox"), embeds)


def test_a_failed_collection_does_not_refuse_the_corrected_rerun(tmp_path, monkeypatch):
    module = importlib.import_module("goldennoise.collection.collect")
    monkeypatch.setattr(module, "sample", lambda denoiser, noise, schedule: noise)  # images unused here
    settings = {"output_dir": str(tmp_path / "npd"), "prompts": ["a red fox"], "seeds": "0-1", "num_steps": 2,
                "image_size": 16, "batch_size": 2, "shard_size": 2, "scorers": [ScorerSpec("hpsv2", model="tiny")],
                "progress": False, "accelerator": "cpu", "cache_embeddings": False}
    with pytest.raises(FileNotFoundError, match="no-such-backbone"):
        collect(CollectConfig(backbone="no-such-backbone", **settings))
    assert not Path(settings["output_dir"]).exists()  # it failed before writing anything
    write_manifest(settings["output_dir"], "0123456789abcdef", 2, {"shard_size": 2})  # a run that failed later
    config = CollectConfig(backbone="tiny-sd", **settings)
    assert collect(config)["count"] == 2
    assert read_manifest(config.output_dir)["config_hash"] == config_hash(config, build_items(config))
