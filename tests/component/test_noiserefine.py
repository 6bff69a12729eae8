"""NoiseRefine (arXiv 2412.03895) on tiny random-weight SD models in fp32: the acceptance checks of issue 13.

MSD surrogate = literal stop-gradient unroll (ε and v), identity at init, frozen base, adapter off in every rollout,
no unconditional batch in refined sampling, export round trip through a fresh diffusers pipeline, and one clear
error per bad input.
"""

import copy
import dataclasses
import json
import math

import lightning as L
import numpy as np
import pytest
import torch
from noiserefine_data import teacher_loader, teacher_records
from peft.tuners.tuners_utils import BaseTunerLayer
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from goldennoise.backbones import PromptEmbeds, load_backbone
from goldennoise.backbones.tiny import tiny_sd_pipeline
from goldennoise.cli import main
from goldennoise.collection.teacher import collect_teacher
from goldennoise.collection.teacher_config import TeacherConfig
from goldennoise.data import TextImagePairDataModule
from goldennoise.data.npd_embeddings import EmbeddingCache, build_embedding_cache
from goldennoise.evaluation.harness import MethodSpec, evaluate_batch
from goldennoise.lit.noiserefine import NoiseRefineModule, load_noiserefine_checkpoint, radial_power_spectrum
from goldennoise.noise import (
    Gaussian,
    NoiseContext,
    RefinedNoise,
    RefinerConfig,
    SamplerSettings,
    export_refiner,
    load_refiner,
)
from goldennoise.noise.msd import (
    check_affine,
    inverted_teacher,
    msd_constant,
    msd_literal_loss,
    msd_surrogate_loss,
    rollout,
)
from goldennoise.noise.noiserefine import (
    NoiseRefineNoise,
    inject_refiner,
    lora_parameters,
    merge_refiner,
    read_refiner,
    refine,
    refine_with_pipeline,
)
from goldennoise.sampling import invert_ddim, sample_ddim

PROMPTS = ["a red fox", "a blue jay"]
SIZE = 64  # pixels: 8x8 latents keep every tiny-model call cheap
LATENT = (4, 8, 8)
FAST = {"backbone": "tiny-sd", "rank": 4, "rollout_steps": 2, "lr": 1e-2, "target_modules": ["to_q", "to_v", "conv1"]}


