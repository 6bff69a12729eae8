"""The transformer families (SD3, FLUX.1 dev / schnell, Hunyuan-DiT) against their diffusers pipelines, tiny sizes.

Parity: our loop from the same ``latents=`` gives the pipeline's final latents (fp32, max abs diff ≤ 1e-4), with
and without guidance. Inversion: sampling then inverting on the same grid recovers the noise to a measured tolerance
that shrinks like 1/N (first-order in the step).
"""

import json

import pytest
import torch

from goldennoise.backbones import generate, load_backbone
from goldennoise.backbones.cost import CostMeter
from goldennoise.backbones.flux import pack_latents, unpack_latents
from goldennoise.sampling import invert, noise_for_seeds, sample

PROMPTS = ["a red fox in the snow", "一只猫"]
STEPS = 3


@pytest.fixture(scope="module")
def backbones():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_backbone(name)
        return cache[name]

    return get


def ours(backbone, noise, guidance_scale, steps=STEPS):
    cond, uncond = backbone.encode_prompt(PROMPTS)
    return sample(backbone.denoiser(cond, uncond, guidance_scale), noise,
                  backbone.schedule(steps, tuple(noise.shape[-2:])))


def pipeline_latents(name, backbone, noise, guidance_scale):
    """The pipeline's output from ``latents=noise``: final latents (B, C, h, w), SD3's decoded images (B, 3, H, W)."""
    output_type = "pt" if name == "tiny-sd3" else "latent"  # SD3: the VAE's shift and scale too
    kwargs = dict(prompt=PROMPTS, num_inference_steps=STEPS, output_type=output_type, height=backbone.default_size,
                  width=backbone.default_size)
    latents = noise
    if name == "tiny-hunyuan-dit":
        pipe = backbone.pipeline("ddim")
    else:
        pipe = backbone.pipeline()
        kwargs["max_sequence_length"] = backbone.max_sequence_length
    if name.startswith("tiny-flux"):
        latents = pack_latents(noise)
    if name == "tiny-flux-schnell":  # no guidance input: ω is true CFG against the empty prompt
        kwargs.update(true_cfg_scale=guidance_scale, negative_prompt="" if guidance_scale > 1 else None)
    else:
        kwargs["guidance_scale"] = guidance_scale
    pipe.set_progress_bar_config(disable=True)
    out = pipe(latents=latents, **kwargs).images
    return unpack_latents(out, *noise.shape[-2:]) if name.startswith("tiny-flux") else out


@pytest.mark.parametrize(("name", "guidance_scale"), [
    ("tiny-sd3", 1.0), ("tiny-sd3", 4.0), ("tiny-flux", 3.5), ("tiny-flux", 1.0),
    ("tiny-flux-schnell", 1.0), ("tiny-flux-schnell", 3.0), ("tiny-hunyuan-dit", 1.0), ("tiny-hunyuan-dit", 5.0)])
def test_our_loop_matches_the_diffusers_pipeline(backbones, name, guidance_scale):
    backbone = backbones(name)
    noise = noise_for_seeds([0, 1], backbone.latent_shape())
    expected = pipeline_latents(name, backbone, noise, guidance_scale)
    got = ours(backbone, noise, guidance_scale)
    assert got.shape == noise.shape
    if name == "tiny-sd3":
        got = backbone.decode(got)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize(("name", "tolerance"), [
    ("tiny-sd3", 0.05), ("tiny-flux", 0.05),
    pytest.param("tiny-hunyuan-dit", 0.35, marks=pytest.mark.slow)])  # DDIM, v-prediction; 10 s on a CPU
def test_inversion_recovers_the_noise_to_first_order(backbones, name, tolerance):
    """Relative RMS error of invert(sample(noise)) at 8 steps (measured at 10: SD3 0.033, FLUX 0.036, DiT 0.28)."""
    backbone = backbones(name)
    cond, uncond = backbone.encode_prompt(PROMPTS)
    noise = noise_for_seeds([0, 1], backbone.latent_shape())
    denoiser = backbone.denoiser(cond, uncond, 1.0)
    errors = []
    for steps in (8, 16):
        schedule = backbone.schedule(steps)
        recovered = invert(denoiser, sample(denoiser, noise, schedule), schedule)
        errors.append(((recovered - noise).square().mean() / noise.square().mean()).sqrt().item())
    assert errors[0] <= tolerance
    assert errors[1] < 0.65 * errors[0]  # first order: doubling the steps about halves the error


