"""Export a run's step checkpoints as refiner files and write the evaluation config that compares them.

Selecting a refiner on its alignment gain rather than on its latent MSE: every step checkpoint of the given
checkpoint folders (``step=N.ckpt`` of the every-120-steps ``ModelCheckpoint`` of ``configs/noiserefine/shapes.yaml``
and the best-val/mse ``epoch=E-step=N.ckpt``, one per step) is exported
in the diffusers/PEFT format to ``<out>/<label>_step<N>.safetensors``, and ``<out>/select.yaml`` evaluates Gaussian
noise, CFG 3, the shipped refiner (``noiserefine``) and every candidate on the selection pairs (test scenes
1000-1127 x 4 seeds, never used for the report). ``recovered.py`` then gives each candidate's share of CFG's gain.
Usage: ``python experiments/noiserefine_shapes/candidates.py <out> <label>=<checkpoint folder> [...]``, then
``python -m goldennoise evaluate --config <out>/select.yaml``.
"""

import argparse
import re
from pathlib import Path

import yaml

from goldennoise.lit.noiserefine import load_noiserefine_checkpoint

SELECTION = {"prompt_source": "shapes:test:1000-1127", "seeds": "1000000-1000003", "distinct_seeds": True}


def gaussian(name: str, guidance: float) -> dict:
    """A Gaussian-noise method entry at the given guidance scale."""
    return {"name": name, "method": {"class_path": "goldennoise.noise.Gaussian"}, "guidance_scale": guidance}


def refiner(name: str, checkpoint: str) -> dict:
    """A NoiseRefineNoise entry sampled without guidance."""
    return {"name": name, "guidance_scale": 1.0,
            "method": {"class_path": "goldennoise.noise.NoiseRefineNoise", "init_args": {"checkpoint": checkpoint}}}


def step_of(checkpoint: Path) -> int:
    """The training step in a ``step=N.ckpt`` file name."""
    return int(re.search(r"step=(\d+)", checkpoint.name)[1])


def export_candidates(out: Path, label: str, folder: Path) -> list[dict]:
    """Export every step checkpoint in ``folder`` (one per step); one method entry per checkpoint, in step order."""
    entries = []
    by_step = {step_of(checkpoint): checkpoint for checkpoint in folder.glob("*step=*.ckpt")}
    if not by_step:
        raise SystemExit(f"No step=N.ckpt checkpoint in {folder}.")
    for _, checkpoint in sorted(by_step.items()):
        name = f"{label}_step{step_of(checkpoint)}"
        target = out / f"{name}.safetensors"
        if not target.exists():
            load_noiserefine_checkpoint(str(checkpoint)).export(str(target))
        entries.append(refiner(name, str(target)))
    return entries


def main() -> None:
    """Export the candidates and write ``<out>/select.yaml``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="folder for the refiner files and select.yaml")
    parser.add_argument("runs", nargs="+", help="<label>=<checkpoint folder> of each training run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    methods = [gaussian("gaussian", 1.0), gaussian("cfg3", 3.0), refiner("noiserefine", "shapes")]
    for run in args.runs:
        label, _, folder = run.partition("=")
        methods += export_candidates(args.out, label, Path(folder))
    config = {"name": "noiserefine-shapes-select", "output_dir": str(args.out / "eval"), "backbone": "shapes",
              **SELECTION, "steps": 20, "methods": methods,
              "metrics": [{"class_path": "goldennoise.metrics.ShapesAlignment"}], "batch_size": 128}
    (args.out / "select.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"{len(methods) - 3} candidates; evaluate with --config {args.out / 'select.yaml'}")


if __name__ == "__main__":
    main()
