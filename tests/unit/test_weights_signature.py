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
    (model / "tokenizer" / "added_tokens.json").write_text("{}")
    assert weights_signature(str(model), TEXT_PARTS) != before


def test_code_built_unknown_and_hub_names(tmp_path, monkeypatch):
    assert weights_signature("tiny-sdxl", TEXT_PARTS) == "builtin:tiny-sdxl"
    assert weights_signature("shapes", TEXT_PARTS) != weights_signature("shapes", IMAGE_PARTS)  # the shipped files
    assert weights_signature(str(tmp_path / "absent"), TEXT_PARTS) is None
    assert weights_signature("nobody/not-cached", TEXT_PARTS) is None
    snapshot = _model(tmp_path / "snapshot")
    monkeypatch.setattr(hub, "cached_file", lambda repo, name: snapshot / name if repo == "org/model" else None)
    assert weights_signature("org/model", TEXT_PARTS) == weights_signature(str(snapshot), TEXT_PARTS)
