"""NoiseRefine teacher records on tiny SD: CFG and CFG + PAG latents against references (our DDIM, diffusers' PAG
pipeline), per-sample scale draws, the score filter and its counts, a crash-and-rerun, and bad settings."""

from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPAGPipeline

from goldennoise.collection import teacher as teacher_module
from goldennoise.collection.config import ScorerSpec
from goldennoise.collection.guidance import PAGNotSupportedError, perturbed_attention
from goldennoise.collection.scoring import build_scorers
from goldennoise.collection.teacher import TeacherJob, collect_teacher, draw_scales
from goldennoise.collection.teacher_cli import parse_config
from goldennoise.collection.teacher_config import TeacherConfig
from goldennoise.data.shards import iter_shards, load_shard_tensors, read_manifest, shard_files
from goldennoise.data.teacher_store import TEACHER_FORMAT
from goldennoise.sampling import noise_for_seeds, sample_ddim

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["a red cube", "a blue ball"]


def config(folder: Path, **overrides) -> TeacherConfig:
    settings = dict(output_dir=str(folder), backbone="tiny-sd", prompts=PROMPTS, seeds="0-1", num_steps=2,
                    image_size=16, guidance_scale=3.0, batch_size=2, shard_size=2, accelerator="cpu",
                    progress=False, scorers=[ScorerSpec("hpsv2", model="tiny")])
    return TeacherConfig(**{**settings, **overrides})


def records(folder: Path) -> dict[tuple, tuple]:
    """(index, prompt, seed) → (noise, latent, record) of every stored record."""
    out = {}
    for shard in iter_shards(TEACHER_FORMAT, folder):
        tensors = load_shard_tensors(shard.path)
        for row, record in enumerate(shard.records):
            out[(record["index"], record["prompt"], record["seed"])] = (tensors["noise"][row],
                                                                        tensors["latent"][row], record)
    return out


@pytest.fixture(scope="module", autouse=True)
def _built_once(tiny_sd):
    """Every run of this module gets the session's tiny SD and one tiny HPSv2 (building them is most of a run)."""
    scorers = {}

    def cached_scorers(specs):
        key = tuple(s.column for s in specs)
        return scorers.setdefault(key, build_scorers(specs))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(teacher_module, "load_backbone", lambda name, **kwargs: tiny_sd)
        patch.setattr(teacher_module, "build_scorers", cached_scorers)
        yield


@pytest.fixture(scope="module")
def cfg_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cfg")
    summary = collect_teacher(config(folder))
    return folder, summary


def test_cfg_records_are_guided_ddim_samples_of_their_stored_noise(cfg_run, tiny_sd):
    folder, summary = cfg_run
    stored = records(folder)
    assert summary["count"] == 4 and summary["dropped"] == 0 and len(stored) == 4
    for (_, prompt, seed), (noise, latent, record) in stored.items():
        assert torch.equal(noise, noise_for_seeds([seed], noise.shape)[0])
        cond, uncond = tiny_sd.encode_prompt([prompt])
        with torch.inference_mode():
            reference = sample_ddim(tiny_sd.denoiser(cond, uncond, 3.0), noise[None], tiny_sd.ddim_schedule(2))[0]
        torch.testing.assert_close(latent, reference, atol=1e-5, rtol=1e-5)
        assert record["guidance"] == {"cfg": 3.0, "pag": 0.0} and set(record["scores"]) == {"hpsv2"}


def test_every_record_gets_its_own_noise_unless_the_seeds_are_shared(tmp_path):
    collect_teacher(config(tmp_path / "own", seeds="0"))
    own = records(tmp_path / "own")
    assert sorted(seed for _, _, seed in own) == [0, 1]  # prompt p draws seed 0 + p
    first, second = (noise for noise, _, _ in own.values())
    assert not torch.equal(first, second)

    collect_teacher(config(tmp_path / "shared", seeds="0", distinct_seeds=False, guidance_scale_max=5.0))
    shared = list(records(tmp_path / "shared").values())
    assert torch.equal(shared[0][0], shared[1][0])  # one x_T for both prompts, as asked
    assert shared[0][2]["guidance"] == shared[1][2]["guidance"]  # and one scale draw


def test_the_stored_noise_is_exactly_the_one_the_teacher_sampled_from(tiny_sd):
    settings = config(Path("unused"), seeds="0", storage_dtype="bfloat16")
    out = teacher_module.teacher_batch(tiny_sd, [(0, PROMPTS[0], 0)], settings, tiny_sd.ddim_schedule(2), {},
                                       tiny_sd.latent_shape(16, 16))
    assert torch.equal(out["noise"], out["noise"].to(torch.bfloat16).float())  # what the shard keeps, losslessly
    drawn = noise_for_seeds([0], tiny_sd.latent_shape(16, 16))
    assert torch.equal(out["noise"], drawn.to(torch.bfloat16).float())