def _refined_backbone(base, rank: int = 4, seed: int = 0):
    """A copy of ``base`` with a refiner whose LoRA weights are random (so every path carries a signal)."""
    backbone = copy.deepcopy(base)
    config = RefinerConfig(rank=rank)
    inject_refiner(backbone, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in lora_parameters(backbone):
            parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    return backbone, config


@pytest.fixture(scope="module")
def refined(tiny_sd):
    return _refined_backbone(tiny_sd)


def _batch(backbone):
    records = teacher_records(backbone, PROMPTS, [0, 1])
    noise = torch.stack([r["noise"] for r in records])
    teacher = torch.stack([r["latent"] for r in records])
    return noise, PromptEmbeds(torch.stack([r["prompt_embeds"] for r in records])), teacher


@pytest.mark.parametrize("name", ["tiny_sd", "tiny_sd_v"])
def test_surrogate_gradient_equals_the_literal_msd_gradient(name, request):
    backbone, config = _refined_backbone(request.getfixturevalue(name))
    noise, cond, teacher = _batch(backbone)
    schedule = backbone.ddim_schedule(2)
    params = lora_parameters(backbone)

    literal = msd_literal_loss(backbone, refine(backbone, noise, cond, config), cond, teacher, schedule)
    expected = torch.cat([g.flatten() for g in torch.autograd.grad(literal, params)])
    refined = refine(backbone, noise, cond, config)
    student = rollout(backbone, refined, cond, schedule)
    surrogate = msd_surrogate_loss(refined, student, teacher, msd_constant(backbone, schedule))
    got = torch.cat([g.flatten() for g in torch.autograd.grad(surrogate, params)])

    assert expected.norm() > 0
    assert ((got - expected).norm() / expected.norm()).item() < 1e-5


@pytest.mark.parametrize("name", ["tiny_sd", "tiny_sd_v"])
def test_the_stop_gradient_rollout_has_a_scalar_jacobian_k_over_two(name, request):
    backbone = request.getfixturevalue(name)
    cond = backbone.encode_prompt(PROMPTS)[0]
    schedule = backbone.ddim_schedule(3)
    x = torch.randn(2, *LATENT, requires_grad=True)
    out = sample_ddim(backbone.denoiser(cond, stop_network_gradient=True), x, schedule)
    probe = torch.randn_like(out)
    (vjp,) = torch.autograd.grad((out * probe).sum(), x)
    torch.testing.assert_close(vjp, msd_constant(backbone, schedule) / 2 * probe, rtol=1e-5, atol=1e-6)


def test_msd_constant_comes_from_the_backbone_scheduler(shapes):
    schedule = shapes.ddim_schedule(10)
    expected = 2 * math.sqrt(schedule.final_alpha_cumprod / float(schedule.alphas_cumprod[901]))
    assert msd_constant(shapes, schedule) == pytest.approx(expected, rel=1e-6)
    assert msd_constant(shapes, schedule) == pytest.approx(13.15, abs=0.01)  # cosine schedule, 10 leading steps
    clipped = type(schedule)(schedule.alphas_cumprod, schedule.timesteps, schedule.final_alpha_cumprod, 1.0)
    with pytest.raises(ValueError, match="clip_sample"):
        check_affine(clipped)


def test_identity_at_init_and_not_after_one_optimiser_step():
    module = NoiseRefineModule(**FAST)
    records = teacher_records(module.backbone, PROMPTS, [0, 1])
    batch = next(iter(teacher_loader(records)))
    cond = PromptEmbeds(batch["prompt_embeds"])
    assert torch.equal(refine(module.backbone, batch["noise"], cond, module.config), batch["noise"])

    optimizer = module.configure_optimizers()["optimizer"]
    module.training_step(batch, 0).backward()
    optimizer.step()
    moved = refine(module.backbone, batch["noise"], cond, module.config).detach()
    assert (moved - batch["noise"]).abs().max() > 1e-4


def test_a_warm_start_begins_at_the_exported_refiner_trains_it_and_refuses_other_lora_settings(refined, tmp_path):
    path = export_refiner(*refined, tmp_path / "refiner.safetensors", "tiny-sd")
    settings = {**FAST, "target_modules": None, "rank": refined[1].rank}  # the refiner's: default targets, rank 4
    module = NoiseRefineModule(**settings, init_refiner=str(path))
    records = teacher_records(module.backbone, PROMPTS, [0, 1])
    batch = next(iter(teacher_loader(records)))
    cond = PromptEmbeds(batch["prompt_embeds"])
    start = refine(module.backbone, batch["noise"], cond, module.config).detach()
    torch.testing.assert_close(start, refine(refined[0], batch["noise"], cond, refined[1]).detach(), rtol=0, atol=0)
    assert (start - batch["noise"]).abs().max() > 1e-3  # not the identity

    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=teacher_loader(records))
    moved = refine(module.backbone, batch["noise"], cond, module.config).detach()
    assert (moved - start).abs().max() > 1e-4
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    path.unlink()  # a checkpoint holds the adapter: the start file is no longer needed
    assert module.hparams.init_refiner == str(path)  # the module still says where it started
    for loaded in (load_noiserefine_checkpoint(tmp_path / "last.ckpt"),
                   NoiseRefineModule.load_from_checkpoint(tmp_path / "last.ckpt", weights_only=False)):
        torch.testing.assert_close(refine(loaded.backbone, batch["noise"], cond, loaded.config).detach(), moved,
                                   rtol=0, atol=0)

    other = export_refiner(*refined, tmp_path / "again.safetensors", "tiny-sd")
    with pytest.raises(ValueError, match=r"built with rank 4 \(here 2\), target_modules .*same LoRA settings"):
        NoiseRefineModule(**{**FAST, "rank": 2}, init_refiner=str(other))
    with pytest.raises(ValueError, match="another base model"):
        NoiseRefineModule(**{**settings, "backbone": "tiny-sdxl"}, init_refiner=str(other))


