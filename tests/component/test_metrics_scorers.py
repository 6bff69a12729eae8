"""Every metric end to end on tiny random-weight scorers: values, gradients, functional twins, DDP-style merging,
loading from local files, sharing."""

import copy
import json

import pytest
import torch

import goldennoise.metrics.image_reward as image_reward_module
from goldennoise.metrics import AestheticScore, CLIPScore, HPSv2Score, ImageReward, PickScore
from goldennoise.metrics import tiny as tiny_metrics
from goldennoise.metrics.aesthetic import load_aesthetic
from goldennoise.metrics.clip_score import load_clip_scorer
from goldennoise.metrics.functional import aesthetic_score, clip_score, hpsv2_score, image_reward, pickscore
from goldennoise.metrics.loading import release
from goldennoise.metrics.pickscore import load_pickscore

PROMPTS = ["a photo of a cat", "a red car in the city", "an old man sitting"]
CASES = {
    "hpsv2.1": (HPSv2Score, hpsv2_score, tiny_metrics.hpsv2_scorer),
    "pickscore": (PickScore, pickscore, tiny_metrics.pickscore_scorer),
    "image_reward": (ImageReward, image_reward, tiny_metrics.image_reward_scorer),
    "aesthetic": (AestheticScore, aesthetic_score, tiny_metrics.aesthetic_scorer),
    "clip_score": (CLIPScore, clip_score, tiny_metrics.clip_scorer),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    metric_class, functional, build = CASES[request.param]
    return request.param, metric_class, functional, build()


def _images(n=3, seed=0, size=(72, 64)):
    return torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(seed))


def test_metric_mean_per_sample_functional_and_name(case):
    name, metric_class, functional, scorer = case
    metric = metric_class(model=scorer)
    images = _images()
    metric.update(images[:2], PROMPTS[:2])
    metric.update(images[2:], PROMPTS[2:])
    per_sample = metric.per_sample()
    assert per_sample.shape == (3,) and torch.isfinite(per_sample).all()
    assert per_sample.std() > 0  # input-dependent
    expected_mean = per_sample.mean().clamp(min=0) if name == "clip_score" else per_sample.mean()
    assert torch.allclose(metric.compute(), expected_mean, atol=1e-6)
    assert torch.allclose(functional(images, PROMPTS, model=scorer), per_sample, atol=1e-5)
    assert metric.log_name("val") == f"val/{name}"
    assert metric.higher_is_better and metric.is_differentiable and not metric.full_state_update


def test_score_keeps_gradient_to_images(case):
    _, metric_class, _, scorer = case
    images = _images(2).requires_grad_()
    scores = metric_class(model=scorer).score(images, PROMPTS[:2])
    scores.sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in scorer.parameters())  # frozen weights


def test_scale_multiplies(case):
    _, metric_class, _, scorer = case
    images = _images(2)
    raw = metric_class(model=scorer).score(images, PROMPTS[:2])
    assert torch.allclose(metric_class(model=scorer, scale=100.0).score(images, PROMPTS[:2]), 100 * raw, rtol=1e-5)


def test_states_merge_like_ddp(case):
    """Per-sample "cat" states: two ranks' metrics merged give the mean over all samples."""
    _, metric_class, _, scorer = case
    images = _images(4)
    rank0, rank1, single = (metric_class(model=scorer) for _ in range(3))
    assert rank0._reductions["scores"].__name__ == "dim_zero_cat"
    rank0.update(images[:1], PROMPTS[:1])
    rank1.update(images[1:3], PROMPTS[:2])
    single.update(images[:3], PROMPTS[:1] + PROMPTS[:2])
    rank0.merge_state(rank1)
    assert torch.allclose(rank0.compute(), single.compute(), atol=1e-5)


def test_copies_share_the_scorer(case):
    _, metric_class, _, scorer = case
    metric = metric_class(model=scorer)
    assert copy.deepcopy(metric).scorer is metric.scorer
    assert metric.clone().scorer is scorer
    assert not any(k for k in metric.state_dict())  # no scorer weights, no persistent states


def test_factory_argument_is_called():
    metric = HPSv2Score("v2.0", model=tiny_metrics.hpsv2_scorer)
    assert metric.name == "hpsv2" and metric.log_name("test") == "test/hpsv2"
    assert metric.scorer.model.visual.image_size == (64, 64)


def _save_tiny_clip(backbone, folder):
    backbone.model.save_pretrained(folder)
    from transformers import CLIPProcessor

    CLIPProcessor(image_processor=_image_processor(backbone), tokenizer=backbone.tokenizer).save_pretrained(folder)


def _image_processor(backbone):
    from transformers import CLIPImageProcessor

    size = backbone.preprocess.size
    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def test_clip_family_loads_folders_and_shares_the_backbone(tmp_path):
    """PickScore / CLIPScore / AES load a save_pretrained folder offline; AES and CLIPScore share one CLIP."""
    backbone = tiny_metrics.hf_clip_backbone(seed=5)
    folder = str(tmp_path / "clip")
    _save_tiny_clip(backbone, folder)
    mlp_path = tmp_path / "aesthetic.pth"
    torch.save(tiny_metrics.aesthetic_scorer().mlp.state_dict(), mlp_path)
    try:
        clip = load_clip_scorer(folder)
        aes = load_aesthetic(str(mlp_path), clip=folder)
        pick = load_pickscore(folder, processor=folder)
        assert aes.backbone is clip.backbone is pick.backbone
        assert CLIPScore(model=folder).scorer.backbone is clip.backbone
        images = _images(2)
        assert torch.allclose(pick(images, PROMPTS[:2]), PickScore(model=tiny_metrics.PickScorer(backbone))
                              .score(images, PROMPTS[:2]), atol=1e-5)
    finally:
        release(("hf-clip", folder, folder))


def test_image_reward_loads_a_synthetic_official_checkpoint(tmp_path, monkeypatch):
    """load_image_reward: ImageReward.pt (reference key layout, strict) + med_config.json + a tokenizer folder."""
    source = tiny_metrics.image_reward_scorer(seed=7)
    checkpoint, med_config, vocab = tmp_path / "ImageReward.pt", tmp_path / "med_config.json", tmp_path / "bert"
    torch.save(source.model.state_dict(), checkpoint)
    med_config.write_text(json.dumps(source.model.config.text))
    vocab.mkdir()
    tiny_metrics.write_bert_vocab(vocab)
    tiny_vision = dict(image_size=64, vision_width=32, vision_depth=2, vision_heads=4)
    monkeypatch.setattr(image_reward_module, "ImageRewardConfig",
                        lambda text: tiny_metrics.ImageRewardConfig(text=text, **tiny_vision))
    try:
        loaded = image_reward_module.load_image_reward(str(checkpoint), str(med_config), str(vocab))
        images = _images(2)
        assert torch.allclose(loaded(images, PROMPTS[:2]), source.eval()(images, PROMPTS[:2]), atol=1e-5)
    finally:
        release()