def test_pag_records_equal_diffusers_pag_pipeline(tmp_path, tiny_sd, cfg_run):
    collect_teacher(config(tmp_path, pag_scale=2.0))  # the same items as cfg_run
    pipe = StableDiffusionPAGPipeline(vae=tiny_sd.vae, text_encoder=tiny_sd.text_encoders[0],
                                      tokenizer=tiny_sd.tokenizers[0], unet=tiny_sd.unet,
                                      scheduler=DDIMScheduler.from_config(tiny_sd.scheduler_config),
                                      safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                                      pag_applied_layers="mid")
    unguided_pag = records(cfg_run[0])
    for (index, prompt, seed), (noise, latent, record) in records(tmp_path).items():
        expected = pipe(prompt, num_inference_steps=2, guidance_scale=3.0, pag_scale=2.0, latents=noise[None],
                        output_type="latent", height=16, width=16).images[0]
        torch.testing.assert_close(latent, expected, atol=1e-4, rtol=1e-4)
        assert record["guidance"] == {"cfg": 3.0, "pag": 2.0}
        cfg_only = unguided_pag[(index, prompt, seed)][1]  # the same prompt and seed without PAG
        assert (latent - cfg_only).abs().max() > 1e-3  # PAG changes the sample
    before = dict(tiny_sd.unet.attn_processors)
    with perturbed_attention(tiny_sd.unet, ["mid"]):
        inside = tiny_sd.unet.attn_processors
        perturbed = {name for name, p in inside.items() if type(p).__name__ == "PAGCFGIdentitySelfAttnProcessor2_0"}
    assert perturbed and all(n.startswith("mid_block") and ".attn1." in n for n in perturbed)
    assert tiny_sd.unet.attn_processors == before


def test_scale_ranges_are_drawn_per_seed_whatever_the_batch(tmp_path):
    collect_teacher(config(tmp_path, seeds="0-2", guidance_scale=2.0, guidance_scale_max=4.0, pag_scale=1.0,
                           pag_scale_max=3.0, num_steps=1, scorers=[], batch_size=3, shard_size=3))
    stored = records(tmp_path)
    for (_, _, seed), (_, _, record) in stored.items():
        cfg, pag = record["guidance"]["cfg"], record["guidance"]["pag"]
        assert 2.0 <= cfg <= 4.0 and 1.0 <= pag <= 3.0
        assert cfg == pytest.approx(float(draw_scales([7, seed], 2.0, 4.0, 1)[1]))  # batch-independent
    assert len({r["guidance"]["cfg"] for _, _, r in stored.values()}) == 6  # every record its own seed and scale


def test_min_score_keeps_records_at_or_above_it_and_counts_the_dropped(tmp_path, cfg_run):
    scores = sorted(r["scores"]["hpsv2"] for _, _, r in records(cfg_run[0]).values())
    threshold = (scores[1] + scores[2]) / 2
    summary = collect_teacher(config(tmp_path, min_score=threshold))
    kept = records(tmp_path)
    assert summary["count"] == 2 and summary["dropped"] == 2
    assert sorted(r["scores"]["hpsv2"] for _, _, r in kept.values()) == pytest.approx(scores[2:], abs=1e-6)
    manifest = read_manifest(TEACHER_FORMAT, tmp_path)
    assert (manifest["num_items"], manifest["kept"], manifest["dropped"]) == (4, 2, 2)


def test_a_crashed_run_resumes_to_the_uninterrupted_records(tmp_path, cfg_run, monkeypatch):
    job = TeacherJob(config(tmp_path))
    real = TeacherJob.run_batch

    def crash_on_second_shard(self, items, first_index):
        if first_index >= 2:
            raise KeyboardInterrupt
        return real(self, items, first_index)

    monkeypatch.setattr(TeacherJob, "run_batch", crash_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        collect_teacher(job.config)
    assert len(shard_files(tmp_path)) == 1
    monkeypatch.setattr(TeacherJob, "run_batch", real)
    summary = collect_teacher(job.config)
    assert summary["collected_this_run"] == 2 and summary["count"] == 4
    resumed, reference = records(tmp_path), records(cfg_run[0])
    assert resumed.keys() == reference.keys()
    for key, (noise, latent, record) in resumed.items():
        assert torch.equal(noise, reference[key][0]) and torch.equal(latent, reference[key][1])
        assert record == reference[key][2]


def test_pag_on_layers_the_unet_lacks_fails_before_any_shard(tmp_path):
    with pytest.raises(PAGNotSupportedError, match="PAG is not supported for this backbone.*'nowhere'"):
        collect_teacher(config(tmp_path, pag_scale=2.0, pag_layers=["nowhere"]))
    assert not shard_files(tmp_path)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"guidance_scale": 5.0, "guidance_scale_max": 3.0}, "runs backwards"),
    ({"pag_scale": -1.0}, "pag_scale must be >= 0"),
    ({"min_score": 0.5, "scorers": []}, "no scorers"),
    ({"filter_metric": "aesthetic"}, "none of the scorers"),
])
def test_bad_settings_are_refused_at_construction(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        config(tmp_path, **overrides)


@pytest.mark.parametrize("names", [["shapes"], ["shapes", "shapes_perfect"], ["sd21"], ["sd21", "sd21_768v"]])
def test_shipped_teacher_configs_parse(names):
    parsed = parse_config([a for n in names for a in ("--config", str(ROOT / "configs" / "teacher" / f"{n}.yaml"))])
    if names[0] == "shapes":
        assert (parsed.backbone, parsed.guidance_scale, parsed.num_steps, parsed.pag_enabled) == ("shapes", 3.0, 20,
                                                                                                  False)
        assert parsed.scorers[0].metric == "shapes_alignment"
        assert parsed.min_score == (1.0 if len(names) == 2 else None)
    else:
        assert (parsed.guidance_scale, parsed.pag_enabled, parsed.min_score) == (7.5, False, 6.0)  # the COCO recipe
        assert parsed.prompt_source == "coco" and parsed.distinct_seeds
        assert parsed.image_size == (768 if len(names) == 2 else 512) and parsed.scorers[0].metric == "aesthetic"
