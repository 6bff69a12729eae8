"""configs/npd/flux_schnell.yaml and sd35.yaml through ``goldennoise collect`` on the tiny model of each family.

The copies swap in the tiny backbone, a tiny random HPSv2, two prompts and 64 px; the recipe (steps, ω_l, ω_w,
convention) is the config's. The stored noise and golden noise are the backbone's unpacked latents, finite, and the
golden noise differs from the noise.
"""

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from goldennoise.backbones import load_backbone
from goldennoise.cli import main
from goldennoise.data.npd_store import iter_shards

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "npd"
CASES = {"flux_schnell.yaml": "tiny-flux-schnell", "sd35.yaml": "tiny-sd3"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_flow_npd_config_collects_on_the_tiny_model(name, tmp_path):
    config = yaml.safe_load((CONFIGS / name).read_text())
    config.update(backbone=CASES[name], backbone_dtype="float32", image_size=64, prompt_source=None,
                  max_prompts=None, prompts=["a red fox", "a blue bird"], seeds="0",
                  num_steps=min(4, config["num_steps"]),
                  output_dir=str(tmp_path / "npd"), mlflow_tracking_uri=None, progress=False, accelerator="cpu",
                  scorers=[{"metric": "hpsv2", "model": "tiny"}], cache_embeddings=False)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    summary = main(["collect", "--config", str(path)])
    assert summary["count"] == 2
    shards = list(iter_shards(tmp_path / "npd"))
    tensors = [load_file(shard.path) for shard in shards]
    noise, target = (torch.cat([t[key] for t in tensors]).float() for key in ("noise", "target"))
    assert noise.shape == (2, *load_backbone(CASES[name]).latent_shape(64, 64))
    assert torch.isfinite(target).all() and not torch.equal(noise, target)