def test_training_keeps_the_base_frozen_and_checkpoints_hold_only_the_adapter(tmp_path):
    module = NoiseRefineModule(**FAST)
    base = {k: v.clone() for k, v in module.backbone.state_dict().items() if "lora_" not in k}
    grads: set[str] = set()
    for name, parameter in module.named_parameters():
        if parameter.requires_grad:
            parameter.register_hook(lambda g, name=name: grads.add(name))
    data = teacher_loader(teacher_records(module.backbone, PROMPTS, [0, 1]))
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=data)

    after = module.backbone.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base.items())
    assert grads == {f"backbone.unet.{n}" for n, p in module.backbone.unet.named_parameters() if "lora_" in n}
    assert all(p.requires_grad for p in lora_parameters(module.backbone))  # the adapter switch restored the flags

    trainer.save_checkpoint(tmp_path / "last.ckpt")
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)["state_dict"]
    assert state and all("lora_" in key for key in state)
    assert set(state) == {f"backbone.unet.{n}" for n, _ in module.backbone.unet.named_parameters() if "lora_" in n}
    loaded = NoiseRefineModule.load_from_checkpoint(tmp_path / "last.ckpt", weights_only=False)
    trained = dict(module.backbone.unet.named_parameters())
    assert all(torch.equal(p, trained[n]) for n, p in loaded.backbone.unet.named_parameters())


def _randomise_lora(module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in lora_parameters(module.backbone):
            parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))


def test_gradient_checkpointing_gives_the_same_lora_gradient():
    """Each block's recomputation in the backward pass runs with the adapter on, as its forward did."""
    plain, checkpointed = NoiseRefineModule(**FAST), NoiseRefineModule(**FAST, gradient_checkpointing=True)
    assert checkpointed.backbone.unet.is_gradient_checkpointing and not plain.backbone.unet.is_gradient_checkpointing
    _randomise_lora(plain)
    checkpointed.backbone.load_state_dict(plain.backbone.state_dict())
    batch = next(iter(teacher_loader(teacher_records(plain.backbone, PROMPTS, [0, 1]))))
    grads = []
    for module in (plain, checkpointed):
        module.training_step(batch, 0).backward()
        grads.append([p.grad for p in lora_parameters(module.backbone)])
    assert all(g.abs().max() > 0 for g in grads[0])
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-8) for a, b in zip(*grads, strict=True))


@pytest.mark.parametrize("loss", ["surrogate", "literal"])
def test_the_delta_regulariser_adds_half_the_mean_square_change_and_pulls_towards_the_gaussian_noise(loss):
    plain = NoiseRefineModule(**FAST, loss=loss)
    pulled = NoiseRefineModule(**FAST, loss=loss, delta_weight=4.0)
    for module in (plain, pulled):
        _randomise_lora(module)
    batch = next(iter(teacher_loader(teacher_records(plain.backbone, PROMPTS, [0, 1]))))
    base, refined, _ = plain.training_loss(batch)
    regularised = pulled.training_loss(batch)[0]
    change = (refined - batch["noise"]).detach()
    torch.testing.assert_close(regularised - base, 4.0 * 0.5 * change.pow(2).mean(), rtol=1e-4, atol=1e-7)
    for module in (plain, pulled):  # one plain SGD step on each: the regulariser shrinks the change
        module.zero_grad()
        module.training_loss(batch)[0].backward()
        with torch.no_grad():
            for parameter in lora_parameters(module.backbone):
                parameter -= 0.5 * parameter.grad
    moved = [(m.training_loss(batch)[1] - batch["noise"]).detach().pow(2).mean() for m in (plain, pulled)]
    assert moved[1] < moved[0]
    with pytest.raises(ValueError, match="delta_weight must be a finite number >= 0"):
        NoiseRefineModule(**FAST, delta_weight=-1.0)


def test_the_inverted_loss_regresses_the_refined_noise_onto_the_base_models_inversion_of_the_teacher(tiny_sd):
    """``loss="inverted"``: the target is textbook DDIM inversion of the teacher by the frozen base (the refiner's own
    LoRA plays no part), the loss its mean square distance to x̂_T, and optimiser steps on it bring x̂_T there."""
    module = NoiseRefineModule(**FAST, loss="inverted")
    _randomise_lora(module)
    batch = next(iter(teacher_loader(teacher_records(module.backbone, PROMPTS, [0, 1]))))
    cond = PromptEmbeds(batch["prompt_embeds"])
    target = invert_ddim(tiny_sd.denoiser(cond), batch["latent"], tiny_sd.ddim_schedule(2))  # no adapter at all
    torch.testing.assert_close(inverted_teacher(module.backbone, batch["latent"], cond, module.schedule), target,
                               rtol=0, atol=0)
    assert (target - batch["noise"]).abs().max() > 1e-2  # the guided teacher does not invert to its own noise

    loss, refined, diagnostics = module.training_loss(batch)
    assert set(diagnostics) == {"inverted_mse"}
    torch.testing.assert_close(loss, (refined - target).pow(2).mean())
    (grad,) = torch.autograd.grad(loss, refined)
    torch.testing.assert_close(grad, 2 * (refined - target).detach() / refined.numel())

    optimizer, distances = module.configure_optimizers()["optimizer"], []
    for _ in range(10):  # the module's own optimiser: the refined noise approaches the inverted teacher
        optimizer.zero_grad()
        loss = module.training_loss(batch)[0]
        loss.backward()
        optimizer.step()
        distances.append(loss.item())
    assert distances[-1] < 0.5 * distances[0]
    assert set(NoiseRefineModule(**FAST).training_loss(batch)[2]) == {"latent_mse"}


