"""Tiny offline models of the transformer families (SD3, FLUX.1 dev / schnell, Hunyuan-DiT), like :mod:`.tiny`.

Every component is the real diffusers / transformers class from a small config with random weights. CLIP
tokenizers carry the real BPE vocabulary (:func:`goldennoise.backbones.tiny.clip_tokenizer`); the T5 / mT5 and BERT
tokenizers are built in code from small vocabularies (a Unigram model over characters, a WordPiece vocabulary file
written to a temporary folder), so nothing touches the hub. SD3 and FLUX: 64 px images ↔ C×32×32 latents;
Hunyuan-DiT has the real VAE factor 8 and latent size (its pipeline assumes the factor and resizes to its
supported sizes, 768-1280 px): 1024 px ↔ 4×128×128, in 8×8 patches (256 tokens).
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    HunyuanDiT2DModel,
    HunyuanDiTPipeline,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

from goldennoise.backbones.flux import FluxBackbone
from goldennoise.backbones.hunyuan import HunyuanDiTBackbone
from goldennoise.backbones.sd3 import StableDiffusion3Backbone
from goldennoise.backbones.tiny import clip_text_config, clip_tokenizer

T5_MAX_LENGTH = 32
"""T5 tokens of the tiny SD3 / FLUX models (the real ones use 256 / 512)."""

HUNYUAN_SCHEDULER = dict(beta_start=0.00085, beta_end=0.03, beta_schedule="scaled_linear", clip_sample=False,
                         prediction_type="v_prediction", steps_offset=1, timestep_spacing="leading")
"""Hunyuan-DiT's DDPM schedule (v-prediction)."""

FLUX_DEV_SCHEDULER = dict(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                          base_image_seq_len=256, max_image_seq_len=4096)
"""FLUX.1-dev's resolution-dependent shift."""


