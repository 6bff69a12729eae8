"""TextImagePairDataModule: teacher records and external (prompt, image) pairs (image folder, parquet, WebDataset
shards, a Hugging Face dataset saved to disk) in the batch layout NoiseRefine trains on, cached latents and
embeddings, deterministic splits, the score filter, and one clear error per bad input."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from goldennoise.collection.config import ScorerSpec
from goldennoise.collection.teacher import collect_teacher
from goldennoise.collection.teacher_config import TeacherConfig
from goldennoise.data import TextImagePairDataModule
from goldennoise.data.npd_embeddings import EmbeddingCacheError
from goldennoise.data.shards import load_shard_tensors, shard_files
from goldennoise.data.teacher_store import TeacherShardError
from goldennoise.data.text_image import ImagePairError, image_key, stable_seed
from goldennoise.sampling import noise_for_seeds

CAPTIONS = ["a red cube", "a blue ball", "a gray owl"]
SIZE = 16


@pytest.fixture(scope="module", autouse=True)
def _tiny_sd_built_once(tiny_sd):
    """Collections and caches of this module use the session's tiny SD (building one is most of a run)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("goldennoise.collection.teacher.load_backbone", lambda name, **kwargs: tiny_sd)
        patch.setattr("goldennoise.backbones.load_backbone", lambda name, **kwargs: tiny_sd)
        yield


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """Six tiny-SD teacher records (3 prompts × 2 seeds) with tiny HPSv2 scores and their embedding cache."""
    folder = tmp_path_factory.mktemp("teacher")
    collect_teacher(TeacherConfig(output_dir=str(folder), backbone="tiny-sd", prompts=CAPTIONS, seeds="0-1",
                                  num_steps=1, image_size=SIZE, guidance_scale=3.0, batch_size=6, shard_size=3,
                                  scorers=[ScorerSpec("hpsv2", model="tiny")], accelerator="cpu", progress=False))
    return folder


def loaded(path, **kwargs) -> TextImagePairDataModule:
    module = TextImagePairDataModule(str(path), batch_size=8, embed_device="cpu", **kwargs)
    module.prepare_data()
    module.setup()
    return module


def everything(module: TextImagePairDataModule) -> list[dict]:
    return [module.train_set[i] for i in range(len(module.train_set))] + \
        [module.val_set[i] for i in range(len(module.val_set))]


def test_teacher_batches_hold_the_stored_pairs_and_embeddings(teacher, tiny_sd):
    module = loaded(teacher, val_fraction=0.34)
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == {"noise", "latent", "prompt_embeds", "prompt", "seed"}
    assert batch["noise"].shape == batch["latent"].shape == (4, 4, 8, 8) and batch["seed"].dtype == torch.int64
    stored = {}
    for path in shard_files(teacher):
        tensors = load_shard_tensors(path)
        for row, seed in enumerate(tensors["seed"].tolist()):
            stored.setdefault(seed, []).append((tensors["noise"][row], tensors["latent"][row]))
    cond, _ = tiny_sd.encode_prompt(CAPTIONS)
    for sample in everything(module):
        assert any(torch.equal(sample["noise"], n) and torch.equal(sample["latent"], x)
                   for n, x in stored[sample["seed"]])
        torch.testing.assert_close(sample["prompt_embeds"], cond.embeds[CAPTIONS.index(sample["prompt"])],
                                   atol=2e-3, rtol=2e-3)  # cached in float16


def test_splits_are_by_prompt_deterministic_and_stable_under_the_filter(teacher):
    first, again = loaded(teacher, val_fraction=0.34), loaded(teacher, val_fraction=0.34)
    val_prompts = {s["prompt"] for s in everything(first)[len(first.train_set):]}
    train_prompts = {first.train_set[i]["prompt"] for i in range(len(first.train_set))}
    assert len(val_prompts) == 1 and not val_prompts & train_prompts and len(first.val_set) == 2
    assert first.val_set.entries == again.val_set.entries and first.train_set.entries == again.train_set.entries
    scores = sorted(json.loads(json.dumps(r))["scores"]["hpsv2"]
                    for shard in first._teacher_shards() for r in shard.records)
    filtered = loaded(teacher, val_fraction=0.34, min_score=scores[3])
    kept = filtered.train_set.entries + filtered.val_set.entries
    assert len(kept) == 3 and set(filtered.val_set.entries) <= set(first.val_set.entries)
    records = {(s.path, row): r for s in first._teacher_shards() for row, r in enumerate(s.records)}
    assert all(records[(path, row)]["scores"]["hpsv2"] >= scores[3] for path, row, _, _ in kept)