def test_cached_conditioning_is_used_only_where_it_is_complete(monkeypatch, tmp_path):
    """Tiny SD trains on the batch's cached token embeddings. Tiny SDXL also takes the pooled embedding: a batch whose
    cache holds tokens only (a cache built before pooled embeddings were cached) encodes its prompts, one that holds
    both trains on them without touching the text encoders, and all three give the same loss. The cache built for SDXL
    holds the pooled embedding."""
    sd = NoiseRefineModule(**FAST)
    batch = next(iter(teacher_loader(teacher_records(sd.backbone, PROMPTS, [0, 1]))))
    batch["prompt_embeds"] = torch.zeros_like(batch["prompt_embeds"])
    assert sd.conditioning_parts == (False, frozenset())
    assert torch.equal(sd.conditioning(batch).embeds, batch["prompt_embeds"])

    sdxl = NoiseRefineModule(**{**FAST, "backbone": "tiny-sdxl"})
    _randomise_lora(sdxl)
    batch = next(iter(teacher_loader(teacher_records(sdxl.backbone, PROMPTS, [0, 1]))))
    assert sdxl.conditioning_parts == (True, frozenset())
    uncached = {key: value for key, value in batch.items() if key != "prompt_embeds"}
    loss, refined, _ = sdxl.training_loss(batch)
    assert torch.equal(loss, sdxl.training_loss(uncached)[0]) and not torch.equal(refined, batch["noise"])

    with torch.no_grad():
        full = {**batch, "pooled_prompt_embeds": sdxl.backbone.encode_prompt(PROMPTS)[0].pooled}
    cache = EmbeddingCache(build_embedding_cache(tmp_path, "tiny-sdxl", sdxl.backbone, PROMPTS,
                                                 whole_conditioning=True))
    cached_pooled = torch.stack([cache.conditioning(p)["pooled_prompt_embeds"] for p in PROMPTS])
    torch.testing.assert_close(cached_pooled, full["pooled_prompt_embeds"], atol=2e-3, rtol=2e-3)  # float16

    def no_encoding(prompts):
        raise AssertionError("the text encoders ran although the batch holds the whole conditioning")

    monkeypatch.setattr(sdxl.backbone, "encode_prompt", no_encoding)
    assert torch.equal(sdxl.conditioning(full).pooled, full["pooled_prompt_embeds"])
    assert torch.equal(sdxl.training_loss(full)[0], loss)
    with pytest.raises(ValueError, match=r"2 noises but cached conditioning rows \{'embeds': 2, 'pooled': 1\}"):
        sdxl.conditioning({**full, "pooled_prompt_embeds": full["pooled_prompt_embeds"][:1]})


