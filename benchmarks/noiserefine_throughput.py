"""NoiseRefine costs, as ratios measured in one run (arXiv 2412.03895, Table 2; issue 13's benchmark).

1. Throughput of refine + unguided sampling ÷ CFG sampling at equal steps, the refiner merged (inference default)
   and unmerged; at most 2N / (N + 2) = 1.82 for N = 20 when every call costs the same per image (CFG: N calls at
   batch 2B; refined: 2 refiner calls + N calls at batch B). The paper's 1.72 (2.589 s / 1.504 s per image, RTX 3090,
   Table 2) is against a guided mix of 40 % CFG and 60 % CFG + PAG (PAG adds a third batch), not CFG alone.
2. Peak memory of one MSD training step (surrogate: refiner forward + backward, N no-grad rollout steps) ÷ one UNet
   forward + backward of the refiner at the same batch. On a GPU the CUDA peak over the second run (after a
   warm-up); on the CPU, in a fresh subprocess per measurement, the resident-set peak of the first run over the
   resident set before it (no warm-up: a warmed-up allocator keeps the first run's peak resident, and the kernel's
   peak counter cannot be reset; coarse).
3. Training samples per second of the NoiseRefine module at the shapes config's settings.

    python benchmarks/noiserefine_throughput.py --backbone shapes --batch 32
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time

import torch

from goldennoise.backbones import load_backbone
from goldennoise.backbones.cost import process_peak_memory
from goldennoise.lit.noiserefine import NoiseRefineModule
from goldennoise.noise.noiserefine import RefinerConfig, inject_refiner, merge_refiner, refine
from goldennoise.sampling import sample_ddim

CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
"""``wall``: elapsed time (the only one that sees a GPU's work); ``process``: this process's CPU time, which a CPU
shared with other jobs barely inflates (single-threaded runs: ``OMP_NUM_THREADS=1``)."""


def seconds(fn, repeats: int, device: torch.device, clock: str = "wall") -> float:
    """Best time of ``fn()`` over ``repeats`` runs, after one warm-up."""
    return interleaved_seconds({"fn": fn}, repeats, device, clock)["fn"]


def interleaved_seconds(fns: dict, repeats: int, device: torch.device, clock: str = "wall") -> dict[str, float]:
    """Best time of each function on ``clock``, timed in turn in every round (after one warm-up round).

    Interleaving exposes every function to the same phases of a shared machine's load, so their ratios stay fair.
    """
    now, best = CLOCKS[clock], dict.fromkeys(fns, float("inf"))
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = now()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if round_:
                best[name] = min(best[name], now() - start)
    return best


def throughput_ratio(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Seconds per batch of CFG and of refine + unguided sampling, and their ratios.

    As :class:`~goldennoise.noise.NoiseRefineNoise` runs it by default (``merge=True``): the refiner call on a copy
    of the network with the LoRA merged into its weights, the residual's base call and every sampling step on the
    plain base network. Also timed: the unmerged refiner (one network carrying the adapter, switched per call, as in
    training), whose PEFT-wrapped layers cost more than plain ones.
    """
    backbone = load_backbone(args.backbone).to(device)
    wrapped = load_backbone(args.backbone).to(device)
    config = RefinerConfig(rank=args.rank)
    inject_refiner(wrapped, config)
    base = copy.deepcopy(wrapped)
    merged = merge_refiner(base)
    prompts = ["a red circle left of a blue square"] * args.batch
    noise = torch.randn(args.batch, *backbone.latent_shape(), device=device)
    schedule = backbone.ddim_schedule(args.steps)
    with torch.no_grad():
        cond, uncond = backbone.encode_prompt(prompts)

        def guided() -> torch.Tensor:
            return sample_ddim(backbone.denoiser(cond, uncond, args.guidance_scale), noise, schedule)

        def refined() -> torch.Tensor:
            return sample_ddim(backbone.denoiser(cond), refine(base, noise, cond, config, merged), schedule)

        def refined_unmerged() -> torch.Tensor:
            return sample_ddim(backbone.denoiser(cond), refine(wrapped, noise, cond, config), schedule)

        def unguided() -> torch.Tensor:
            return sample_ddim(backbone.denoiser(cond), noise, schedule)

        times = interleaved_seconds({"cfg": guided, "refined": refined, "refined_unmerged": refined_unmerged,
                                     "unguided": unguided}, args.repeats, device, args.clock)
    return {**{f"{name}_seconds": value for name, value in times.items()},
            "throughput_ratio": times["cfg"] / times["refined"],
            "throughput_ratio_unmerged": times["cfg"] / times["refined_unmerged"],
            "ideal_ratio": 2 * args.steps / (args.steps + 2)}


def module(args: argparse.Namespace, device: torch.device) -> NoiseRefineModule:
    """The training module at the benchmark's settings, on ``device``."""
    return NoiseRefineModule(backbone=args.backbone, rank=args.rank, rollout_steps=args.rollout_steps, lr=1e-3,
                             gradient_checkpointing=args.gradient_checkpointing).to(device)


def fake_batch(model: NoiseRefineModule, batch: int, device: torch.device) -> dict:
    """A teacher batch of the right shapes (values do not change the cost)."""
    shape = (batch, *model.backbone.latent_shape())
    return {"noise": torch.randn(shape, device=device), "latent": torch.randn(shape, device=device),
            "prompt": ["a red circle left of a blue square"] * batch}


def peak_of(kind: str, args: argparse.Namespace, device: torch.device) -> int:
    """Peak bytes of one ``msd`` training step or one refiner ``fwdbwd`` (module docstring, 2: how)."""
    model = module(args, device)
    batch = fake_batch(model, args.batch, device)
    cond = model.conditioning(batch)

    def run() -> None:
        if kind == "msd":
            loss = model.msd_loss(batch)[0]
        else:
            loss = refine(model.backbone, batch["noise"], cond, model.config).square().mean()
        loss.backward()
        model.zero_grad(set_to_none=True)

    if device.type == "cuda":
        run()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        return torch.cuda.max_memory_allocated(device) - before
    before = resident_memory()
    run()
    return process_peak_memory() - before


def resident_memory() -> int:
    """This process's resident set now, in bytes (Linux ``/proc``; elsewhere its peak so far, a higher baseline)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return process_peak_memory()


def memory_ratio(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Peak memory of an MSD step ÷ one refiner forward + backward, each in its own process on the CPU."""
    if device.type == "cuda":
        msd, fwdbwd = peak_of("msd", args, device), peak_of("fwdbwd", args, device)
    else:
        msd, fwdbwd = (child_peak(kind, args) for kind in ("msd", "fwdbwd"))
    return {"msd_step_peak_mib": msd / 2**20, "fwd_bwd_peak_mib": fwdbwd / 2**20,
            "memory_ratio": msd / max(fwdbwd, 1)}


def child_peak(kind: str, args: argparse.Namespace) -> int:
    """``peak_of(kind)`` in a fresh process (the CPU's resident peak cannot be reset)."""
    argv = [sys.executable, __file__, "--child", kind, "--backbone", args.backbone, "--batch", str(args.batch),
            "--rank", str(args.rank), "--rollout-steps", str(args.rollout_steps)]
    argv += ["--gradient-checkpointing"] if args.gradient_checkpointing else []
    return int(subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def training_rate(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Training samples per second (forward, backward, AdamW step) at the benchmark's batch."""
    model = module(args, device)
    optimizer = model.configure_optimizers()["optimizer"]
    batch = fake_batch(model, args.batch, device)

    def step() -> None:
        model.msd_loss(batch)[0].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return {"train_samples_per_s": args.batch / seconds(step, args.repeats, device, args.clock)}


MEASURES = {"throughput": throughput_ratio, "memory": memory_ratio, "training": training_rate}


def main() -> None:
    """Run the three measurements and print them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="shapes")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="sampling steps of the throughput comparison")
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--rollout-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="train with gradient checkpointing (NoiseRefineModule(gradient_checkpointing=True))")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (fairer on a shared CPU; never on a GPU)")
    parser.add_argument("--measures", nargs="+", choices=sorted(MEASURES), default=list(MEASURES),
                        help="which of the three measurements to run")
    parser.add_argument("--child", choices=["msd", "fwdbwd"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.child:
        print(peak_of(args.child, args, device))
        return
    if args.clock == "process" and device.type == "cuda":
        parser.error("--clock process cannot see a GPU's work; use --clock wall on a GPU.")
    result = {"backbone": args.backbone, "batch": args.batch, "device": str(device), "clock": args.clock}
    for name in args.measures:
        result.update(MEASURES[name](args, device))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