def test_the_plug_in_generate_runs_a_transformer_pipeline(backbones):
    backbone = backbones("tiny-sd3")  # NPNetPlugin.generate's path: latents= into the pipeline, images out
    noise = noise_for_seeds([0, 1], backbone.latent_shape())
    pipe = backbone.pipeline()
    pipe.set_progress_bar_config(disable=True)
    images = generate(pipe, PROMPTS, noise, num_inference_steps=STEPS, guidance_scale=4.0,
                      max_sequence_length=backbone.max_sequence_length)
    torch.testing.assert_close(images, backbone.decode(ours(backbone, noise, 4.0)), atol=1e-4, rtol=0)


def test_flux_packing_round_trips_and_keeps_unit_variance():
    x = torch.randn(3, 16, 8, 12)
    tokens = pack_latents(x)
    assert tokens.shape == (3, 4 * 6, 64)
    torch.testing.assert_close(unpack_latents(tokens, 8, 12), x, rtol=0, atol=0)
    torch.testing.assert_close(tokens[:, 0, :4], x[:, 0, :2, :2].reshape(3, 4), rtol=0, atol=0)  # channel-major


@pytest.mark.parametrize(("name", "guidance_scale", "rows_per_step"), [
    ("tiny-flux", 3.5, 1), ("tiny-flux-schnell", 3.0, 2), ("tiny-sd3", 4.0, 2), ("tiny-sd3", 1.0, 1)])
def test_cost_meter_counts_transformer_rows(backbones, name, guidance_scale, rows_per_step):
    backbone = backbones(name)
    noise = noise_for_seeds([0, 1], backbone.latent_shape())
    with CostMeter(backbone.unet) as meter, meter.phase("sampling", images=2):  # the UNet-era hook point works
        ours(backbone, noise, guidance_scale)
    assert meter.per_image()["sampling/evaluations"] == STEPS * rows_per_step
    assert backbone.evaluations_per_step(guidance_scale) == rows_per_step
    assert backbone.network is backbone.transformer is backbone.unet


def test_flow_backbones_refuse_ddpm_only_requests(backbones):
    flux = backbones("tiny-flux")
    with pytest.raises(ValueError, match="flow-matching model with no DDIM grid"):
        flux.ddim_schedule(4)
    with pytest.raises(ValueError, match="flow_euler"):
        flux.make_scheduler("dpm_solver")
    with pytest.raises(ValueError, match="divisible by 4"):
        flux.latent_shape(66, 64)


def test_flux_dynamic_shift_depends_on_the_resolution(backbones):
    dev, schnell = backbones("tiny-flux"), backbones("tiny-flux-schnell")
    small, large = dev.schedule(4, (32, 32)), dev.schedule(4, (128, 128))
    assert (large.sigmas[1:-1] > small.sigmas[1:-1]).all()  # more tokens, more shift toward noise
    torch.testing.assert_close(schnell.schedule(4, (32, 32)).sigmas, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))


def test_an_unknown_pipeline_class_names_the_supported_families(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(ValueError, match="KandinskyPipeline.*FluxPipeline.*HunyuanDiTPipeline.*StableDiffusion3"):
        load_backbone(str(folder))


def test_a_saved_tiny_flux_loads_back_as_the_same_backbone(backbones, tmp_path):
    flux = backbones("tiny-flux-schnell")
    flux.save_pretrained(tmp_path / "flux")
    loaded = load_backbone(str(tmp_path / "flux"))
    assert type(loaded) is type(flux) and not loaded.guidance_distilled
    noise = noise_for_seeds([0, 1], flux.latent_shape(64, 64))
    torch.testing.assert_close(ours(loaded, noise, 1.0, steps=2), ours(flux, noise, 1.0, steps=2))
