"""Weights shipped inside the installed package, and the guard that keeps exports from overwriting them.

The package carries trained weights (``backbones/weights/shapes``, ``noise/weights/npnet_shapes.safetensors``). An
export whose target lies inside the package would replace them for every later user of the installation, so every
exporter checks its target with :func:`export_target` and refuses unless told ``overwrite_shipped=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
"""The installed ``goldennoise`` package folder."""


def inside_package(path: str | os.PathLike) -> bool:
    """True if ``path`` (a file or folder, existing or not) lies inside :data:`PACKAGE_DIR`."""
    return Path(path).expanduser().resolve().is_relative_to(PACKAGE_DIR)


def export_target(path: str | os.PathLike, argument: str = "export path", overwrite_shipped: bool = False) -> Path:
    """``path`` as a :class:`~pathlib.Path`, refused if it lies inside the installed package.

    Args:
        path: where an export will write.
        argument: the argument's name for the error (``"export_dir"``).
        overwrite_shipped: allow a target inside the package, to replace shipped weights on purpose.

    Raises:
        ValueError: ``path`` is inside the package and ``overwrite_shipped`` is false.
    """
    if inside_package(path) and not overwrite_shipped:
        raise ValueError(f"{argument} '{path}' is inside the installed goldennoise package ({PACKAGE_DIR}), so the "
                         "export would overwrite its shipped weights; export elsewhere (e.g. under runs/), or pass "
                         "overwrite_shipped=True to replace them on purpose.")
    return Path(path).expanduser()