def test_an_sdxl_teacher_collection_trains_from_its_cache_without_the_text_encoders(tmp_path, monkeypatch):
    """collect-teacher on tiny SDXL caches the pooled embedding beside the tokens, the data module's batches carry it
    (external images too), and the refiner's training step conditions on them alone."""
    import goldennoise.backbones

    collect_teacher(TeacherConfig(output_dir=str(tmp_path / "teacher"), backbone="tiny-sdxl", prompts=PROMPTS,
                                  seeds="0", num_steps=1, image_size=64, batch_size=2, shard_size=2,
                                  accelerator="cpu", progress=False))
    images = tmp_path / "images"
    images.mkdir()
    for i in range(len(PROMPTS)):
        Image.fromarray(np.full((64, 64, 3), 60 * i, dtype=np.uint8)).save(images / f"{i}.png")
    (images / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": p}) + "\n"
                                                   for i, p in enumerate(PROMPTS)))
    external = TextImagePairDataModule(str(images), source="image_folder", backbone="tiny-sdxl", image_size=64,
                                       batch_size=2, val_fraction=0.0, embed_device="cpu")
    external.prepare_data()
    external.setup()
    assert next(iter(external.train_dataloader()))["pooled_prompt_embeds"].shape == (2, 32)

    data = TextImagePairDataModule(str(tmp_path / "teacher"), batch_size=2, val_fraction=0.0, embed_device="cpu")
    with monkeypatch.context() as patch:  # the collection's cache is complete: nothing is rebuilt
        patch.setattr(goldennoise.backbones, "load_backbone", lambda *a, **k: pytest.fail("the cache was rebuilt"))
        data.prepare_data()
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert batch["pooled_prompt_embeds"].shape == (2, 32)
    module = NoiseRefineModule(**{**FAST, "backbone": "tiny-sdxl"})
    with torch.no_grad():
        cond = module.backbone.encode_prompt(list(batch["prompt"]))[0]
    module.conditioning_parts  # noqa: B018 (the one probe of the text encoders, before they are shut off)
    monkeypatch.setattr(module.backbone, "encode_prompt", lambda prompts: pytest.fail("text encoders ran"))
    cached = module.conditioning(batch)
    torch.testing.assert_close(cached.pooled, cond.pooled, atol=2e-3, rtol=2e-3)  # cached in float16
    torch.testing.assert_close(cached.embeds, cond.embeds, atol=2e-3, rtol=2e-3)
    assert torch.isfinite(module.training_loss(batch)[0])


def test_lora_dropout_trains_with_the_module_while_the_base_stays_in_eval_mode():
    module = NoiseRefineModule(**FAST, lora_dropout=0.5)
    _randomise_lora(module)
    noise = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(0))
    cond = module.backbone.encode_prompt(PROMPTS)[0]
    dropouts = [layer.lora_dropout for layer in module.backbone.adapter_layers()]

    module.train()
    assert dropouts and all(d.training for d in dropouts) and not module.backbone.unet.training
    with torch.no_grad():
        assert not torch.equal(refine(module.backbone, noise, cond, module.config),
                               refine(module.backbone, noise, cond, module.config))
    module.eval()
    assert not any(d.training for d in dropouts)
    with torch.no_grad():
        assert torch.equal(refine(module.backbone, noise, cond, module.config),
                           refine(module.backbone, noise, cond, module.config))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_refiner_loads_on_its_base_model_in_another_precision_only(refined, tiny_sd, dtype, tmp_path):
    path = export_refiner(*refined, tmp_path / "tiny.safetensors", "tiny-sd")
    load_refiner(copy.deepcopy(tiny_sd).to(dtype=dtype), path)  # the same base model, rounded: accepted
    other = copy.deepcopy(tiny_sd).to(dtype=dtype)
    with torch.no_grad():
        other.unet.conv_in.weight.mul_(1.03)  # a fine-tune's change, beyond rounding
    with pytest.raises(ValueError, match="trained on another base model"):
        load_refiner(other, path)


def test_rollout_runs_the_base_model_with_the_adapter_off(refined, tiny_sd):
    backbone, _ = refined
    fresh = tiny_sd
    noise, cond, _ = _batch(fresh)
    schedule = fresh.ddim_schedule(3)
    expected = sample_ddim(fresh.denoiser(cond), noise, schedule)
    torch.testing.assert_close(rollout(backbone, noise, cond, schedule), expected, rtol=0, atol=0)
    with backbone.adapter(True):
        assert not torch.allclose(backbone.predict_noise(noise, 500, cond), fresh.predict_noise(noise, 500, cond))
    assert torch.equal(backbone.predict_noise(noise, 500, cond), fresh.predict_noise(noise, 500, cond))


def test_refined_sampling_runs_no_unconditional_batch(refined, tiny_sd):
    refiner_backbone, config = refined  # its own copy, as NoiseRefineNoise loads one
    sampler_backbone = tiny_sd
    specs = [MethodSpec("cfg", Gaussian(), 3.0), MethodSpec("refined", RefinedNoise(refiner_backbone, config), 1.0)]
    records, _ = evaluate_batch(sampler_backbone, [(0, PROMPTS[0], 0), (1, PROMPTS[1], 1)], specs, [],
                                SamplerSettings(steps=3, image_size=SIZE))
    cost = {r["method"]: r["cost"] for r in records}
    assert cost["cfg"]["sampling/evaluations"] == 2 * 3
    assert cost["refined"]["sampling/evaluations"] == 3  # guidance 1: the conditional batch only
    assert cost["refined"]["method/evaluations"] == 2  # one LoRA call + the residual's base call, per image


