"""The embedded ``shapes`` backbone: it ships in the package, loads offline, follows prompts, and training resumes."""

import os
from pathlib import Path

import lightning as L
import pytest
import torch
from diffusers import DiffusionPipeline
from lightning.pytorch.callbacks import ModelCheckpoint

from goldennoise.backbones import load_backbone
from goldennoise.backbones.loading import SHAPES_DIR
from goldennoise.backbones.sd import StableDiffusionBackbone
from goldennoise.cli import GoldenNoiseCLI
from goldennoise.data.shapes import ShapesDataModule
from goldennoise.lit.shapes_diffusion import ShapesDiffusionModule
from goldennoise.lit.shapes_vae import ShapesVAEModule
from goldennoise.metrics.shapes_alignment import shapes_alignment
from goldennoise.sampling import noise_for_seeds, sample_ddim
from goldennoise.shapes.grammar import to_prompt
from goldennoise.shapes.splits import sample_scene

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "backbone").glob("shapes_*.yaml"))

NUM_PROMPTS, NUM_SEEDS, STEPS, CFG = 32, 2, 10, 5.0
"""The small generation run: test prompts 0-31 × seeds 0-1, 10 DDIM steps, guidance 5 against no guidance."""
CFG_FLOOR, CFG_MARGIN = 0.6, 0.05
"""Measured on the shipped weights (CPU, 2026-11-22): CFG 5 gives 0.716, no guidance 0.594 (a gap of 0.122)."""


def test_shipped_pipeline_loads_offline_from_the_package(shapes):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert SHAPES_DIR.is_relative_to(ROOT / "goldennoise")
    files = [p for p in SHAPES_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    assert {p.suffix for p in files} <= {".json", ".safetensors", ".txt"}
    assert isinstance(shapes, StableDiffusionBackbone)
    assert shapes.dtype == torch.float32  # fp16 files, upcast for the CPU
    assert shapes.latent_shape() == (4, 8, 8) and shapes.default_size == 32


def _plain_diffusers_run(folder: Path, torch_dtype: torch.dtype | None) -> dict[str, torch.dtype]:
    """``DiffusionPipeline.from_pretrained(folder)`` (as the README says) and a 2-step CFG call; component dtypes."""
    kwargs = {} if torch_dtype is None else {"torch_dtype": torch_dtype}
    pipe = DiffusionPipeline.from_pretrained(str(folder), **kwargs)
    pipe.set_progress_bar_config(disable=True)
    images = pipe("a red circle", num_inference_steps=2, guidance_scale=5.0, output_type="pt",
                  generator=torch.Generator().manual_seed(0)).images
    assert images.shape[:2] == (1, 3) and torch.isfinite(images).all()
    return {name: part.dtype for name, part in pipe.components.items() if isinstance(part, torch.nn.Module)}


@pytest.mark.filterwarnings("ignore:.*torch_dtype.*:FutureWarning")
@pytest.mark.parametrize("torch_dtype", [None, torch.float16], ids=["default", "float16"])
def test_shipped_folder_runs_as_a_plain_diffusers_pipeline(torch_dtype):
    dtypes = _plain_diffusers_run(SHAPES_DIR, torch_dtype)
    assert set(dtypes) == {"unet", "vae", "text_encoder"}
    assert set(dtypes.values()) == {torch_dtype or torch.float32}, dtypes  # fp16 files, one dtype after loading


@torch.inference_mode()
def _alignment(backbone, prompts: list[str], seeds: list[int], guidance_scale: float) -> float:
    cond, uncond = backbone.encode_prompt(prompts)
    noise = noise_for_seeds(seeds, backbone.latent_shape())
    latents = sample_ddim(backbone.denoiser(cond, uncond, guidance_scale), noise, backbone.ddim_schedule(STEPS))
    return shapes_alignment(backbone.decode(latents), prompts)["alignment"].item()


def test_guidance_makes_images_follow_prompts(shapes):
    prompts = [to_prompt(sample_scene(seed, "test").spec) for seed in range(NUM_PROMPTS) for _ in range(NUM_SEEDS)]
    seeds = list(range(NUM_SEEDS)) * NUM_PROMPTS
    guided = _alignment(shapes, prompts, seeds, CFG)
    unguided = _alignment(shapes, prompts, seeds, 1.0)
    print(f"alignment: CFG {CFG:g} {guided:.3f}, no guidance {unguided:.3f}")
    assert guided > CFG_FLOOR
    assert guided > unguided + CFG_MARGIN


def _fit(module: L.LightningModule, root: Path, max_steps: int, ckpt_path: Path | None = None) -> L.Trainer:
    checkpoints = ModelCheckpoint(dirpath=root / "checkpoints", save_last=True, every_n_train_steps=1)
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, callbacks=[checkpoints],
                        limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=root)
    data = ShapesDataModule(batch_size=4, train_samples=64, val_samples=4)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return trainer


def _tiny_diffusion(export_dir: Path | None = None) -> ShapesDiffusionModule:
    export = None if export_dir is None else str(export_dir)
    return ShapesDiffusionModule(vae=str(SHAPES_DIR / "vae"), block_out_channels=(16, 32), text_hidden_size=32,
                                 text_layers=1, warmup_steps=1, export_dir=export)


def test_diffusion_training_resumes_from_a_checkpoint_with_its_ema(tmp_path):
    torch.manual_seed(0)
    _fit(_tiny_diffusion(), tmp_path, max_steps=2)
    resumed = _tiny_diffusion(export_dir=tmp_path / "export")
    trainer = _fit(resumed, tmp_path, max_steps=3, ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    assert trainer.global_step == 3
    assert resumed.ema.n_averaged.item() == 3  # the EMA came back with the checkpoint and kept averaging
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert not any(k.startswith("vae.") for k in state)  # the frozen VAE is not in checkpoints
    assert load_backbone(str(tmp_path / "export")).latent_shape() == (4, 8, 8)


def test_fp16_export_loads_back_in_one_dtype_the_plain_diffusers_way(tmp_path):
    torch.manual_seed(0)
    _tiny_diffusion().export(tmp_path / "export", dtype="float16")
    assert set(_plain_diffusers_run(tmp_path / "export", None).values()) == {torch.float32}


def test_vae_training_resumes_from_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    _fit(ShapesVAEModule(block_out_channels=(8, 16), norm_num_groups=4), tmp_path, max_steps=2)
    resumed = ShapesVAEModule(block_out_channels=(8, 16), norm_num_groups=4)
    trainer = _fit(resumed, tmp_path, max_steps=3, ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    assert trainer.global_step == 3
    assert trainer.optimizers[0].state_dict()["state"][0]["step"].item() == 3  # AdamW state resumed too


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_backbone_configs_instantiate(config):
    args = ["--config", str(config), "--trainer.logger", "false"]
    is_unet = "unet" in config.stem
    if is_unet:  # stage 2 reads the stage-1 export; the shipped VAE stands in for it
        args += ["--model.init_args.vae", str(SHAPES_DIR / "vae")]
    cli = GoldenNoiseCLI(args=args, run=False)
    assert isinstance(cli.model, ShapesDiffusionModule if is_unet else ShapesVAEModule)
    assert isinstance(cli.datamodule, ShapesDataModule)
    assert cli.trainer.max_steps > 0