def t5_tokenizer(model_max_length: int = T5_MAX_LENGTH) -> T5TokenizerFast:
    """A T5 tokenizer over a Unigram vocabulary of characters (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2), offline.

    Built as a small ``tokenizer.json`` (SentencePiece-style ``▁`` word prefix, ``</s>`` appended), the file format
    every transformers version reads.
    """
    symbols = string.ascii_lowercase + string.digits + string.punctuation
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(c, -3.0) for c in symbols] + [("▁" + c, -2.5) for c in string.ascii_lowercase]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=2))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                             special_tokens=[("</s>", 1)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "tokenizer.json")
        tokenizer.save(str(path))
        return T5TokenizerFast(tokenizer_file=str(path), model_max_length=model_max_length, extra_ids=0,
                               pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def bert_tokenizer(model_max_length: int = 77) -> BertTokenizer:
    """A BERT WordPiece tokenizer over lowercase characters and a few CJK characters, offline."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase, *string.digits,
              *string.punctuation, *("##" + c for c in string.ascii_lowercase + string.digits), *"一只红色的狐狸猫狗"]
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp, "vocab.txt")
        vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
        return BertTokenizer(str(vocab), model_max_length=model_max_length)


def _t5_encoder(tokenizer: T5TokenizerFast, d_model: int) -> T5EncoderModel:
    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=37, num_layers=1,
                                   num_heads=4, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1))


def _flow_vae(latent_channels: int) -> AutoencoderKL:
    return AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=latent_channels, norm_num_groups=32,
                         use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)


def tiny_sd3_pipeline(seed: int = 0, num_merges: int = 2000) -> StableDiffusion3Pipeline:
    """A tiny SD3.5-style pipeline: CLIP-L / CLIP-G with projection and T5, an MMDiT with patch 2, shift 3."""
    clip = clip_tokenizer(num_merges)
    t5 = t5_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(sample_size=32, patch_size=2, in_channels=16, num_layers=1,
                                            attention_head_dim=8, num_attention_heads=4, joint_attention_dim=64,
                                            caption_projection_dim=32, pooled_projection_dim=64, out_channels=16,
                                            pos_embed_max_size=32)
        vae = _flow_vae(16)
        text_encoder = CLIPTextModelWithProjection(clip_text_config(clip, projection_dim=32))
        text_encoder_2 = CLIPTextModelWithProjection(clip_text_config(clip, projection_dim=32))
        text_encoder_3 = _t5_encoder(t5, d_model=64)
    return StableDiffusion3Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                                    vae=vae, text_encoder=text_encoder, tokenizer=clip, text_encoder_2=text_encoder_2,
                                    tokenizer_2=clip, text_encoder_3=text_encoder_3, tokenizer_3=t5)


def tiny_flux_pipeline(variant: str = "dev", seed: int = 0, num_merges: int = 2000) -> FluxPipeline:
    """A tiny FLUX.1 pipeline: ``dev`` (guidance input, dynamic shift) or ``schnell`` (no guidance input, shift 1)."""
    if variant not in ("dev", "schnell"):
        raise ValueError(f"Unknown FLUX variant {variant!r}; choose 'dev' or 'schnell'.")
    clip = clip_tokenizer(num_merges)
    t5 = t5_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                             attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                             pooled_projection_dim=32, guidance_embeds=variant == "dev",
                                             axes_dims_rope=(4, 6, 6))
        vae = _flow_vae(4)
        text_encoder = CLIPTextModel(clip_text_config(clip))
        text_encoder_2 = _t5_encoder(t5, d_model=32)
    scheduler = FlowMatchEulerDiscreteScheduler(**(FLUX_DEV_SCHEDULER if variant == "dev" else {"shift": 1.0}))
    return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=clip,
                        text_encoder_2=text_encoder_2, tokenizer_2=t5, transformer=transformer)


def tiny_hunyuan_dit_pipeline(seed: int = 0, text_dim: int = 1024) -> HunyuanDiTPipeline:
    """A tiny Hunyuan-DiT pipeline: BERT (width ``text_dim``; the real one 1024) + mT5, size-conditioned DiT.

    ``text_dim=1024`` gives the real first-encoder width, the one NPNet's official DiT checkpoint reads.
    """
    bert, t5 = bert_tokenizer(), t5_tokenizer(model_max_length=256)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        transformer = HunyuanDiT2DModel(sample_size=128, num_layers=2, patch_size=8, attention_head_dim=8,
                                        num_attention_heads=3, in_channels=4, cross_attention_dim=text_dim,
                                        cross_attention_dim_t5=32, pooled_projection_dim=16, hidden_size=24,
                                        text_len=77, text_len_t5=256, use_style_cond_and_image_meta_size=True)
        vae = AutoencoderKL(block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=8)
        text_encoder = BertModel(BertConfig(vocab_size=len(bert), hidden_size=text_dim, num_hidden_layers=1,
                                            num_attention_heads=4, intermediate_size=37, max_position_embeddings=80),
                                 add_pooling_layer=False)
        text_encoder_2 = _t5_encoder(t5, d_model=32)
    return HunyuanDiTPipeline(vae=vae, text_encoder=text_encoder, tokenizer=bert, transformer=transformer,
                              scheduler=DDPMScheduler(**HUNYUAN_SCHEDULER), text_encoder_2=text_encoder_2,
                              tokenizer_2=t5, **HunyuanDiTBackbone.load_kwargs)


def tiny_sd3(seed: int = 0) -> StableDiffusion3Backbone:
    """The tiny SD3 pipeline of :func:`tiny_sd3_pipeline` as a backbone."""
    return StableDiffusion3Backbone.from_pipeline(tiny_sd3_pipeline(seed), max_sequence_length=T5_MAX_LENGTH)


def tiny_flux(variant: str = "dev", seed: int = 0) -> FluxBackbone:
    """The tiny FLUX pipeline of :func:`tiny_flux_pipeline` as a backbone (64 px native)."""
    return FluxBackbone.from_pipeline(tiny_flux_pipeline(variant, seed), max_sequence_length=T5_MAX_LENGTH,
                                      native_size=64)


def tiny_hunyuan_dit(seed: int = 0, text_dim: int = 1024) -> HunyuanDiTBackbone:
    """The tiny Hunyuan-DiT pipeline of :func:`tiny_hunyuan_dit_pipeline` as a backbone."""
    return HunyuanDiTBackbone.from_pipeline(tiny_hunyuan_dit_pipeline(seed, text_dim))
