"""The backbone interface on tiny models of each family."""

import pytest
import torch

from goldennoise.backbones import StableDiffusionXLBackbone, load_backbone
from goldennoise.backbones.tiny import clip_tokenizer
from goldennoise.errors import MissingWeightsError

PROMPTS = ["a photo of a cat", "a red circle left of a blue square"]


def test_tokenizer_uses_the_real_clip_vocabulary(tiny_sd):
    full = clip_tokenizer()
    assert len(full) == 49408 and full.model_max_length == 77
    assert full("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]  # OpenAI CLIP's ids
    tiny_ids = tiny_sd.tokenizers[0]("a photo of a cat").input_ids  # 2,000 merges: same ids for the tokens it keeps
    assert tiny_ids[1:6] == [320, 1125, 539, 320, 2368] and len(tiny_sd.tokenizers[0]) == 2514


def test_encode_prompt_shapes(tiny_backbone):
    cond, uncond = tiny_backbone.encode_prompt(PROMPTS)
    width = 64 if isinstance(tiny_backbone, StableDiffusionXLBackbone) else 32
    assert cond.embeds.shape == uncond.embeds.shape == (2, 77, width)
    if isinstance(tiny_backbone, StableDiffusionXLBackbone):
        assert cond.pooled.shape == (2, 32)
        assert torch.count_nonzero(uncond.embeds) == 0  # force_zeros_for_empty_prompt
    else:
        assert cond.pooled is None
        torch.testing.assert_close(uncond.embeds[0], uncond.embeds[1])  # both encode ""


def test_negative_prompts_are_encoded_and_checked(tiny_sdxl):
    _, uncond = tiny_sdxl.encode_prompt(PROMPTS, negative_prompts=["blurry", "dark"])
    assert torch.count_nonzero(uncond.embeds) > 0
    with pytest.raises(ValueError, match="negative prompts"):
        tiny_sdxl.encode_prompt(PROMPTS, negative_prompts=["only one"])
    with pytest.raises(ValueError, match="non-empty list of strings"):
        tiny_sdxl.encode_prompt([])


def test_latent_shape(tiny_sd):
    assert tiny_sd.latent_shape() == (4, 32, 32)
    assert tiny_sd.latent_shape(96, 128) == (4, 48, 64)
    with pytest.raises(ValueError, match="divisible"):
        tiny_sd.latent_shape(65, 64)


def test_guidance_scale_is_the_cfg_combination(tiny_backbone):
    cond, uncond = tiny_backbone.encode_prompt(PROMPTS, negative_prompts=["x", "y"])
    x, t = torch.randn(2, *tiny_backbone.latent_shape()), torch.tensor(501)
    eps_c = tiny_backbone.predict_noise(x, t, cond, uncond, 1.0)
    eps_u = tiny_backbone.predict_noise(x, t, cond, uncond, 0.0)
    guided = tiny_backbone.predict_noise(x, t, cond, uncond, 4.0)
    torch.testing.assert_close(guided, eps_u + 4.0 * (eps_c - eps_u), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="batch"):
        tiny_backbone.predict_noise(x[:1], t, cond, uncond, 4.0)


def test_v_prediction_is_converted_to_epsilon(tiny_sd_v):
    cond, _ = tiny_sd_v.encode_prompt(PROMPTS[:1])
    x, t = torch.randn(1, *tiny_sd_v.latent_shape()), torch.tensor(301)
    v = tiny_sd_v.unet(x, t, encoder_hidden_states=cond.embeds).sample
    alpha = tiny_sd_v.alphas_cumprod[301]
    expected = alpha.sqrt() * v + (1 - alpha).sqrt() * x
    torch.testing.assert_close(tiny_sd_v.predict_noise(x, t, cond), expected)


def test_decode_gives_images_in_unit_range_and_encode_inverts_shape(tiny_sd):
    images = tiny_sd.decode(torch.randn(2, 4, 32, 32))
    assert images.shape == (2, 3, 64, 64) and images.min() >= 0 and images.max() <= 1
    assert tiny_sd.encode_images(images).shape == (2, 4, 32, 32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tiny_sd.encode_images(images * 2 - 1)


def test_sdxl_ddim_schedule_uses_leading_spacing(tiny_sdxl):
    assert tiny_sdxl.ddim_schedule(10).timesteps[:2].tolist() == [901, 801]
    assert tiny_sdxl.ddim_schedule(50).timesteps[:2].tolist() == [981, 961]


def test_save_and_reload_through_a_local_folder(tiny_backbone, tmp_path):
    tiny_backbone.save_pretrained(tmp_path / "model")
    reloaded = load_backbone(str(tmp_path / "model"))
    assert type(reloaded) is type(tiny_backbone) and reloaded.prediction_type == tiny_backbone.prediction_type
    cond, uncond = tiny_backbone.encode_prompt(PROMPTS)
    cond2, uncond2 = reloaded.encode_prompt(PROMPTS)
    x = torch.randn(2, *tiny_backbone.latent_shape())
    torch.testing.assert_close(reloaded.predict_noise(x, 401, cond2, uncond2, 3.0),
                               tiny_backbone.predict_noise(x, 401, cond, uncond, 3.0))


def test_bfloat16_backbone_keeps_latents_in_their_dtype():
    backbone = load_backbone("tiny-sd", dtype="bf16")
    cond, _ = backbone.encode_prompt(PROMPTS[:1])
    eps = backbone.predict_noise(torch.randn(1, 4, 32, 32), 501, cond)
    assert backbone.dtype == torch.bfloat16 and eps.dtype == torch.float32


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("/no/such/model", "No model folder at '/no/such/model'"),
     ("someone/not-downloaded", "hub is offline"),
     ("./relative/missing", "No model folder")],
)
def test_missing_models_give_one_sentence(name, fragment):
    with pytest.raises(MissingWeightsError, match=fragment) as info:
        load_backbone(name)
    assert str(info.value).count(". ") == 0 and "\n" not in str(info.value)


def test_folder_without_model_index_is_named(tmp_path):
    with pytest.raises(MissingWeightsError, match="has no model_index.json"):
        load_backbone(str(tmp_path))


def test_missing_component_weights_name_the_file(tiny_sd, tmp_path):
    tiny_sd.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="diffusion_pytorch_model"):
        load_backbone(str(tmp_path / "model"))


def test_unknown_dtype_is_rejected():
    with pytest.raises(ValueError, match="Unknown dtype"):
        load_backbone("tiny-sd", dtype="float8")
