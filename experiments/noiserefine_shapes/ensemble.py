"""Do two refiners together generalise better than one? The mean of their refined noises, on unseen bindings.

An evaluation (``python -m goldennoise evaluate`` arguments: config files and flags) with one method added to the
config's: ``ensemble``, the mean of the refined noises of the given refiner files,
``x̂_T = x_T + (1/K)·Σ_k (g_k(x_T, c) − x_T)``, sampled without guidance like each refiner's own. Averaging
independently trained models (Lakshminarayanan et al., 2017, arXiv 1612.01474) cuts the part of each one's error
that is its own, which is where a refiner extrapolating to colour-shape bindings it never saw may err. Not in the
NoiseRefine paper; it costs 2K refiner-time network calls instead of 2 (each member runs its own merged refiner
and base call; sharing the base call would make it K + 1). Prints the evaluation table; ``recovered.py`` reads its
``samples.parquet``.

    python experiments/noiserefine_shapes/ensemble.py --config experiments/noiserefine_shapes/capacity.yaml \
      --config experiments/noiserefine_shapes/ensemble.yaml
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from goldennoise.evaluation.cli import evaluate_command
from goldennoise.evaluation.harness import MethodSpec
from goldennoise.noise import NoiseRefineNoise
from goldennoise.noise.base import NoiseContext, NoiseMethod

MEMBERS = ("shapes", "experiments/noiserefine_shapes/results/heldout_gap/dropout0.1_step2160.safetensors")
"""The two refiners trained by the shipped 2,160-step recipe: the shipped one, and its LoRA-dropout-0.1 twin."""


class EnsembleRefiner(NoiseMethod):
    """The mean of several refiners' refined noises from the same x_T and prompt.

    Args:
        checkpoints: refiner files or shipped names (:class:`~goldennoise.noise.NoiseRefineNoise`), two or more.
    """

    def __init__(self, checkpoints: tuple[str, ...] = MEMBERS) -> None:
        super().__init__()
        if len(checkpoints) < 2:
            raise ValueError(f"An ensemble needs two refiners or more, got {list(checkpoints)}.")
        self.members = nn.ModuleList(NoiseRefineNoise(checkpoint) for checkpoint in checkpoints)

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        return torch.stack([member(noise, ctx) for member in self.members]).mean(0)  # (B, C, h, w)

    def describe(self) -> dict[str, Any]:
        """The class and each member's description."""
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}",
                "members": [member.describe() for member in self.members]}


def main(argv: list[str]) -> None:
    """Run the evaluation with the ensemble of the two 2,160-step refiners added."""
    evaluate_command(argv, [MethodSpec("ensemble", EnsembleRefiner())])


if __name__ == "__main__":
    main(sys.argv[1:])
