"""NPD storage and NoisePairDataModule on synthetic shards: batch contract, margin filter, split, bad data, import.

Bad data: truncated, corrupt, bit-flipped or hand-edited shards (content hash), shards missing from the manifest,
legacy unhashed shards, and a damaged prompt-embedding cache.
"""

import json
import warnings

import numpy as np
import pytest
import torch

from goldennoise.backbones import PromptEmbeds
from goldennoise.data.npd import NoisePairDataModule, NoisePairDataset
from goldennoise.data.npd_embeddings import (
    EmbeddingCache,
    EmbeddingCacheError,
    build_embedding_cache,
    cache_dir,
    cached_backbones,
)
from goldennoise.data.npd_official import import_official
from goldennoise.data.npd_store import (
    NPDShardError,
    iter_shards,
    load_shard_tensors,
    read_shard,
    shard_path,
    write_manifest,
    write_shard,
)

SHAPE = (4, 8, 8)


class FakeTextBackbone:
    """encode_prompt stand-in: prompt p embeds to a constant (3, 5) tensor of value code(p)."""

    @staticmethod
    def code(prompt: str) -> float:
        return float(sum(map(ord, prompt)) % 997)

    def encode_prompt(self, prompts):
        embeds = torch.stack([torch.full((3, 5), self.code(p)) for p in prompts])
        return PromptEmbeds(embeds), PromptEmbeds(torch.zeros_like(embeds))


def make_dataset(folder, scores, prompts=None, shard_size=4, embed=True):
    """Shards of len(scores) pairs: pair i has seed 100+i, noise ≡ i, target ≡ -i, scores {'hps': scores[i]}."""
    n = len(scores)
    prompts = prompts or [f"prompt {i % 3}" for i in range(n)]
    write_manifest(folder, "h", n, {"shard_size": shard_size})
    for k, start in enumerate(range(0, n, shard_size)):
        rows = range(start, min(start + shard_size, n))
        records = [{"index": i, "seed": 100 + i, "prompt": prompts[i], "prompt_id": i % 3,
                    "scores": {"hps": list(scores[i])}} for i in rows]
        tensors = {"noise": torch.stack([torch.full(SHAPE, float(i)) for i in rows]).half(),
                   "target": torch.stack([torch.full(SHAPE, -float(i)) for i in rows]),
                   "seed": torch.tensor([100 + i for i in rows]), "index": torch.tensor(list(rows))}
        write_shard(shard_path(folder, k), tensors, records, "fake", "h")
    if embed:
        build_embedding_cache(folder, "fake", FakeTextBackbone(), prompts, part_size=2)
    return folder


def datamodule(folder, **kwargs):
    dm = NoisePairDataModule(str(folder), **{"val_fraction": 0.0, "batch_size": 4, **kwargs})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_batch_contract_and_per_sample_embeddings(tmp_path):
    make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 6)
    dm = datamodule(tmp_path / "npd", margin=None)
    batch = next(iter(dm.val_dataloader() if len(dm.val_set) else torch.utils.data.DataLoader(
        dm.train_set, batch_size=6)))
    assert batch["noise"].shape == (6, *SHAPE) and batch["noise"].dtype == torch.float32
    assert batch["target"].shape == (6, *SHAPE) and batch["target"].dtype == torch.float32
    assert batch["prompt_embeds"].shape == (6, 3, 5) and batch["prompt_embeds"].dtype == torch.float32
    assert batch["seed"].dtype == torch.int64
    for i in range(6):
        index = int(batch["seed"][i]) - 100
        assert torch.equal(batch["noise"][i], torch.full(SHAPE, float(index)))
        assert torch.equal(batch["target"][i], torch.full(SHAPE, -float(index)))
        assert torch.equal(batch["prompt_embeds"][i], torch.full((3, 5), FakeTextBackbone.code(batch["prompt"][i])))


def test_dataset_holds_addresses_not_tensors(tmp_path):
    make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 5)
    dataset = datamodule(tmp_path / "npd", margin=None).train_set
    assert isinstance(dataset, NoisePairDataset)
    assert all(not isinstance(v, torch.Tensor) for entry in dataset.entries for v in entry)
    assert not dataset._handles  # nothing opened until an item is read
    dataset[0]
    assert len(dataset._handles) == 1


