"""PickScore, CLIPScore and AES vs their reference code on identical tiny weights.

- PickScore: the published snippet (processor → ``get_*_features`` → normalise → ``logit_scale.exp() * dot``), with
  transformers 5's ``.pooler_output``.
- CLIPScore: torchmetrics 1.9.0's own ``clip_score`` / ``CLIPScore`` through its callable hook
  (docs/dependencies.md §5).
- AES: image-reward 1.5's ``AestheticScore`` (the LAION predictor's code: OpenAI ``clip`` preprocessing and model,
  ``F.normalize`` then the MLP) with ``clip.load`` patched to a tiny OpenAI CLIP; our transformers CLIP gets the same
  weights converted from the OpenAI layout.
"""

import functools
import importlib

import numpy as np
import pytest
import torch
from PIL import Image
from reference_compat import install_image_reward_compat, require
from torchvision.transforms.functional import to_tensor
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from goldennoise.backbones.tiny import clip_tokenizer
from goldennoise.metrics import AestheticScore, CLIPScore, PickScore
from goldennoise.metrics import tiny as tiny_metrics
from goldennoise.metrics.aesthetic import AestheticMLP, AestheticScorer
from goldennoise.metrics.functional import clip_score
from goldennoise.metrics.hf_clip import CLIPBackbone

PROMPTS = ["a photo of a cat", "a red car parked in a busy city street at night"]


def _pils(size, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


def _reference_pickscore(model, processor, images, prompts, **image_kwargs):
    """The PickScore README's scoring, one prompt per image, under transformers 5."""
    image_inputs = processor(images=images, return_tensors="pt", **image_kwargs)
    text_inputs = processor(text=prompts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        image_embs = model.get_image_features(**image_inputs).pooler_output
        image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
        text_embs = model.get_text_features(**text_inputs).pooler_output
        text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
        return model.logit_scale.exp() * (text_embs * image_embs).sum(-1)


@pytest.fixture(scope="module")
def pick():
    scorer = tiny_metrics.pickscore_scorer(seed=2)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 64},
                                                                 crop_size={"height": 64, "width": 64}),
                              tokenizer=scorer.backbone.tokenizer)
    return scorer, processor


def test_pickscore_matches_reference_on_pil_images(pick):
    scorer, processor = pick
    pils = _pils((64, 64))
    expected = _reference_pickscore(scorer.backbone.model, processor, pils, PROMPTS)
    metric = PickScore(model=scorer)
    metric.update(torch.stack([to_tensor(p) for p in pils]), PROMPTS)
    print(f"parity pickscore (PIL): max abs diff {(metric.per_sample() - expected).abs().max():.2e}")
    assert (metric.per_sample() - expected).abs().max() < 1e-4


def test_pickscore_matches_reference_when_resizing(pick):
    scorer, processor = pick
    images = torch.rand(2, 3, 90, 75, generator=torch.Generator().manual_seed(0))
    expected = _reference_pickscore(scorer.backbone.model, processor, list(images), PROMPTS, do_rescale=False)
    diff = (PickScore(model=scorer).score(images, PROMPTS) - expected).abs().max()
    print(f"parity pickscore (resize): max abs diff {diff:.2e}")
    assert diff < 1e-4


class _PooledCLIP(CLIPModel):
    """docs/dependencies.md §5: torchmetrics 1.9.0 needs tensors from get_*_features under transformers 5."""

    def get_image_features(self, *args, **kwargs):
        return super().get_image_features(*args, **kwargs).pooler_output

    def get_text_features(self, *args, **kwargs):
        return super().get_text_features(*args, **kwargs).pooler_output


def _torchmetrics_model(scorer):
    model = _PooledCLIP(scorer.backbone.model.config).eval()
    model.load_state_dict(scorer.backbone.model.state_dict())
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 64},
                                                                 crop_size={"height": 64, "width": 64}),
                              tokenizer=scorer.backbone.tokenizer)
    return model, processor


