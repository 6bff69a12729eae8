"""Image grids: one row per (prompt, seed), one column per method, so a reader sees what each noise changed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


def save_image_grid(path: str | Path, labels: Sequence[str], images: dict[str, torch.Tensor]) -> Path:
    """Write a PNG grid: row ``i`` is labelled ``labels[i]``, column ``m`` shows ``images[m][i]`` (3, H, W) in [0, 1].

    Args:
        path: the PNG file.
        labels: one label per row (e.g. ``"prompt (seed 3)"``).
        images: per method, a (rows, 3, H, W) tensor.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(images)
    rows = len(labels)
    if any(len(images[m]) != rows for m in methods):
        raise ValueError(f"Every method needs {rows} images, one per row.")
    figure, axes = plt.subplots(rows, len(methods), figsize=(1.9 * len(methods), 2.1 * rows), squeeze=False)
    for i, label in enumerate(labels):
        for j, method in enumerate(methods):
            axis = axes[i, j]
            axis.imshow(images[method][i].detach().float().permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            axis.set_xticks([]), axis.set_yticks([])
            if i == 0:
                axis.set_title(method, fontsize=8)
            if j == 0:
                axis.set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center", wrap=True)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