@pytest.mark.parametrize("margin", [None, -0.5, 0.0, 0.25, 1.0])
def test_margin_filter_keeps_exactly_golden_minus_random_above_m(tmp_path, margin):
    scores = [(0.0, 0.5), (0.5, 0.0), (1.0, 1.0), (0.0, 0.25), (0.2, 1.3), (0.0, -0.5), (0.3, 0.3), (0.0, 2.0)]
    make_dataset(tmp_path / "npd", scores)
    dm = datamodule(tmp_path / "npd", margin=margin, metric="hps")
    kept = sorted(seed - 100 for _, _, _, seed in dm.train_set.entries)
    assert kept == [i for i, (r, g) in enumerate(scores) if margin is None or g - r > margin]


def test_split_is_deterministic_disjoint_and_stable_across_margins(tmp_path):
    scores = [(0.0, float(i % 2)) for i in range(20)]
    make_dataset(tmp_path / "npd", scores)
    split = lambda dm: ({e[3] for e in dm.train_set.entries}, {e[3] for e in dm.val_set.entries})  # noqa: E731
    a = split(datamodule(tmp_path / "npd", margin=None, val_fraction=0.25, split_seed=3))
    b = split(datamodule(tmp_path / "npd", margin=None, val_fraction=0.25, split_seed=3))
    c = split(datamodule(tmp_path / "npd", margin=0.0, val_fraction=0.25, split_seed=3))
    assert a == b and len(a[1]) == 5 and not a[0] & a[1]
    assert c[0] <= a[0] and c[1] <= a[1]  # filtering never moves a pair across the split
    assert split(datamodule(tmp_path / "npd", margin=None, val_fraction=0.25, split_seed=4)) != a


def test_truncated_shard_names_the_file_or_is_skipped(tmp_path):
    folder = make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 12)
    bad = shard_path(folder, 1)
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(NPDShardError, match="shard-000001.safetensors"):
        datamodule(folder, margin=None)
    with pytest.warns(UserWarning, match="shard-000001.safetensors") as record:
        dm = datamodule(folder, margin=None, on_bad_shard="skip")  # prepare_data and setup: one scan, one warning
    assert len(record) == 1
    assert sorted(e[3] - 100 for e in dm.train_set.entries) == [0, 1, 2, 3, 8, 9, 10, 11]
    assert dm.train_set[0]["noise"].shape == SHAPE


@pytest.mark.parametrize("damage", ["empty", "garbage_header", "not_npd"])
def test_corrupt_shards_name_the_file(tmp_path, damage):
    folder = make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 8)
    bad = shard_path(folder, 0)
    if damage == "empty":
        bad.write_bytes(b"")
    elif damage == "garbage_header":
        bad.write_bytes((20).to_bytes(8, "little") + b"{not json at all!!!}")
    else:
        from safetensors.torch import save_file
        save_file({"x": torch.zeros(2)}, str(bad))
    with pytest.raises(NPDShardError, match="shard-000000"):
        read_shard(bad)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert [len(s) for s in iter_shards(folder, on_bad="skip")] == [4]


def test_missing_dataset_folder_is_one_clear_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; run `goldennoise collect` first"):
        datamodule(tmp_path / "nowhere")