def test_clip_score_matches_torchmetrics():
    from torchmetrics.functional.multimodal.clip_score import _clip_score_update
    from torchmetrics.multimodal import CLIPScore as TorchmetricsCLIPScore

    scorer = tiny_metrics.clip_scorer(seed=3)
    factory = functools.partial(_torchmetrics_model, scorer)
    images = torch.rand(2, 3, 80, 64, generator=torch.Generator().manual_seed(1))
    reference = TorchmetricsCLIPScore(model_name_or_path=factory)
    reference.update(list(images * 255), PROMPTS)  # torchmetrics feeds the processor 0–255 images
    model, processor = factory()
    with torch.no_grad():
        expected_per_sample, _ = _clip_score_update(list(images * 255), PROMPTS, model, processor)

    ours = CLIPScore(model=scorer)
    ours.update(images, PROMPTS)
    print(f"parity clip_score: max abs diff {(ours.per_sample() - expected_per_sample).abs().max():.2e}")
    assert (ours.per_sample() - expected_per_sample).abs().max() < 1e-4
    assert torch.allclose(ours.compute(), reference.compute(), atol=1e-4)
    assert torch.allclose(clip_score(images, PROMPTS, model=scorer).mean().clamp(min=0), reference.compute(), atol=1e-4)


def openai_visual_to_transformers(state: dict, layers: int) -> dict:
    """OpenAI CLIP ``visual.*`` weights → transformers ``CLIPModel`` vision tower + ``visual_projection``."""
    out = {
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "visual_projection.weight": state["visual.proj"].T,
    }
    for ours, theirs in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
        for p in ("weight", "bias"):
            out[f"vision_model.{ours}.{p}"] = state[f"visual.{theirs}.{p}"]
    for i in range(layers):
        src, dst = f"visual.transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        for p in ("weight", "bias"):
            q, k, v = state[src + f"attn.in_proj_{p}"].chunk(3)
            out.update({dst + f"self_attn.q_proj.{p}": q, dst + f"self_attn.k_proj.{p}": k,
                        dst + f"self_attn.v_proj.{p}": v})
            for ours, theirs in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                                 ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[dst + f"{ours}.{p}"] = state[src + f"{theirs}.{p}"]
    return out


def test_aesthetic_matches_laion_reference(tmp_path, monkeypatch):
    try:
        install_image_reward_compat()
    except ImportError:
        require("ImageReward")
    clip = require("clip")
    aesthetic_module = importlib.import_module("ImageReward.models.AestheticScore")

    width, layers, patch, embed = 128, 2, 32, 768  # OpenAI CLIP: heads = width // 64; the reference MLP takes 768
    with torch.random.fork_rng():
        torch.manual_seed(4)
        openai_model = clip.model.CLIP(embed, 224, layers, width, patch, 77, 49408, 32, 4, 1).float().eval()
        monkeypatch.setattr(aesthetic_module.clip, "load", lambda *a, **k: (openai_model, clip.clip._transform(224)))
        reference = aesthetic_module.AestheticScore(download_root=str(tmp_path), device="cpu").eval()
        for layer in reference.mlp.layers:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=2 / layer.in_features**0.5)
                torch.nn.init.normal_(layer.bias, std=0.5)

    tokenizer = clip_tokenizer(2000)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=1,
                         vocab_size=len(tokenizer), max_position_embeddings=77),
        vision_config=dict(hidden_size=width, intermediate_size=4 * width, num_attention_heads=width // 64,
                           num_hidden_layers=layers, image_size=224, patch_size=patch, hidden_act="quick_gelu"),
        projection_dim=embed)
    hf_model = CLIPModel(config).eval()
    converted = openai_visual_to_transformers(openai_model.state_dict(), layers)
    missing, _ = hf_model.load_state_dict(converted, strict=False)
    assert not [k for k in missing if k.startswith(("vision_model", "visual_projection"))]
    mlp = AestheticMLP(embed)
    mlp.load_state_dict(reference.mlp.state_dict(), strict=True)  # the reference head's key layout
    ours = AestheticScorer(CLIPBackbone(hf_model, CLIPProcessor(image_processor=CLIPImageProcessor(),
                                                                tokenizer=tokenizer)), mlp)

    paths = []
    for i, pil in enumerate(_pils((224, 224), n=3, seed=5)):
        paths.append(tmp_path / f"{i}.png")
        pil.save(paths[-1])
    _, expected = reference.inference_rank("unused", [str(p) for p in paths])
    images = torch.stack([to_tensor(Image.open(p).convert("RGB")) for p in paths])
    metric = AestheticScore(model=ours)
    metric.update(images)
    print(f"parity aesthetic: max abs diff {(metric.per_sample() - torch.tensor(expected)).abs().max():.2e}")
    assert (metric.per_sample() - torch.tensor(expected)).abs().max() < 1e-4
    assert torch.tensor(expected).std() > 1e-3