def png(seed: int, size: int = SIZE) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_folder(folder: Path, sizes=(SIZE, SIZE, SIZE), seeds=(None, 42, None)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (caption, size, seed) in enumerate(zip(CAPTIONS, sizes, seeds, strict=True)):
        (folder / f"{i}.png").write_bytes(png(i, size))
        rows.append({"file_name": f"{i}.png", "text": caption, **({} if seed is None else {"seed": seed})})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def check_external(module: TextImagePairDataModule, tiny_sd) -> None:
    """Latents equal the VAE's posterior mean of each image; noise is its seed's; seeds as given or hashed."""
    samples = {s["prompt"]: s for s in everything(module)}
    assert sorted(samples) == sorted(CAPTIONS)
    for i, caption in enumerate(CAPTIONS):
        sample, data = samples[caption], png(i)
        pixels = torch.from_numpy(np.array(Image.open(io.BytesIO(data)))).permute(2, 0, 1).float()[None] / 255
        with torch.inference_mode():
            expected = tiny_sd.encode_images(pixels)[0]
        torch.testing.assert_close(sample["latent"], expected, atol=1e-5, rtol=1e-5)
        seed = 42 if i == 1 else stable_seed(image_key(data), caption)
        assert sample["seed"] == seed and torch.equal(sample["noise"], noise_for_seeds([seed], expected.shape)[0])
        assert sample["prompt_embeds"].shape == (77, 32)


def test_image_folder_pairs_are_encoded_once_and_cached(tmp_path, tiny_sd, monkeypatch):
    folder = image_folder(tmp_path / "images")
    module = loaded(folder, source="image_folder", backbone="tiny-sd", image_size=SIZE, val_fraction=0.0)
    check_external(module, tiny_sd)
    batch = next(iter(module.train_dataloader()))
    assert batch["latent"].shape == batch["noise"].shape == (3, 4, 8, 8)

    def no_loading(*args, **kwargs):
        raise AssertionError("the caches should have been reused")

    monkeypatch.setattr("goldennoise.backbones.load_backbone", no_loading)
    check_external(loaded(folder, source="image_folder", backbone="tiny-sd", image_size=SIZE, val_fraction=0.0),
                   tiny_sd)


def test_parquet_and_hf_dataset_pairs_match_the_images(tmp_path, tiny_sd):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = {"image": [{"bytes": png(i), "path": None} for i in range(3)], "text": CAPTIONS,
             "seed": [None, 42, None]}
    pq.write_table(pa.Table.from_pydict(table), tmp_path / "pairs.parquet")
    check_external(loaded(tmp_path / "pairs.parquet", source="parquet", backbone="tiny-sd", image_size=SIZE,
                          val_fraction=0.0), tiny_sd)
    datasets.Dataset.from_dict(table, features=datasets.Features(
        {"image": datasets.Image(), "text": datasets.Value("string"), "seed": datasets.Value("int64")}),
    ).save_to_disk(str(tmp_path / "hf"))
    check_external(loaded(tmp_path / "hf", source="hf_dataset", backbone="tiny-sd", image_size=SIZE,
                          val_fraction=0.0), tiny_sd)


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A tar archive (gzip-compressed for a .gz name) holding ``members`` in order."""
    with tarfile.open(path, "w:gz" if path.suffix == ".gz" else "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_webdataset_shards_pair_each_image_with_its_caption_and_seed(tmp_path, tiny_sd):
    """A folder of shards (.tar and .tar.gz, a key inside a folder, members of two samples interleaved), captions in
    .txt members, a seed in .json; and one img2dataset-style shard, captions in the .json's ``caption`` key."""
    shards = tmp_path / "shards"
    shards.mkdir()
    write_tar(shards / "00000.tar", [("0.png", png(0)), ("1.png", png(1)), ("0.txt", b"a red cube\n"),
                                     ("1.json", b'{"seed": 42}'), ("1.txt", b"a blue ball")])
    write_tar(shards / "00001.tar.gz", [("part/2.txt", b"a gray owl"), ("part/2.png", png(2))])
    (shards / "notes.txt").write_text("not a shard")
    module = loaded(shards, source="webdataset", backbone="tiny-sd", image_size=SIZE, val_fraction=0.0)
    check_external(module, tiny_sd)
    assert sorted(item.name.rsplit("#")[1] for item in module._external_items()) == ["0", "1", "part/2"]
    members = []
    for i, caption in enumerate(CAPTIONS):
        meta = {"caption": caption, "url": f"https://example.org/{i}", **({"seed": 42} if i == 1 else {})}
        members += [(f"{i:09d}.png", png(i)), (f"{i:09d}.json", json.dumps(meta).encode())]
    single = write_tar(tmp_path / "img2dataset.tar", members)
    check_external(loaded(single, source="webdataset", backbone="tiny-sd", image_size=SIZE, val_fraction=0.0,
                          caption_column="caption"), tiny_sd)


@pytest.mark.parametrize(("members", "message"), [
    ([("0.png", b"x" * 10), ("0.txt", b"a cube")], r"Image .*00000.tar#0 cannot be read"),
    ([("0.txt", b"a cube")], r"sample 0 holds no image \(jpg/jpeg/png/webp\); name the image field"),
    ([("0.png", png(0)), ("0.jpg", png(0)), ("0.txt", b"a cube")], r"sample 0 holds the images \['png', 'jpg'\]"),
    ([("0.png", png(0))], r"sample 0 has no 'txt' value"),
    ([("0.png", png(0)), ("0.txt", b"a cube"), ("0.json", b"{seed")], r"sample 0: its .json member is not valid"),
    ([("0.png", png(0)), ("0.txt", b"a cube"), ("0.json", b'{"seed": "x1"}')], r"'seed' value 'x1', which is not"),
    ([("0.png", png(0)), ("0.txt", b"a cube"), ("0.json", b'{"seed": 1.5}')], r"'seed' value 1.5, which is not"),
    ([("README", b"shards")], r"member README has no extension"),
])
def test_a_malformed_webdataset_sample_is_named(tmp_path, members, message):
    shard = write_tar(tmp_path / "00000.tar", members)
    with pytest.raises(ImagePairError, match=message):
        loaded(shard, source="webdataset", backbone="tiny-sd", image_size=SIZE)


def test_a_truncated_or_missing_webdataset_shard_is_named(tmp_path):
    shard = write_tar(tmp_path / "00000.tar.gz", [("0.png", png(0)), ("0.txt", b"a cube")])
    shard.write_bytes(shard.read_bytes()[:40])
    with pytest.raises(ImagePairError, match=r"WebDataset shard .*00000.tar.gz cannot be read"):
        loaded(shard, source="webdataset", backbone="tiny-sd", image_size=SIZE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"No WebDataset shard \(.tar, .tar.gz, .tgz\) at .*empty"):
        loaded(tmp_path / "empty", source="webdataset", backbone="tiny-sd", image_size=SIZE)


def test_missing_teacher_data_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nothing'} holds no teacher data"):
        loaded(tmp_path / "nothing")


def test_a_corrupt_teacher_shard_is_named(teacher, tmp_path):
    import shutil

    copy = shutil.copytree(teacher, tmp_path / "copy")
    shard = shard_files(copy)[1]
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(TeacherShardError, match=str(shard)):
        loaded(copy)


def test_a_caption_naming_a_missing_image_is_named(tmp_path):
    folder = image_folder(tmp_path / "images")
    (folder / "1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"metadata.jsonl line 2 names the image .*1.png"):
        loaded(folder, source="image_folder", backbone="tiny-sd", image_size=SIZE)


def test_an_image_of_the_wrong_size_is_named_before_any_encoding(tmp_path):
    folder = image_folder(tmp_path / "images", sizes=(SIZE, 24, SIZE))
    with pytest.raises(ImagePairError, match=r"Image .*1.png is 24x24 px; .* need 16x16"):
        loaded(folder, source="image_folder", backbone="tiny-sd", image_size=SIZE)
    assert not (folder / "latents").exists() or not list((folder / "latents").rglob("*.safetensors"))


def test_an_external_source_needs_a_backbone():
    with pytest.raises(ValueError, match="needs backbone="):
        TextImagePairDataModule("x", source="parquet")


def test_caches_made_from_other_weights_are_refused_then_rebuilt(tmp_path, tiny_sd, monkeypatch):
    import goldennoise.backbones.loading as loading

    signatures = {loading.TEXT_PARTS: "text-1", loading.IMAGE_PARTS: "vae-1"}
    monkeypatch.setattr(loading, "weights_signature", lambda name, parts: signatures[parts])
    folder = image_folder(tmp_path / "images")
    settings = {"source": "image_folder", "backbone": "tiny-sd", "image_size": SIZE, "val_fraction": 0.0}
    loaded(folder, **settings)
    latents = folder / "latents" / "tiny-sd"
    assert json.loads((latents / "manifest.json").read_text())["source"] == "vae-1"
    signatures[loading.IMAGE_PARTS] = "vae-2"  # the backbone's VAE files changed
    with pytest.raises(EmbeddingCacheError, match=r"made from other weights \(signature vae-1\).*\(vae-2\).*"
                                                  "prepare_data"):
        TextImagePairDataModule(str(folder), embed_device="cpu", **settings).setup()
    with pytest.warns(UserWarning, match="made from other weights.*Rebuilding it"):
        check_external(loaded(folder, **settings), tiny_sd)
    assert json.loads((latents / "manifest.json").read_text())["source"] == "vae-2"
    prompt_manifest = json.loads((folder / "prompt_embeds" / "tiny-sd" / "manifest.json").read_text())
    assert prompt_manifest["source"] == "text-1"  # the text encoders did not change: that cache was kept