def test_official_import_reads_npz_and_score_jsonl(tmp_path):
    npz_dir = tmp_path / "official"
    npz_dir.mkdir()
    rng = np.random.default_rng(0)
    lines, expected = [], {}
    for index, seed in [(0, 11), (1, 7), (2, 5)]:
        source = rng.standard_normal((1, 4, 8, 8)).astype(np.float16)
        target = rng.standard_normal((1, 4, 8, 8)).astype(np.float16)
        np.savez(npz_dir / f"{index}_{seed}.npz", source, target, np.array(index))
        expected[seed] = (source[0], target[0])
        lines.append(json.dumps({"index": index, "seed": seed, "caption": f"caption {index}",
                                 "original_score_list": [0.25], "optimized_score_list": [0.25 + index / 10 - 0.1]}))
    (tmp_path / "scores.json").write_text("\n".join(lines) + "\n")
    assert import_official(npz_dir, tmp_path / "scores.json", tmp_path / "npd", backbone="fake", shard_size=2) == 3
    build_embedding_cache(tmp_path / "npd", "fake", FakeTextBackbone(), ["caption 0", "caption 1", "caption 2"])
    dm = datamodule(tmp_path / "npd", margin=0.0)  # official filter: original < optimized, strict
    assert sorted(e[2] for e in dm.train_set.entries) == ["caption 2"]
    item = dm.train_set[0]
    assert torch.equal(item["noise"], torch.from_numpy(expected[5][0]).float())
    assert torch.equal(item["target"], torch.from_numpy(expected[5][1]).float())
    assert (tmp_path / "npd" / "index.parquet").is_file()


def test_write_shard_leaves_no_temporary(tmp_path):
    make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 3, embed=False)
    assert [p.name for p in (tmp_path / "npd" / "shards").iterdir()] == ["shard-000000.safetensors"]


