"""Per-sample seeded noise, after EDM's ``StackedRandomGenerator`` (Karras et al., 2022).

Seeds are data: the noise of seed ``s`` is drawn by its own CPU generator, so it is the same whatever batch it
is drawn in and whatever device it ends up on. Drawing on the CPU in the requested dtype also reproduces the
official NPNet collection noise (``torch.randn(shape, generator=torch.manual_seed(seed), dtype=torch.float16)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from goldennoise.checks import check_int

SEED_MAX = 2**64 - 1
"""The largest seed ``torch.Generator.manual_seed`` accepts; seeds run from 0 (negative seeds alias large ones)."""


def noise_for_seeds(
    seeds: Sequence[int],
    shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Stack one standard-normal sample of ``shape`` per seed.

    Args:
        seeds: one integer seed per sample, each in ``0…SEED_MAX``.
        shape: the per-sample shape, e.g. ``(4, 128, 128)``.
        dtype: dtype the noise is drawn in (it changes the values, as in ``torch.randn``).
        device: where the result is moved after drawing on the CPU.

    Returns:
        Tensor of shape ``(len(seeds), *shape)``.
    """
    if len(seeds) == 0:
        raise ValueError("noise_for_seeds needs at least one seed.")
    seeds = [check_seed(s) for s in seeds]
    samples = [torch.randn(tuple(shape), generator=torch.Generator().manual_seed(s), dtype=dtype) for s in seeds]
    return torch.stack(samples).to(device)


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an int: an integer (a float such as 1.7 or a bool is refused) in ``0…SEED_MAX``.

    Raises:
        ValueError: naming ``name`` and the value.
    """
    return check_int(name, seed, 0, SEED_MAX)


def _parse_seed_part(part: str, spec: str) -> list[int]:
    low, sep, high = part.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise ValueError(f"Cannot parse seed range {part!r} in {spec!r}; seeds are integers in ranges like "
                         "'0-63,100'.") from None
    first, last = check_seed(first), check_seed(last)
    if last < first:
        raise ValueError(f"Seed range {part!r} in {spec!r} runs backwards; write it as '{last}-{first}'.")
    return list(range(first, last + 1))


def parse_seeds(spec: str | int | Iterable[int]) -> list[int]:
    """Parse a seed list such as ``"0-3,10,12-13"`` into ``[0, 1, 2, 3, 10, 12, 13]`` (ranges are inclusive).

    An int is one seed and an iterable of ints a list of seeds; every seed is checked by :func:`check_seed`.

    Raises:
        ValueError: a part is not an integer or a range, a seed is out of range, or no seed is named.
    """
    if isinstance(spec, str):
        seeds = [s for part in spec.split(",") if part.strip() for s in _parse_seed_part(part.strip(), spec)]
    elif isinstance(spec, Iterable):
        seeds = [check_seed(s) for s in spec]
    else:
        seeds = [check_seed(spec)]
    if not seeds:
        raise ValueError(f"The seed specification {spec!r} names no seeds.")
    return seeds


def seed_spec(spec: str | int | Iterable[int]) -> str:
    """A seed list in its text form, checked: an int (YAML's ``seeds: 3``) is the one-seed list ``"3"``."""
    seeds = parse_seeds(spec)
    return spec if isinstance(spec, str) else ",".join(str(seed) for seed in seeds)


def paired_items(prompts: list[str], seeds: list[int], distinct_seeds: bool) -> list[tuple[int, str, int]]:
    """``(prompt_id, prompt, seed)`` of prompts × seeds, prompt-major.

    With ``distinct_seeds`` the k-th seed of prompt p is ``seeds[k] + p · len(seeds)`` (no two pairs share a noise).

    Raises:
        ValueError: a shifted seed leaves ``0…SEED_MAX`` (before any work is done on it).
    """
    stride = len(seeds) if distinct_seeds else 0
    return [(p, prompt, check_seed(s + p * stride, f"seed of prompt {p}")) for p, prompt in enumerate(prompts)
            for s in seeds]