def test_strength_scales_the_refiners_change(refined, tiny_sd):
    backbone, config = refined
    noise = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(5))
    ctx = NoiseContext.build(tiny_sd, PROMPTS, [0, 1], SamplerSettings(steps=2, image_size=SIZE))
    with torch.no_grad():
        change = refine(backbone, noise, ctx.cond, config) - noise
        got = {s: RefinedNoise(backbone, config, strength=s)(noise, ctx) for s in (0.0, 1.0, 2.5)}
    assert change.abs().max() > 0.01
    assert torch.equal(got[0.0], noise)
    torch.testing.assert_close(got[1.0], noise + change)
    torch.testing.assert_close(got[2.5], noise + 2.5 * change)
    with pytest.raises(ValueError, match="strength must be a finite number >= 0"):
        RefinedNoise(backbone, config, strength=-1.0)


def _wrapped_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, BaseTunerLayer)]


def test_merged_refiner_refines_alike_and_leaves_the_plain_base(refined, tiny_sd):
    backbone, config = refined
    noise, cond, _ = _batch(tiny_sd)
    base = copy.deepcopy(backbone)
    merged = merge_refiner(base)
    with torch.no_grad():
        for output in ("residual", "epsilon"):  # raw outputs (literal shares the residual's refiner call) and ε
            form = dataclasses.replace(config, output=output)
            expected = refine(backbone, noise, cond, form)  # the training path: one network, adapter switched
            torch.testing.assert_close(refine(base, noise, cond, form, merged), expected, rtol=1e-5, atol=1e-5)
        got = refine(base, noise, cond, config, merged)
    assert not torch.allclose(got, noise, atol=1e-3)  # the random LoRA acts: the comparison is not vacuous
    assert _wrapped_layers(base) == [] and _wrapped_layers(merged) == []  # no PEFT wrapper on either path
    plain = dict(tiny_sd.unet.state_dict())
    assert base.unet.state_dict().keys() == plain.keys()
    assert all(torch.equal(value, plain[key]) for key, value in base.unet.state_dict().items())
    assert merged.vae is base.vae and merged.unet is not base.unet  # one extra copy: the denoiser only
    schedule = tiny_sd.ddim_schedule(3)
    with torch.no_grad():
        torch.testing.assert_close(sample_ddim(base.denoiser(cond), got, schedule),
                                   sample_ddim(tiny_sd.denoiser(cond), got, schedule), rtol=0, atol=0)


def test_noiserefine_noise_merged_and_unmerged_agree_at_two_plain_calls(refined, tiny_sd, tmp_path):
    path = export_refiner(*refined, tmp_path / "refiner.safetensors", "tiny-sd")
    methods = {merge: NoiseRefineNoise(str(path), merge=merge) for merge in (True, False)}
    assert _wrapped_layers(methods[True]) == [] and _wrapped_layers(methods[False]) != []
    assert methods[True].describe()["lora_sha256"] == methods[False].describe()["lora_sha256"]
    specs = [MethodSpec(f"merge={merge}", method, 1.0) for merge, method in methods.items()]
    records, images = evaluate_batch(tiny_sd, [(0, PROMPTS[0], 0), (1, PROMPTS[1], 1)], specs, [],
                                     SamplerSettings(steps=2, image_size=SIZE))
    assert {r["method"]: r["cost"]["method/evaluations"] for r in records} == {"merge=True": 2, "merge=False": 2}
    torch.testing.assert_close(images["merge=True"], images["merge=False"], rtol=1e-4, atol=1e-4)


