"""A NoiseRefine LoRA on a flow-matching transformer (tiny FLUX.1-schnell, tiny SD3): export, load, and refined noise
sampled without guidance through the evaluation harness, counted.

Refining is one call of the adapted network and one of the base at the refiner timestep (999 of the model's
0-1000 flow timesteps, σ ≈ 1), then plain sampling with no unconditional batch: 2 + steps evaluations per image.
Training a refiner by MSD needs a DDPM grid (its constant K comes from ᾱ), so flow backbones refuse it by name.
"""

import pytest
import torch

from goldennoise.backbones import load_backbone
from goldennoise.evaluation.harness import MethodSpec, evaluate_batch
from goldennoise.noise import Gaussian, SamplerSettings
from goldennoise.noise.noiserefine import NoiseRefineNoise, RefinerConfig, export_refiner, inject_refiner

STEPS = 2


@pytest.mark.parametrize("name", ["tiny-flux-schnell", "tiny-sd3"])
def test_a_refiner_on_a_flow_transformer_refines_and_costs_two_calls(name, tmp_path):
    trained = load_backbone(name)
    config = RefinerConfig(rank=2)
    inject_refiner(trained, config)
    torch.manual_seed(0)
    for parameter in trained.unet.parameters():
        if parameter.requires_grad:  # a LoRA moved off its zero init, as after training
            torch.nn.init.normal_(parameter, std=0.02)
    path = export_refiner(trained, config, tmp_path / "refiner.safetensors", name)

    backbone = load_backbone(name)
    methods = [MethodSpec("gaussian", Gaussian()), MethodSpec("refined", NoiseRefineNoise(str(path)))]
    items = [(0, "a red fox", 0), (1, "a blue bird", 1)]
    records, images = evaluate_batch(backbone, items, methods, [], SamplerSettings(steps=STEPS,
                                                                                   scheduler="flow_euler"))
    cost = {r["method"]: (r["cost"]["method/evaluations"], r["cost"]["sampling/evaluations"]) for r in records}
    assert cost == {"gaussian": (0, STEPS), "refined": (2, STEPS)}
    assert not torch.equal(images["gaussian"], images["refined"])


def test_training_a_refiner_on_a_flow_backbone_is_refused_by_name():
    from goldennoise.lit import NoiseRefineModule

    with pytest.raises(ValueError, match="flow-matching model with no DDIM grid"):
        NoiseRefineModule(backbone="tiny-sd3", rank=2)
