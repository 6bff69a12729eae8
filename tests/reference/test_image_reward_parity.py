"""ImageReward: goldennoise vs image-reward 1.5 (with the transformers-5 compat layer) on identical tiny weights.

The reference hard-codes BLIP ViT-L/16 and 224 px; its ``create_vit`` is swapped for a 2-block, 32-wide ViT of the
reference's own ``VisionTransformer`` class and the med config has 2 layers (768 wide: the reference's reward head
hard-codes that input), so the test stays cheap while every scoring line of the reference runs. The real-size key
layout is compared on the meta device.
"""

import functools
import importlib
import json
import types

import numpy as np
import pytest
import torch
from PIL import Image
from reference_compat import install_image_reward_compat, require
from torchvision.transforms.functional import to_tensor

from goldennoise.metrics import ImageReward
from goldennoise.metrics import tiny as tiny_metrics
from goldennoise.metrics.image_reward import ImageRewardModel, ImageRewardScorer

PROMPT = "a beautiful painting of a dog sitting in the city"


def _reference_modules():
    try:
        install_image_reward_compat()  # must run before the package imports
    except ImportError:
        require("ImageReward")  # skips locally without the reference packages, fails in CI
    names = ("ImageReward.ImageReward", "ImageReward.models.BLIP.blip_pretrain", "ImageReward.models.BLIP.vit")
    return tuple(importlib.import_module(name) for name in names)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    image_reward_module, blip_pretrain, vit = _reference_modules()
    tokenizer = tiny_metrics.tiny_blip_tokenizer()
    med_config = tmp_path_factory.mktemp("med") / "med_config.json"
    med_config.write_text(json.dumps(tiny_metrics.tiny_med_config(len(tokenizer), hidden_size=768)))

    def tiny_vit(vit_name, image_size, *args):
        return vit.VisionTransformer(img_size=image_size, patch_size=16, embed_dim=32, depth=2, num_heads=4), 32

    patches = pytest.MonkeyPatch()
    patches.setattr(blip_pretrain, "init_tokenizer", lambda: tokenizer)
    patches.setattr(blip_pretrain, "create_vit", tiny_vit)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = image_reward_module.ImageReward(med_config=str(med_config), device="cpu").eval()
        for layer in model.mlp.layers:  # the reference init makes every reward the same constant
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=2 / layer.in_features**0.5)
                torch.nn.init.normal_(layer.bias, std=0.5)
    patches.undo()
    return model, tokenizer


def test_image_reward_matches_reference(reference, tmp_path):
    model, tokenizer = reference
    checkpoint = tmp_path / "ImageReward.pt"
    torch.save(model.state_dict(), checkpoint)
    config = tiny_metrics.image_reward_config(vocab_size=len(tokenizer), text_width=768)
    ours = ImageRewardScorer(ImageRewardModel.from_checkpoint(checkpoint, config), tokenizer)  # strict load

    rng = np.random.default_rng(0)
    pils = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(3)]
    _, expected = model.inference_rank(PROMPT, pils)
    single = model.score(PROMPT, pils[0])

    metric = ImageReward(model=ours)
    metric.update(torch.stack([to_tensor(p) for p in pils]), [PROMPT] * 3)
    got = metric.per_sample()
    print(f"parity image_reward: max abs diff {(got - torch.tensor(expected)).abs().max():.2e}")
    assert (got - torch.tensor(expected)).abs().max() < 1e-4, (got, expected)
    assert abs(got[0].item() - single) < 1e-4
    assert torch.tensor(expected).std() > 1e-3  # input-dependent, not the init constant


def test_image_reward_gradient_matches_reference_score_gard(reference):
    model, tokenizer = reference
    config = tiny_metrics.image_reward_config(vocab_size=len(tokenizer), text_width=768)
    ours = ImageRewardScorer(ImageRewardModel(config), tokenizer)
    ours.model.load_state_dict(model.state_dict(), strict=True)
    ours.eval()
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    ref_images = images.clone().requires_grad_()
    tokens = tokenizer([PROMPT] * 2, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    normalized = ours.preprocess(ref_images)
    model.score_gard(tokens.input_ids, tokens.attention_mask, normalized).sum().backward()
    our_images = images.clone().requires_grad_()
    ours(our_images, [PROMPT] * 2).sum().backward()
    assert torch.allclose(our_images.grad, ref_images.grad, atol=1e-5)


def test_real_size_state_dict_keys_equal_reference(tmp_path):
    """Official layout at real size (BLIP ViT-L/16 + BERT-base): same keys and shapes, built on the meta device."""
    image_reward_module, blip_pretrain, vit = _reference_modules()
    tokenizer = tiny_metrics.tiny_blip_tokenizer()
    med_config = tmp_path / "med_config.json"
    med_config.write_text(json.dumps(tiny_metrics.MED_CONFIG_BERT_BASE))
    patches = pytest.MonkeyPatch()
    patches.setattr(blip_pretrain, "init_tokenizer", lambda: tokenizer)
    # the reference ViT reads drop-path rates with .item(), impossible on meta tensors: give it a CPU linspace
    cpu_linspace = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
    cpu_linspace.linspace = functools.partial(torch.linspace, device="cpu")
    patches.setattr(vit, "torch", cpu_linspace)
    try:
        with torch.device("meta"):
            reference_model = image_reward_module.ImageReward(med_config=str(med_config), device="meta")
            ours = ImageRewardModel(tiny_metrics.image_reward_config(real_size=True))
    finally:
        patches.undo()
    ref_shapes = {k: tuple(v.shape) for k, v in reference_model.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert our_shapes == ref_shapes
    assert our_shapes["blip.text_encoder.encoder.layer.11.crossattention.self.key.weight"] == (768, 1024)
