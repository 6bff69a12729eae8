"""How much of CFG's gain can any initial noise give unguided sampling? The inverted guided image, as a ceiling.

An evaluation (``python -m goldennoise evaluate`` arguments: config files and flags) with one method added to the
config's, a diagnostic, not a method (it runs guided sampling to make the noise): ``inverted_cfg``,
``x*_T = Inv_c(Φ_CFG(x_T, c))``, the pair's guided sample (the NoiseRefine teacher's x_0: CFG at ``guidance`` on the
evaluation's own grid) inverted on the same grid by the *unguided* conditional model (textbook DDIM inversion; flow
Euler on a flow grid), then sampled without guidance like a refined noise. Were the inversion exact,
``Φ_c(x*_T) = Φ_CFG(x_T)``: it is the noise the multistep score distillation loss (arXiv 2412.03895, Sec. 3.3) asks
the refiner for, solved per pair instead of learnt.

Its share of CFG's gain on held-out bindings says whether a noise-only method on this backbone can reach CFG there at
all (then the refiner's gap is one of learning to compose unseen bindings) or not (then it is a limit of unguided
sampling, which no refiner closes). Cost per image: 2N (guided sample) + N (inversion) + N (unguided sample)
evaluations. Prints the evaluation table; ``recovered.py`` reads its ``samples.parquet``.

    python experiments/noiserefine_shapes/oracle.py --config experiments/noiserefine_shapes/report.yaml \
      --config experiments/noiserefine_shapes/oracle.yaml
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from goldennoise.evaluation.cli import evaluate_command
from goldennoise.evaluation.harness import MethodSpec
from goldennoise.noise.base import NoiseContext, NoiseMethod
from goldennoise.noise.msd import inverted_teacher
from goldennoise.sampling import sample

OWN_SAMPLERS = ("ddim", "flow_euler")
"""The samplers whose grid :func:`~goldennoise.sampling.invert` inverts exactly as the images are then sampled."""


class InvertedGuidedSample(NoiseMethod):
    """The unguided model's inversion of the pair's guided sample (a per-pair ceiling for noise-only methods).

    Args:
        guidance: the CFG scale of the guided sample (the NoiseRefine teacher's, 3 on the shapes backbone).
    """

    def __init__(self, guidance: float = 3.0) -> None:
        super().__init__()
        self.guidance = guidance

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        if ctx.sampler.scheduler not in OWN_SAMPLERS:
            raise ValueError(f"The inverted guided sample inverts goldennoise's own samplers {OWN_SAMPLERS}; the "
                             f"evaluation samples with {ctx.sampler.scheduler!r}.")
        backbone = ctx.backbone
        schedule = backbone.schedule(ctx.sampler.steps, tuple(noise.shape[-2:]))
        x = noise.to(backbone.device, torch.float32)  # (B, C, h, w)
        guided = sample(backbone.denoiser(ctx.cond, ctx.uncond, self.guidance), x, schedule)  # (B, C, h, w) x_0
        inverted = inverted_teacher(backbone, guided, ctx.cond, schedule)  # (B, C, h, w) x*_T, unguided
        return inverted.to(noise.dtype)

    def describe(self) -> dict[str, Any]:
        """The class and its settings."""
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}",
                "init_args": {"guidance": self.guidance}}


def main(argv: list[str]) -> None:
    """Run the evaluation with the inverted guided sample added."""
    evaluate_command(argv, [MethodSpec("inverted_cfg", InvertedGuidedSample())])


if __name__ == "__main__":
    main(sys.argv[1:])
