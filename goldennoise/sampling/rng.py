"""Per-sample seeded noise, after EDM's ``StackedRandomGenerator`` (Karras et al., 2022).

Seeds are data: the noise of seed ``s`` is drawn by its own CPU generator, so it is the same whatever batch it
is drawn in and whatever device it ends up on. Drawing on the CPU in the requested dtype also reproduces the
official NPNet collection noise (``torch.randn(shape, generator=torch.manual_seed(seed), dtype=torch.float16)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def noise_for_seeds(
    seeds: Sequence[int],
    shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Stack one standard-normal sample of ``shape`` per seed.

    Args:
        seeds: one integer seed per sample.
        shape: the per-sample shape, e.g. ``(4, 128, 128)``.
        dtype: dtype the noise is drawn in (it changes the values, as in ``torch.randn``).
        device: where the result is moved after drawing on the CPU.

    Returns:
        Tensor of shape ``(len(seeds), *shape)``.
    """
    if len(seeds) == 0:
        raise ValueError("noise_for_seeds needs at least one seed.")
    samples = [torch.randn(tuple(shape), generator=torch.Generator().manual_seed(int(s)), dtype=dtype) for s in seeds]
    return torch.stack(samples).to(device)


def parse_seeds(spec: str | int | Sequence[int]) -> list[int]:
    """Parse a seed list such as ``"0-3,10,12-13"`` into ``[0, 1, 2, 3, 10, 12, 13]`` (ranges are inclusive)."""
    if isinstance(spec, int):
        return [spec]
    if not isinstance(spec, str):
        return [int(s) for s in spec]
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        low, sep, high = part.partition("-")
        try:
            seeds.extend(range(int(low), int(high) + 1) if sep else [int(part)])
        except ValueError:
            raise ValueError(f"Cannot parse seed range {part!r} in {spec!r}; use forms like '0-63,100'.") from None
    if not seeds:
        raise ValueError(f"The seed specification {spec!r} names no seeds.")
    return seeds