def test_export_round_trip_through_a_fresh_diffusers_pipeline(refined, tiny_sd, tmp_path):
    backbone, config = refined
    path = export_refiner(backbone, config, tmp_path / "refiner.safetensors", "tiny-sd")
    noise = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(3))
    cond = backbone.encode_prompt(PROMPTS)[0]
    expected = refine(backbone, noise, cond, config).detach()

    pipeline = tiny_sd_pipeline()  # fresh diffusers pipeline, same base weights
    pipeline.load_lora_weights(str(path), adapter_name="refiner")
    torch.testing.assert_close(refine_with_pipeline(pipeline, noise, PROMPTS, "refiner"), expected,
                               rtol=1e-5, atol=1e-5)

    fresh = copy.deepcopy(tiny_sd)
    assert load_refiner(fresh, path) == config
    torch.testing.assert_close(refine(fresh, noise, cond, config).detach(), expected, rtol=0, atol=0)


def test_bad_inputs_get_one_clear_error_each(refined, tiny_sd, shapes, tmp_path):
    with pytest.raises(ValueError, match=r"rank 64 exceeds .* at most 48"):
        inject_refiner(shapes, RefinerConfig(rank=64))  # refused before anything is injected
    with pytest.raises(ValueError, match="match no layer"):
        inject_refiner(tiny_sd, RefinerConfig(rank=2, target_modules=("not_a_layer",)))
    with pytest.raises(ValueError, match="already carries an adapter"):
        inject_refiner(refined[0], RefinerConfig(rank=2))
    path = export_refiner(*refined, tmp_path / "tiny.safetensors", "tiny-sd")
    with pytest.raises(ValueError, match="trained on another base model"):
        load_refiner(shapes, path)
    with pytest.raises(FileNotFoundError, match="No NoiseRefine LoRA file"):
        load_refiner(tiny_sd, tmp_path / "missing.safetensors")
    with safe_open(str(path), "pt") as handle:
        metadata, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
    tensors.pop(sorted(tensors)[0])
    save_file(tensors, str(tmp_path / "incomplete.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match="lacks 1 of the adapter's weights"):
        load_refiner(copy.deepcopy(tiny_sd), tmp_path / "incomplete.safetensors")
    with pytest.raises(ValueError, match="no adapter to enable"):
        with shapes.adapter(True):
            pass


def test_export_refiner_command_writes_the_fits_lora_and_names_each_bad_file(tmp_path, capsys):
    module = NoiseRefineModule(**FAST)
    records = teacher_records(module.backbone, PROMPTS, [0, 1])
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=teacher_loader(records))
    trainer.save_checkpoint(tmp_path / "last.ckpt")

    out = tmp_path / "export" / "refiner.safetensors"
    main(["export-refiner", str(tmp_path / "last.ckpt"), str(out)])
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert out.stat().st_mode & 0o044 == 0o044  # readable by others (safetensors alone writes it owner-only)
    batch = next(iter(teacher_loader(records)))
    cond = PromptEmbeds(batch["prompt_embeds"])
    fresh = load_backbone("tiny-sd")
    torch.testing.assert_close(refine(fresh, batch["noise"], cond, load_refiner(fresh, out)).detach(),
                               refine(module.backbone, batch["noise"], cond, module.config).detach(), rtol=0, atol=0)

    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    (tmp_path / "junk.safetensors").write_text("not a refiner")
    (tmp_path / "short.safetensors").write_bytes(out.read_bytes()[:2000])
    cases = {
        ("export-refiner", str(tmp_path / "missing.ckpt"), str(out)): "No checkpoint file at",
        ("export-refiner", str(tmp_path / "junk.ckpt"), str(out)): "Cannot read the checkpoint",
        ("export-refiner", str(tmp_path / "last.ckpt"), str(tmp_path)): "is a folder; give the .safetensors file",
        ("export-refiner", str(tmp_path / "last.ckpt"), str(tmp_path / "x.ckpt")): "written as a .safetensors file",
    }
    for args, message in cases.items():
        with pytest.raises(SystemExit) as info:
            main(list(args))
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 2 and len(err) == 1 and message in err[0], err
    with pytest.raises(ValueError, match="is a Lightning checkpoint; .* export-refiner"):
        read_refiner(tmp_path / "last.ckpt")
    for name in ("junk.safetensors", "short.safetensors"):
        with pytest.raises(ValueError, match=f"Cannot read the checkpoint '{tmp_path / name}'"):
            read_refiner(tmp_path / name)


def test_radial_power_spectrum_puts_a_constant_in_the_lowest_ring():
    flat = torch.ones(2, 4, 8, 8)
    spectrum = radial_power_spectrum(flat, 4)
    assert spectrum[0] > 0 and torch.all(spectrum[1:] == 0)
