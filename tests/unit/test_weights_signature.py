"""weights_signature: what a derived-data cache records of the files it was made from."""

from goldennoise import hub
from goldennoise.backbones.loading import IMAGE_PARTS, SIGNATURE_CHUNK, TEXT_PARTS, weights_signature


def _model(folder, size=4 * SIGNATURE_CHUNK):
    for part in ("text_encoder", "text_encoder_2", "tokenizer", "vae"):
        (folder / part).mkdir(parents=True)
        (folder / part / "weights.bin").write_bytes(bytes(size))
    return folder


def _changed_at(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_signature_follows_the_named_components_files(tmp_path):
    model = _model(tmp_path / "model")
    text, image = weights_signature(str(model), TEXT_PARTS), weights_signature(str(model), IMAGE_PARTS)
    assert len(text) == 16 and text != image
    assert weights_signature(str(model), TEXT_PARTS) == text  # stable
    _changed_at(model / "vae" / "weights.bin", 0)
    assert weights_signature(str(model), TEXT_PARTS) == text and weights_signature(str(model), IMAGE_PARTS) != image
    for offset in (0, 2 * SIGNATURE_CHUNK, 4 * SIGNATURE_CHUNK - 1):  # start, middle, end of a weight file
        before = weights_signature(str(model), TEXT_PARTS)
        _changed_at(model / "text_encoder_2" / "weights.bin", offset)
        assert weights_signature(str(model), TEXT_PARTS) != before, offset
    before = weights_signature(str(model), TEXT_PARTS)
    (model / "tokenizer" / "added_tokens.json").write_text("{}")
    assert weights_signature(str(model), TEXT_PARTS) != before


def test_code_built_unknown_and_hub_names(tmp_path, monkeypatch):
    assert weights_signature("tiny-sdxl", TEXT_PARTS) == "builtin:tiny-sdxl"
    assert weights_signature("shapes", TEXT_PARTS) != weights_signature("shapes", IMAGE_PARTS)  # the shipped files
    assert weights_signature(str(tmp_path / "absent"), TEXT_PARTS) is None
    (tmp_path / "not-a-model" / "unet").mkdir(parents=True)
    assert weights_signature(str(tmp_path / "not-a-model"), TEXT_PARTS) is None  # no component file to sign
    assert weights_signature("nobody/not-cached", TEXT_PARTS) is None
    snapshot = _model(tmp_path / "snapshot")
    monkeypatch.setattr(hub, "cached_file", lambda repo, name: snapshot / name if repo == "org/model" else None)
    assert weights_signature("org/model", TEXT_PARTS) == weights_signature(str(snapshot), TEXT_PARTS)


def test_a_hub_snapshot_is_signed_by_the_content_hashes_of_its_blobs(tmp_path):
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc123"
    blobs.mkdir()
    (snapshot / "text_encoder").mkdir(parents=True)
    for digest in ("a" * 64, "b" * 64):
        (blobs / digest).write_bytes(bytes(3 * SIGNATURE_CHUNK))  # the same bytes under two content hashes
    link = snapshot / "text_encoder" / "model.safetensors"
    link.symlink_to(blobs / ("a" * 64))
    first = weights_signature(str(snapshot), TEXT_PARTS)
    link.unlink()
    link.symlink_to(blobs / ("b" * 64))
    assert weights_signature(str(snapshot), TEXT_PARTS) != first  # read from the blob's name, not sampled bytes
    plain = tmp_path / "plain"
    (plain / "text_encoder").mkdir(parents=True)
    (plain / "text_encoder" / "model.safetensors").symlink_to(blobs / ("a" * 64))
    (blobs / "not-a-hash").write_bytes(bytes(3))
    (plain / "text_encoder" / "other.bin").symlink_to(blobs / "not-a-hash")
    before = weights_signature(str(plain), TEXT_PARTS)
    (blobs / "not-a-hash").write_bytes(bytes([1, 2, 3]))  # a link to an ordinary file: its bytes are read
    assert weights_signature(str(plain), TEXT_PARTS) != before