def flip_bytes(path, tensor="noise", count=16):
    """Invert ``count`` bytes in the middle of one tensor's data (the file stays a valid safetensors file)."""
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    start, end = json.loads(data[8:8 + header_len])[tensor]["data_offsets"]
    middle = 8 + header_len + (start + end) // 2
    data[middle:middle + count] = bytes(255 - b for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


def edit_records(path, edit):
    """Rewrite a shard with ``edit`` applied to its records, keeping every other metadata entry (its hash too)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    records = json.loads(meta["records"])
    edit(records)
    save_file(tensors, str(path), metadata={**meta, "records": json.dumps(records)})


@pytest.mark.parametrize("damage", ["flipped_noise_bytes", "edited_prompt", "edited_score"])
def test_changed_shard_content_fails_its_hash(tmp_path, damage):
    folder = make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 12)
    bad = shard_path(folder, 1)
    if damage == "flipped_noise_bytes":
        flip_bytes(bad)
    elif damage == "edited_prompt":
        edit_records(bad, lambda records: records[0].update(prompt="prompt 2"))
    else:
        edit_records(bad, lambda records: records[0]["scores"].update(hps=[0.0, 9.0]))
    read_shard(bad, verify=False)  # the header alone still parses: only the hash tells
    with pytest.raises(NPDShardError, match=r"shard-000001\.safetensors is corrupt: its content does not match"):
        datamodule(folder, margin=None)
    with pytest.warns(UserWarning, match="shard-000001") as record:
        dm = datamodule(folder, margin=None, on_bad_shard="skip")
    assert len(record) == 1
    assert sorted(e[3] - 100 for e in dm.train_set.entries) == [0, 1, 2, 3, 8, 9, 10, 11]


def test_missing_shard_is_named_from_the_manifest(tmp_path):
    folder = make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 12)
    shard_path(folder, 1).unlink()
    with pytest.raises(NPDShardError, match=r"lacks 1 of the 3 shards .*12 pairs.*shard-000001\.safetensors"):
        datamodule(folder, margin=None)
    with pytest.warns(UserWarning, match="shard-000001.safetensors") as record:
        dm = datamodule(folder, margin=None, on_bad_shard="skip")
    assert len(record) == 1
    assert len(dm.train_set) == 8
    shard_path(folder, 2).unlink()  # the last shard: no gap in the names, only the manifest tells
    with pytest.raises(NPDShardError, match="lacks 2 of the 3 shards"):
        list(iter_shards(folder))


def test_shard_of_another_collection_is_refused(tmp_path):
    folder = make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 8)
    make_dataset(tmp_path / "other", [(0.0, 1.0)] * 4, embed=False)
    other = shard_path(tmp_path / "other", 0)
    write_shard(shard_path(folder, 1), load_shard_tensors(other), read_shard(other).records, "fake", "another")
    with pytest.raises(NPDShardError, match="shard-000001.safetensors belongs to another run"):
        list(iter_shards(folder))


def test_legacy_shards_without_hash_load_with_one_warning(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 8)
    for k in range(2):  # rewrite as goldennoise-npd/1: no content hash
        path = shard_path(folder, k)
        with safe_open(str(path), framework="pt") as handle:
            meta, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
        meta = {key: value for key, value in meta.items() if key != "content_sha256"}
        save_file(tensors, str(path), metadata={**meta, "format": "goldennoise-npd/1"})
    with pytest.warns(UserWarning, match="2 shards .* before shards carried a content hash") as record:
        dm = datamodule(folder, margin=None)
    assert len(record) == 1 and len(dm.train_set) == 8
    assert not read_shard(shard_path(folder, 0)).hashed
    path = shard_path(folder, 0)  # a v2 shard whose hash was removed is not a legacy shard
    with safe_open(str(path), framework="pt") as handle:
        meta, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
    save_file(tensors, str(path), metadata={**meta, "format": "goldennoise-npd/2"})
    with pytest.raises(NPDShardError, match="has no content hash"):
        read_shard(path)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "deleted", "unhashed_manifest"])
def test_damaged_embedding_cache_names_the_file_and_prepare_data_rebuilds_it(tmp_path, monkeypatch, damage):
    folder = make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 6)
    cache = cache_dir(folder, "fake")
    part = cache / "part-00001.safetensors"
    if damage == "truncated":
        part.write_bytes(part.read_bytes()[:-7])
    elif damage == "flipped":
        flip_bytes(part, "embeds", count=4)
    elif damage == "deleted":
        part.unlink()
    else:  # a cache written before the hashes
        manifest = json.loads((cache / "manifest.json").read_text())
        (cache / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "sha256"}))
    match = "predates content hashes" if damage == "unhashed_manifest" else r"part-00001\.safetensors"
    with pytest.raises(EmbeddingCacheError, match=match):
        EmbeddingCache(cache)
    dm = NoisePairDataModule(str(folder), margin=None, val_fraction=0.0)
    with pytest.raises(EmbeddingCacheError, match=f"{match}.*Run prepare_data"):
        dm.setup("fit")
    import goldennoise.backbones

    monkeypatch.setattr(goldennoise.backbones, "load_backbone", lambda *args, **kwargs: FakeTextBackbone())
    with pytest.warns(UserWarning, match="Rebuilding it"):
        dm.prepare_data()
    dm.setup("fit")
    for i in range(len(dm.train_set)):
        item = dm.train_set[i]
        assert torch.equal(item["prompt_embeds"], torch.full((3, 5), FakeTextBackbone.code(item["prompt"])))


class FakeFullConditioningBackbone(FakeTextBackbone):
    """SDXL/Hunyuan-like conditioning: a pooled embedding (2,) of value -code(p) and an integer mask extra (3,)."""

    def encode_prompt(self, prompts):
        embeds = torch.stack([torch.full((3, 5), self.code(p)) for p in prompts])
        pooled = torch.stack([torch.full((2,), -self.code(p)) for p in prompts])
        mask = torch.stack([torch.tensor([1, 1, len(p) % 2]) for p in prompts])
        cond = PromptEmbeds(embeds, pooled, {"mask": mask})
        return cond, PromptEmbeds(torch.zeros_like(embeds), torch.zeros_like(pooled), {"mask": mask})


def test_a_whole_conditioning_cache_holds_pooled_and_extras_and_batches_carry_them(tmp_path):
    """Teacher caches hold the whole conditioning (NoiseRefine); NPD caches, by default, token embeddings only."""
    prompts = ["a", "bb", "a", "ccc", "dd"]
    tokens_only = build_embedding_cache(tmp_path / "npd", "fake", FakeFullConditioningBackbone(), prompts)
    assert EmbeddingCache(tokens_only).columns == ["embeds"]
    folder = make_dataset(tmp_path / "teacher", [(0.0, 1.0)] * 5, prompts=prompts, embed=False)
    build_embedding_cache(folder, "fake", FakeFullConditioningBackbone(), prompts, part_size=2,
                          whole_conditioning=True)
    cache = EmbeddingCache(cache_dir(folder, "fake"))
    assert cache.columns == ["embeds", "extras.mask", "pooled"]
    row = cache.conditioning("ccc")
    assert torch.equal(row["pooled_prompt_embeds"], torch.full((2,), -FakeTextBackbone.code("ccc")))
    assert row["prompt_extras"]["mask"].dtype == torch.int64 and row["prompt_extras"]["mask"].tolist() == [1, 1, 1]
    batch = next(iter(datamodule(folder, margin=None).train_dataloader()))
    assert batch["pooled_prompt_embeds"].shape == (4, 2) and batch["prompt_extras"]["mask"].shape == (4, 3)
    for i, prompt in enumerate(batch["prompt"]):
        assert torch.equal(batch["pooled_prompt_embeds"][i], torch.full((2,), -FakeTextBackbone.code(prompt)))


def test_a_cache_part_missing_a_column_is_named_and_a_tokens_only_cache_still_reads(tmp_path):
    from safetensors.torch import load_file, save_file

    prompts = ["a", "bb", "ccc"]
    full = build_embedding_cache(tmp_path / "full", "fake", FakeFullConditioningBackbone(), prompts, part_size=2,
                                 whole_conditioning=True)
    part = full / "part-00001.safetensors"
    tensors = load_file(part)
    save_file({k: v for k, v in tensors.items() if k != "pooled"}, str(part))
    with pytest.raises(EmbeddingCacheError, match=r"part-00001\.safetensors is corrupt.*embeds, extras\.mask, pooled"):
        EmbeddingCache(full)

    old = build_embedding_cache(tmp_path / "old", "fake", FakeTextBackbone(), prompts, part_size=2)
    manifest = json.loads((old / "manifest.json").read_text())
    assert manifest["columns"] == ["embeds"]
    del manifest["columns"]  # as written before pooled embeddings and extras were cached
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert set(EmbeddingCache(old).conditioning("bb")) == {"prompt_embeds"}


@pytest.mark.parametrize("split_by", ["prompt", "prompt_hash", "item_hash"])
def test_the_datamodule_splits_by_prompt_or_by_a_stable_hash(tmp_path, split_by):
    """split_by reaches the split: prompt splits keep a prompt's pairs on one side, hash splits don't move a pair
    when the dataset grows."""
    prompts = [f"prompt {i % 10}" for i in range(40)]
    small = make_dataset(tmp_path / "small", [(0.0, 1.0)] * 32, prompts=prompts[:32])
    large = make_dataset(tmp_path / "large", [(0.0, 1.0)] * 40, prompts=prompts)

    def sides(folder):
        dm = datamodule(folder, margin=None, val_fraction=0.3, split_by=split_by, split_seed=1)
        return ({(e[2], e[3]) for e in dm.val_set.entries}, {(e[2], e[3]) for e in dm.train_set.entries})

    val, train = sides(large)
    assert val and train and len(val) + len(train) == 40
    if split_by.startswith("prompt"):
        assert not {p for p, _ in val} & {p for p, _ in train}
    if split_by.endswith("hash"):
        assert sides(small)[0] == {pair for pair in val if pair[1] < 132}  # seeds 100-131 are the small set's


def test_an_encoder_whose_batches_disagree_on_columns_is_refused(tmp_path):
    from goldennoise.data.npd_embeddings import build_keyed_cache

    def encode(keys):
        columns = {"embeds": torch.zeros(len(keys), 2)}
        return columns if keys[0] == "a" else {**columns, "pooled": torch.zeros(len(keys), 1)}

    with pytest.raises(ValueError, match="same columns, 'embeds' among them"):
        build_keyed_cache(tmp_path / "c", ["a", "b"], encode, batch_size=1)
    with pytest.raises(ValueError, match=r"expected \['embeds'\], got \[\('embeds', 'pooled'\)\] in part 1"):
        build_keyed_cache(tmp_path / "e", ["a", "b"], encode, batch_size=1, part_size=1)
    with pytest.raises(ValueError, match="'embeds' among them"):
        build_keyed_cache(tmp_path / "d", ["a"], lambda keys: {"pooled": torch.zeros(len(keys), 1)})


class ShiftedTextBackbone(FakeTextBackbone):
    """Another text encoder: every embedding 1 more than FakeTextBackbone's."""

    def encode_prompt(self, prompts):
        cond, uncond = super().encode_prompt(prompts)
        return PromptEmbeds(cond.embeds + 1), uncond


def test_a_cache_made_from_other_text_encoder_files_is_rebuilt(tmp_path, monkeypatch):
    import goldennoise.backbones

    model = tmp_path / "model"
    for part, name in [("text_encoder", "model.safetensors"), ("tokenizer", "vocab.json"), ("unet", "w.bin")]:
        (model / part).mkdir(parents=True)
        (model / part / name).write_bytes(bytes(range(256)) * 8)
    folder = make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 6, embed=False)

    def prepared(backbone):
        monkeypatch.setattr(goldennoise.backbones, "load_backbone", lambda *args, **kwargs: backbone)
        return datamodule(folder, backbone=str(model), margin=None)

    dm = prepared(FakeTextBackbone())
    item = dm.train_set[0]
    assert torch.equal(item["prompt_embeds"], torch.full((3, 5), FakeTextBackbone.code(item["prompt"])))
    (model / "unet" / "w.bin").write_bytes(b"another unet")  # not what a prompt embedding depends on: kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prepared(None).train_set[0]["prompt_embeds"].equal(item["prompt_embeds"])  # no backbone loaded
    (model / "text_encoder" / "model.safetensors").write_bytes(bytes(range(256)) * 7 + bytes(256))  # fine-tuned
    with pytest.raises(EmbeddingCacheError, match="made from other weights .* Run prepare_data"):
        NoisePairDataModule(str(folder), backbone=str(model), margin=None, val_fraction=0.0).setup("fit")
    with pytest.warns(UserWarning, match="made from other weights .* Rebuilding it"):
        dm = prepared(ShiftedTextBackbone())
    assert dm.train_set[0]["prompt_embeds"].equal(item["prompt_embeds"] + 1)
    manifest = json.loads((cache_dir(folder, str(model)) / "manifest.json").read_text())
    del manifest["source"]  # a cache written before signatures: kept, nothing to compare with
    (cache_dir(folder, str(model)) / "manifest.json").write_text(json.dumps(manifest))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prepared(None).train_set[0]["prompt_embeds"].equal(item["prompt_embeds"] + 1)


