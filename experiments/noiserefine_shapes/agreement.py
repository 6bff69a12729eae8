"""How alike are two refiners' changes to the noise? RMS of each ``x̂_T − x_T`` and their cosine similarity.

Refines the same Gaussian noises (one per scene, drawn from ``--seed``) for the prompts of shapes-world scenes with
each refiner and prints, as JSON, the RMS of each change, of their mean (the ensemble's change, ``ensemble.py``), the
mean per-pair cosine similarity of the two changes, and the mean per-pair projection of the first change on the
second, ``⟨a, b⟩ / ‖b‖²`` (1: the first goes as far along the second as the second itself). Two refiners whose changes
agree closely have little error of their own for an ensemble to average away. ``oracle`` in place of a refiner is
the inverted guided sample of ``oracle.py``, the noise the refiner is trained towards.

    python experiments/noiserefine_shapes/agreement.py --scenes shapes:heldout:1024-1151
    python experiments/noiserefine_shapes/agreement.py --scenes shapes:heldout:0-255 --refiners shapes oracle
"""

import argparse
import json

import torch
from ensemble import MEMBERS
from oracle import InvertedGuidedSample

from goldennoise.backbones import load_backbone
from goldennoise.data.prompt_sources import load_prompts
from goldennoise.noise import NoiseContext, NoiseRefineNoise


def rms(x: torch.Tensor) -> float:
    """Root mean square of every element."""
    return x.pow(2).mean().sqrt().item()


def change_stats(first: torch.Tensor, second: torch.Tensor) -> dict[str, float | list[float]]:
    """RMS of two batches of changes (n, C, h, w), of their mean, and their mean per-pair cosine and projection.

    The projection of the first on the second is ``⟨a, b⟩ / ‖b‖²`` per pair: how far ``a`` goes along ``b``.
    """
    a, b = first.flatten(1), second.flatten(1)  # (n, C·h·w)
    return {"rms": [rms(first), rms(second)], "rms_of_mean": rms((first + second) / 2),
            "cosine": torch.nn.functional.cosine_similarity(a, b).mean().item(),
            "projection": ((a * b).sum(1) / b.pow(2).sum(1)).mean().item()}


def main() -> None:
    """Print the agreement of the two refiners (default: the ensemble's members)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", default="shapes:heldout:1024-1151", help="prompt source of the scenes")
    parser.add_argument("--refiners", nargs=2, default=list(MEMBERS),
                        help="two refiner files or shipped names, or 'oracle' (the inverted CFG sample)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noises")
    args = parser.parse_args()
    backbone = load_backbone("shapes")
    prompts = list(load_prompts(args.scenes).prompts)
    generator = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(len(prompts), *backbone.latent_shape(), generator=generator)  # (n, C, h, w)
    ctx = NoiseContext.build(backbone, prompts, list(range(len(prompts))))
    with torch.no_grad():
        first, second = ((InvertedGuidedSample() if name == "oracle" else NoiseRefineNoise(name))(noise, ctx) - noise
                         for name in args.refiners)  # each (n, C, h, w)
    print(json.dumps({"scenes": args.scenes, "refiners": args.refiners, "pairs": len(prompts),
                      **change_stats(first, second)}, indent=1))


if __name__ == "__main__":
    main()
