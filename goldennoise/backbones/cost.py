"""Cost accounting: how many denoiser evaluations, backward passes, seconds and memory a result took, per image.

Every comparison of noise methods is a comparison at a cost: best-of-N sampling buys quality with N samplings, a
learned method with one network call, guidance with a second denoiser batch per step. :class:`CostMeter` counts
at the one place all of them pass through, the backbone's denoiser network (UNet or transformer), with hooks:

* an *evaluation* is one latent row through the denoiser: a guided step of B images runs 2B rows, so it counts 2
  per image, an unguided step 1;
* a *backward pass* is one row's gradient flowing back through the denoiser (counted when the output requires a
  gradient and one arrives); a forward recomputed by activation checkpointing counts as another evaluation;
* *seconds* are wall time and *peak memory* the CUDA peak (reset at each phase) on a GPU, else the process's
  resident peak (lifetime, as the operating system reports it).

Costs are kept per phase (``"method"`` and ``"sampling"`` in an evaluation) and divided by the images of each
:meth:`CostMeter.phase` block, so the result is per image whatever the batch size.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn


def evaluations_per_step(guidance_scale: float) -> int:
    """Denoiser evaluations per image of one guided prediction: 1 when ω is 0 or 1 (one branch), else 2."""
    return 1 if guidance_scale in (0.0, 1.0) else 2


@dataclass
class PhaseCost:
    """Totals of one phase.

    Attributes:
        images: images the phase was run for.
        evaluations: denoiser rows evaluated.
        backward: denoiser rows differentiated.
        seconds: wall time.
        peak_memory: peak bytes (CUDA peak on a GPU, process peak on the CPU).
    """

    images: int = 0
    evaluations: int = 0
    backward: int = 0
    seconds: float = 0.0
    peak_memory: int = 0

    def per_image(self) -> dict[str, float]:
        """``evaluations``, ``backward`` and ``seconds`` per image, and ``peak_memory`` in MiB."""
        n = max(self.images, 1)
        return {"evaluations": self.evaluations / n, "backward": self.backward / n, "seconds": self.seconds / n,
                "peak_memory_mib": self.peak_memory / 2**20}


def process_peak_memory() -> int:
    """The process's resident-set peak in bytes (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _rows(output: object) -> torch.Tensor | None:
    """The tensor a denoiser returned (diffusers wraps it in an output dataclass or a tuple)."""
    if isinstance(output, torch.Tensor):
        return output
    sample = getattr(output, "sample", None)
    if isinstance(sample, torch.Tensor):
        return sample
    return output[0] if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor) else None


class CostMeter:
    """Counts denoiser evaluations and backward passes of one network while attached, per phase.

    Use as a context manager (hooks are removed on exit)::

        with CostMeter(backbone.network) as meter:
            with meter.phase("method", images=len(noise)):
                noise = method(noise, ctx)
            with meter.phase("sampling", images=len(noise)):
                latents = sample(noise)
        meter.per_image()  # {"method/evaluations": ..., "sampling/evaluations": ..., ...}

    Args:
        network: the denoiser network (``Backbone.network``: a UNet or a transformer).
    """

    def __init__(self, network: nn.Module) -> None:
        self.network = network
        self.phases: dict[str, PhaseCost] = {}
        self._current: PhaseCost | None = None
        self._handle = None

    def __enter__(self) -> CostMeter:
        self._handle = self.network.register_forward_hook(self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _count(self, module: nn.Module, args: tuple, output: object) -> None:
        phase = self._current
        out = _rows(output)
        if phase is None or out is None:
            return
        rows = out.shape[0]
        phase.evaluations += rows
        if out.requires_grad:
            out.register_hook(lambda grad: self._count_backward(phase, rows))

    @contextlib.contextmanager
    def watch(self, network: nn.Module) -> Iterator[None]:
        """Also count ``network``'s calls inside the block, as if it were the metered network.

        For a method that runs its own copy of the denoiser (a NoiseRefine refiner loaded with its own backbone);
        a no-op for the metered network itself, so nothing is counted twice.
        """
        if network is self.network:
            yield
            return
        handle = network.register_forward_hook(self._count)
        try:
            yield
        finally:
            handle.remove()

    @staticmethod
    def _count_backward(phase: PhaseCost, rows: int) -> None:
        phase.backward += rows

    @contextlib.contextmanager
    def phase(self, name: str, images: int) -> Iterator[PhaseCost]:
        """Attribute what runs inside to phase ``name``, for ``images`` images (phases nest: the inner one wins)."""
        cost = self.phases.setdefault(name, PhaseCost())
        outer, self._current = self._current, cost
        device = next(self.network.parameters()).device
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        try:
            yield cost
        finally:
            if cuda:
                torch.cuda.synchronize(device)
            cost.seconds += time.perf_counter() - start
            cost.images += images
            peak = torch.cuda.max_memory_allocated(device) if cuda else process_peak_memory()
            cost.peak_memory = max(cost.peak_memory, peak)
            self._current = outer

    def per_image(self) -> dict[str, float]:
        """Every phase's per-image costs as ``"<phase>/<cost>"`` keys."""
        return {f"{name}/{key}": value for name, cost in self.phases.items()
                for key, value in cost.per_image().items()}

    def totals(self) -> dict[str, dict]:
        """Every phase's raw totals."""
        return {name: asdict(cost) for name, cost in self.phases.items()}