def test_the_datasets_only_cache_is_checked_and_rebuilt_under_the_name_it_was_built_with(tmp_path, monkeypatch):
    import goldennoise.backbones

    model = tmp_path / "model"
    (model / "text_encoder").mkdir(parents=True)
    (model / "text_encoder" / "model.safetensors").write_bytes(bytes(64))
    folder = make_dataset(tmp_path / "npd", [(0.0, 1.0)] * 6, embed=False)  # collected with backbone "fake"
    prompts = [f"prompt {i % 3}" for i in range(6)]
    build_embedding_cache(folder, str(model), FakeTextBackbone(), prompts, part_size=2)
    assert cached_backbones(folder) == [str(model)]  # the name, not the folder's "--" spelling
    loads = []
    monkeypatch.setattr(goldennoise.backbones, "load_backbone",
                        lambda name, **kwargs: loads.append(name) or ShiftedTextBackbone())
    item = datamodule(folder, margin=None).train_set[0]
    assert item["prompt_embeds"].equal(torch.full((3, 5), FakeTextBackbone.code(item["prompt"])))
    assert loads == []  # the only cache, intact and of these files: used as it is
    (model / "text_encoder" / "model.safetensors").write_bytes(bytes(63) + b"\1")
    with pytest.warns(UserWarning, match="made from other weights"):
        dm = datamodule(folder, margin=None)
    assert loads == [str(model)]  # rebuilt from the backbone the cache was made with
    item = dm.train_set[0]
    assert item["prompt_embeds"].equal(torch.full((3, 5), FakeTextBackbone.code(item["prompt"]) + 1))
