"""Input checks, preprocessing and loading of goldennoise.metrics (no network, tiny or meta-device models)."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

from goldennoise.errors import MissingWeightsError
from goldennoise.metrics import AestheticScore, CLIPScore, HPSv2Score, ImageReward, PickScore
from goldennoise.metrics import tiny as tiny_metrics
from goldennoise.metrics.image_reward import ImageRewardModel
from goldennoise.metrics.loading import resolve_file, shared
from goldennoise.metrics.preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ImagePreprocess, check_images

PROMPTS = ["a cat", "a dog"]


@pytest.fixture(scope="module")
def hps():
    return HPSv2Score(model=tiny_metrics.hpsv2_scorer())


@pytest.mark.parametrize(("images", "message"), [
    (torch.rand(2, 3, 32, 32) * 2 - 1, r"\[-1, 1\]: use \(x \+ 1\) / 2"),
    (torch.rand(2, 3, 32, 32) * 255, "divide by 255"),
    (torch.rand(2, 32, 32), r"\(B, 3, H, W\)"),
    (torch.rand(2, 4, 32, 32), r"\(B, 3, H, W\)"),
    (torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), "floating point"),
])
def test_bad_images_are_named(hps, images, message):
    with pytest.raises(ValueError, match=message):
        hps.update(images, PROMPTS)


@pytest.mark.parametrize(("prompts", "message"), [
    (["a cat"], "2 images but 1 prompts"),
    (["a cat", "a dog", "a cow"], "2 images but 3 prompts"),
    (["a cat", "  "], "prompt 1 is empty"),
    (["", "a dog"], "prompt 0 is empty"),
    (None, "2 images but no prompts"),
])
def test_bad_prompts_are_named(hps, prompts, message):
    with pytest.raises(ValueError, match=message):
        hps.update(torch.rand(2, 3, 32, 32), prompts)


def test_aesthetic_needs_no_prompt_but_checks_a_given_one():
    metric = AestheticScore(model=tiny_metrics.aesthetic_scorer())
    metric.update(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        metric.update(torch.rand(2, 3, 32, 32), ["a cat"])
    assert metric.per_sample().shape == (2,)


def test_check_images_accepts_the_closed_unit_interval():
    check_images(torch.tensor([0.0, 1.0]).repeat(1, 3, 1, 1).reshape(1, 3, 1, 2))


def test_preprocess_resizes_shorter_side_crops_and_normalises():
    images = torch.rand(2, 3, 90, 60)
    out = ImagePreprocess(size=32)(images)
    assert out.shape == (2, 3, 32, 32)
    gray = ImagePreprocess(size=8)(torch.full((1, 3, 8, 8), 0.5))
    expected = (0.5 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)
    assert torch.allclose(gray[0, :, 0, 0], expected)


def test_tensor_resize_is_close_to_pil_bicubic():
    """ImageReward and the LAION predictor resize PIL images; the tensor resize differs by uint8 rounding only."""
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (24, 20, 3)), np.ones((12, 12, 1))).astype(np.uint8)  # (288, 240, 3)
    pil = Image.fromarray(smooth)
    reference = to_tensor(pil.resize((224, 268), Image.BICUBIC))  # shorter side 240 → 224
    ours = ImagePreprocess(size=224, crop=(268, 224), mean=(0, 0, 0), std=(1, 1, 1))(to_tensor(pil)[None])[0]
    assert (ours - reference).abs().mean() < 2 / 255


def test_missing_local_file_is_one_sentence(tmp_path):
    with pytest.raises(MissingWeightsError, match="No weight file at") as err:
        resolve_file(str(tmp_path / "HPS_v2_compressed.pt"), "HPS_v2_compressed.pt")
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")


def test_url_offline_names_file_and_how_to_get_it():
    with pytest.raises(MissingWeightsError, match="'model.pth' is not in .*HF_HUB_OFFLINE=1.*download https://"):
        resolve_file("https://example.invalid/weights/model.pth", "model.pth")


@pytest.mark.parametrize("make", [
    lambda: HPSv2Score("v2.0"),
    lambda: HPSv2Score("v2.1"),
    PickScore,
    ImageReward,
    AestheticScore,
    CLIPScore,
])
def test_real_weights_offline_fail_fast_with_one_sentence(make):
    with pytest.raises(MissingWeightsError) as err:
        make()
    message = str(err.value)
    assert "\n" not in message and message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert "HF_HUB_OFFLINE=1" in message or "hf download" in message  # why, and how to get the weights


def test_unknown_hps_version():
    with pytest.raises(ValueError, match="v2.0"):
        HPSv2Score("v3")


def test_shared_builds_once():
    calls = []
    key = ("test", object())
    first = shared(key, lambda: calls.append(1) or torch.nn.Linear(1, 1))
    assert shared(key, lambda: calls.append(1) or torch.nn.Linear(1, 1)) is first
    assert calls == [1]


def test_image_reward_real_size_key_table():
    """Keys and shapes of the official ImageReward.pt layout (BLIP ViT-L/16, BERT-base with cross-attention)."""
    with torch.device("meta"):
        model = ImageRewardModel(tiny_metrics.image_reward_config(real_size=True))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["blip.visual_encoder.pos_embed"] == (1, 197, 1024)
    assert shapes["blip.visual_encoder.blocks.23.attn.qkv.weight"] == (3072, 1024)
    assert shapes["blip.text_encoder.embeddings.word_embeddings.weight"] == (30524, 768)
    assert shapes["blip.text_encoder.embeddings.position_ids"] == (1, 512)
    assert shapes["blip.text_encoder.encoder.layer.11.crossattention.self.value.weight"] == (768, 1024)
    assert shapes["blip.vision_proj.weight"] == (256, 1024) and shapes["blip.text_proj.weight"] == (256, 768)
    assert [k for k in shapes if k.startswith("mlp.")] == [f"mlp.layers.{i}.{p}" for i in (0, 2, 4, 6, 7)
                                                           for p in ("weight", "bias")]
    assert sum(v.numel() for v in model.parameters()) > 440e6
