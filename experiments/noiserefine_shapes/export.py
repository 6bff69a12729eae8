"""Export a NoiseRefine Lightning checkpoint as the standard diffusers/PEFT LoRA safetensors file.

Usage: ``python experiments/noiserefine_shapes/export.py <checkpoint.ckpt> <output.safetensors>``.
"""

import argparse

from goldennoise.lit.noiserefine import load_noiserefine_checkpoint


def main() -> None:
    """Load the checkpoint (adapter from the file, base from the backbone) and write the LoRA file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", help="a NoiseRefineModule checkpoint (.ckpt)")
    parser.add_argument("output", help="the .safetensors file to write")
    args = parser.parse_args()
    module = load_noiserefine_checkpoint(args.checkpoint)
    print(f"wrote {module.export(args.output)}")


if __name__ == "__main__":
    main()
