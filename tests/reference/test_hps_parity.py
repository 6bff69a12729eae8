"""HPSv2: goldennoise vs the reference ``hpsv2.img_score.score`` (hpsv2x 1.2.0) with identical tiny weights."""

import numpy as np
import pytest
import torch
from PIL import Image
from reference_compat import require
from torchvision.transforms.functional import to_tensor

from goldennoise.metrics import HPSv2Score
from goldennoise.metrics import tiny as tiny_metrics
from goldennoise.metrics.hps import FILES, load_hpsv2
from goldennoise.metrics.loading import release

PROMPT = "a photo of a cat sitting on a red car"


def _pil_images(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


@pytest.fixture(scope="module")
def reference_hps():
    img_score = require("hpsv2.img_score")
    from hpsv2.src.open_clip.model import CLIP
    from hpsv2.src.open_clip.transform import image_transform

    ours = tiny_metrics.hpsv2_scorer(seed=1)
    reference = CLIP(**tiny_metrics.TINY_OPEN_CLIP, output_dict=True)
    img_score.model_dict["model"] = reference
    img_score.model_dict["preprocess_val"] = image_transform(reference.visual.image_size, is_train=False)
    yield img_score, ours
    img_score.model_dict.clear()


@pytest.mark.parametrize("version", ["v2.0", "v2.1"])
def test_hps_matches_reference(reference_hps, tmp_path, version):
    img_score, ours = reference_hps
    checkpoint = tmp_path / FILES[version]
    torch.save({"state_dict": ours.model.state_dict()}, checkpoint)
    pils = _pil_images([(96, 80), (64, 64), (50, 120)])

    expected = torch.tensor(img_score.score(pils, PROMPT, cp=str(checkpoint), hps_version=version))

    # the official key layout loads strictly through our loader (open_clip ViT-H-14 replaced by the tiny config)
    ours.model.load_state_dict(torch.load(checkpoint)["state_dict"], strict=True)
    metric = HPSv2Score(version, model=ours)
    for pil in pils:
        metric.update(to_tensor(pil)[None], [PROMPT])
    got = metric.per_sample()
    print(f"parity hpsv2 {version}: max abs diff {(got - expected).abs().max():.2e}")
    assert (got - expected).abs().max() < 1e-4, (got, expected)
    assert torch.allclose(metric.compute(), expected.mean(), atol=1e-4)


def test_hps_tokenizer_matches_reference():
    tokenize = require("hpsv2.src.open_clip").get_tokenizer("ViT-H-14")
    ours = tiny_metrics.hpsv2_scorer().tokenizer
    prompts = ["a photo of a cat", "Crème brûlée, ünïcode & emoji 🎨!", "word " * 100]
    assert torch.equal(ours(prompts), tokenize(prompts))


def test_hps_real_layout_has_reference_keys():
    """The real ViT-H-14 built by open-clip-torch 3 has exactly the keys and shapes of hpsv2's vendored open_clip."""
    reference_open_clip = require("hpsv2.src.open_clip")

    from goldennoise.metrics.hps import build_hpsv2_model

    with torch.device("meta"):
        reference = reference_open_clip.model.CLIP(**reference_open_clip.get_model_config("ViT-H-14"), output_dict=True)
        ours = build_hpsv2_model(device="meta")
    ref_shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert our_shapes == ref_shapes


def test_load_hpsv2_reads_a_local_checkpoint(tmp_path, monkeypatch):
    """load_hpsv2 strictly loads a {"state_dict": ...} file with the official layout (tiny config patched in)."""
    import goldennoise.metrics.hps as hps

    source = tiny_metrics.hpsv2_scorer(seed=3)
    path = tmp_path / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": source.model.state_dict()}, path)
    monkeypatch.setattr(hps, "build_hpsv2_model", lambda *args, **kwargs: tiny_metrics.hpsv2_scorer(seed=4).model)
    loaded = load_hpsv2("v2.1", str(path))
    try:
        assert torch.equal(loaded.model.visual.conv1.weight, source.model.visual.conv1.weight)
        assert load_hpsv2("v2.1", str(path)) is loaded  # shared, not loaded twice
    finally:
        release(("hpsv2", "v2.1", str(path)))
