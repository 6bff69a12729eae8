"""Does the refiner read the prompt? The shipped refiner refining from another prompt than the image's.

An evaluation (``python -m goldennoise evaluate`` arguments: config files and flags) with two diagnostic methods
added to the config's: the shipped refiner given the empty prompt's embeddings (``reads_empty``) and given the prompt
of another pair in its batch, half a batch away (``reads_other``); the images are sampled from the refined noise
with the right prompt and no guidance, as the refiner's own. If the refiner's gain were a prompt-free "better
noise", both would match ``noiserefine``; the gain they lose is the part that depends on the prompt the refiner
reads. Prints the evaluation table; ``recovered.py`` reads its ``samples.parquet``.

    python experiments/noiserefine_shapes/prompt_dependence.py \
      --config experiments/noiserefine_shapes/prompt_dependence.yaml
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any, Literal

import torch

from goldennoise.evaluation.cli import evaluate_command
from goldennoise.evaluation.harness import MethodSpec
from goldennoise.noise import NoiseRefineNoise
from goldennoise.noise.base import NoiseContext


class PromptSwapRefiner(NoiseRefineNoise):
    """A refiner file's refiner reading the empty prompt, or the prompt of the pair half a batch away.

    Args:
        reads: ``empty`` (the unconditional embeddings) or ``other`` (pair i reads pair (i + B/2) mod B's prompt;
            evaluations order pairs prompt by prompt, so with batches of 8 pairs or more it is another prompt).
        checkpoint: the refiner file or shipped name, as :class:`NoiseRefineNoise`.
    """

    def __init__(self, reads: Literal["empty", "other"], checkpoint: str = "shapes") -> None:
        super().__init__(checkpoint)
        self.reads = reads

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        if self.reads == "empty":
            return super().forward(noise, replace(ctx, cond=ctx.uncond))
        batch = len(ctx.prompts)
        other = (torch.arange(batch) + batch // 2) % batch
        return super().forward(noise, replace(ctx, cond=ctx.cond.take(other.to(ctx.cond.embeds.device))))

    def describe(self) -> dict[str, Any]:
        """As the refiner's, plus which prompt it reads."""
        return {**super().describe(), "reads": self.reads}


def main(argv: list[str]) -> None:
    """Run the evaluation with the two prompt-swapped refiners added."""
    evaluate_command(argv, [MethodSpec(f"reads_{reads}", PromptSwapRefiner(reads)) for reads in ("empty", "other")])


if __name__ == "__main__":
    main(sys.argv[1:])
