"""A fitted shape decision for the reader: a small net over an object's coverage, in a frame on its centroid.

Why it exists: the embedded backbone's VAE (4× downsampling, 8 × 8 latents for 32 px) does not draw what the renderer
draws. Its crosses come out as diamonds, its squares and triangles with rounded corners, and how round depends on
the object's size and color (small squares look like circles, blue circles like diamonds). Exact templates fitted by
moments (the reader's rule) call many of those circles. This classifier is fitted on objects whose shape is known,
renders (clean and corrupted) and their VAE round-trips, so it learns both how shapes are rendered and how the
decoder draws them; each class is a (shape, form) pair and the reader takes the shape of the best class. It never
sees the object's color, so it cannot learn which shapes a color comes in.

The input is the object's coverage sampled on a ``patch_size`` × ``patch_size`` grid centered on its centroid and
spanning ± ``extent`` pixels of a 32-pixel image (the frame scales with the image side, as objects do, and keeps the
object's size, which the decoder's drawing depends on). Two views of it feed one ``tanh`` hidden layer:

* :func:`moment_features`: size, radial spread and the angular harmonics of the coverage (a square's mass lies on
  its diagonals, a diamond's on the axes: the 4-fold harmonic has opposite signs; a triangle has a 3-fold one);
* the patch averaged over ``pool`` × ``pool`` blocks (coarse template evidence).

Linear models over either view alone stay below 0.95 on round-trips (``experiments/shapes_metric/README.md``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from goldennoise.shapes.world import SHAPES
from goldennoise.tensor_files import save_atomic

CLASSIFIER_DIR = Path(__file__).resolve().parent / "classifiers"
"""Folder of the shipped classifiers: ``<name>.safetensors``, loaded by name with :func:`load_shape_classifier`."""

HARMONICS: tuple[int, ...] = (2, 3, 4)
"""Angular orders k of the ``r² cos kθ`` and ``r² sin kθ`` moments in :func:`moment_features`."""

MOMENT_FEATURES = 2 * len(HARMONICS) + 7
"""Features per patch of :func:`moment_features`."""


def moment_features(patches: torch.Tensor, extent: float) -> torch.Tensor:
    """Size, spread and angular harmonics of coverage patches centered on their centroid, ``(N, P, P)`` → ``(N, F)``.

    With coverage weights w and polar coordinates (r, θ) around the patch center (pixels of a 32-pixel image, θ
    counter-clockwise from the right), ``⟨f⟩ = Σ w f / Σ w`` and ``R² = ⟨r²⟩``, the features are: log Σ w (the
    area), log R², ``⟨r⁴⟩ / R⁴`` and ``⟨r⟩ / R`` (how peaked the mass is), log of the share of the area covered
    over one half, ``⟨r² cos kθ⟩ / R²`` and ``⟨r² sin kθ⟩ / R²`` for k in :data:`HARMONICS`, ``⟨r³ cos 3θ⟩ / R³``
    and ``⟨r⁴ cos 4θ⟩ / R⁴`` (the corners, weighted outwards). :data:`MOMENT_FEATURES` in all.
    """
    size = patches.shape[-1]
    line = ((torch.arange(size, dtype=patches.dtype) + 0.5) / size * 2.0 - 1.0) * extent
    y, x = torch.meshgrid(line, line, indexing="ij")
    r2, theta = (x.square() + y.square()).flatten(), torch.atan2(-y, x).flatten()  # (P²,) each
    w = patches.flatten(1)  # (N, P²)
    mass = w.sum(dim=1).clamp_min(1e-6)

    def mean(f: torch.Tensor) -> torch.Tensor:
        return (w * f).sum(dim=1) / mass

    spread = mean(r2)  # R²
    columns = [mass.log(), spread.log(), mean(r2.square()) / spread.square(), mean(r2.sqrt()) / spread.sqrt(),
               ((w > 0.5).float().sum(dim=1) / mass).clamp_min(1e-3).log()]
    for k in HARMONICS:
        columns += [mean(r2 * torch.cos(k * theta)) / spread, mean(r2 * torch.sin(k * theta)) / spread]
    columns += [mean(r2**1.5 * torch.cos(3 * theta)) / spread**1.5, mean(r2.square() * torch.cos(4 * theta)) /
                spread.square()]
    return torch.stack(columns, dim=1)


class ShapeClassifier(nn.Module):
    """Scores of (shape, form) classes for object patches, ``(N, patch_size, patch_size)`` → ``(N, classes)``.

    Args:
        classes: the (shape, form) pair of each output, e.g. ``("cross", "decoded")``; shapes from
            :data:`~goldennoise.shapes.world.SHAPES`.
        patch_size: samples per patch side (a multiple of ``pool``).
        extent: half-width of the patch in pixels of a 32-pixel image.
        pool: side of the blocks the patch is averaged over before it joins the moment features.
        hidden: units of the hidden ``tanh`` layer; 0 for a linear model.
        description: how the weights were fitted (stored with them).
    """

    def __init__(self, classes: Sequence[tuple[str, str]], patch_size: int = 24, extent: float = 7.0,
                 pool: int = 2, hidden: int = 16, description: str = "") -> None:
        super().__init__()
        unknown = sorted({shape for shape, _ in classes} - set(SHAPES))
        if unknown or not classes:
            raise ValueError(f"Classifier classes must be (shape, form) pairs over {list(SHAPES)}, got {classes}.")
        if patch_size % pool:
            raise ValueError(f"patch_size ({patch_size}) must be a multiple of pool ({pool}).")
        self.classes = tuple((str(shape), str(form)) for shape, form in classes)
        self.patch_size, self.extent, self.pool, self.hidden = patch_size, extent, pool, hidden
        self.description = description
        inputs = MOMENT_FEATURES + (patch_size // pool) ** 2
        # standardisation of the moment features, set from the data by fit_shape_classifier
        self.register_buffer("feature_mean", torch.zeros(MOMENT_FEATURES))
        self.register_buffer("feature_std", torch.ones(MOMENT_FEATURES))
        self.net = (nn.Linear(inputs, len(classes)) if hidden == 0 else
                    nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, len(classes))))

    def features(self, patches: torch.Tensor) -> torch.Tensor:
        """The net's input: standardised :func:`moment_features` and the pooled patch, ``(N, inputs)``."""
        moments = (moment_features(patches, self.extent) - self.feature_mean) / self.feature_std
        return torch.cat([moments, F.avg_pool2d(patches[:, None], self.pool).flatten(1)], dim=1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) of patches ``(N, P, P)``: ``(N, len(classes))``."""
        return self.net(self.features(patches))

    @torch.no_grad()
    def shape_indices(self, patches: torch.Tensor) -> list[int]:
        """Index into :data:`SHAPES` of the best class's shape for each patch."""
        best = self(patches).argmax(dim=1).tolist()
        return [SHAPES.index(self.classes[c][0]) for c in best]


def centered_patch(soft: torch.Tensor, x: torch.Tensor, y: torch.Tensor, patch_size: int, extent: float,
                   image_size: int) -> torch.Tensor:
    """An object's coverage resampled (bilinear) on a square grid centered on its centroid.

    Args:
        soft: ``(h, w)`` coverage of one object in a window of the image.
        x: ``(h, w)`` pixel-center x of the window's pixels, in image pixels.
        y: ``(h, w)`` pixel-center y, same.
        patch_size: samples per side.
        extent: half-width of the grid in pixels of a 32-pixel image.
        image_size: the image side in pixels (the grid scales with it).

    Returns:
        ``(patch_size, patch_size)``; zero outside the window.
    """
    mass = soft.sum().clamp_min(1e-6)
    center_x, center_y = (soft * x).sum() / mass, (soft * y).sum() / mass
    half = extent * image_size / 32.0
    line = ((torch.arange(patch_size, dtype=soft.dtype) + 0.5) / patch_size * 2.0 - 1.0) * half
    offset_y, offset_x = torch.meshgrid(line, line, indexing="ij")
    left, top = x[0, 0] - 0.5, y[0, 0] - 0.5  # window edges in image pixels
    grid_x = (center_x + offset_x - left) / soft.shape[1] * 2.0 - 1.0
    grid_y = (center_y + offset_y - top) / soft.shape[0] * 2.0 - 1.0
    grid = torch.stack([grid_x, grid_y], dim=-1)[None]  # (1, P, P, 2)
    return F.grid_sample(soft[None, None], grid, mode="bilinear", align_corners=False)[0, 0]


def fit_shape_classifier(
    patches: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[tuple[str, str]],
    extent: float = 7.0,
    pool: int = 2,
    hidden: int = 16,
    weight_decay: float = 1e-5,
    steps: int = 500,
    seed: int = 0,
    description: str = "",
) -> ShapeClassifier:
    """Fit a classifier by full-batch L-BFGS on the cross-entropy (L2 penalty on the weights).

    Each patch is also used mirrored left–right: every shape of the world is mirror-symmetric, so the mirror image
    of a class is the same class. The moment features are standardised with the data's mean and deviation.

    Args:
        patches: ``(N, P, P)`` from :func:`centered_patch`.
        labels: ``(N,)`` class index into ``classes``.
        classes: the (shape, form) pairs.
        extent: the extent the patches were taken with.
        pool: block side of the pooled patch input.
        hidden: hidden units (0: linear).
        weight_decay: L2 penalty on the weights (not the biases), per weight.
        steps: L-BFGS iterations.
        seed: initialisation seed.
        description: how the data were made, stored with the weights.
    """
    if patches.dim() != 3 or patches.shape[1] != patches.shape[2] or len(patches) != len(labels):
        raise ValueError(f"Need square patches (N, P, P) and N labels, got {tuple(patches.shape)} and "
                         f"{tuple(labels.shape)}.")
    torch.manual_seed(seed)
    classifier = ShapeClassifier(classes, patches.shape[1], extent, pool, hidden, description)
    inputs, targets = torch.cat([patches, patches.flip(-1)]), torch.cat([labels, labels]).long()
    moments = moment_features(inputs, extent)
    classifier.feature_mean.copy_(moments.mean(dim=0))
    classifier.feature_std.copy_(moments.std(dim=0).clamp_min(1e-6))
    features = classifier.features(inputs)
    weights = [p for name, p in classifier.named_parameters() if name.endswith("weight")]
    optimizer = torch.optim.LBFGS(classifier.parameters(), max_iter=steps, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        penalty = weight_decay * sum(w.square().sum() for w in weights)
        loss = F.cross_entropy(classifier.net(features), targets) + penalty
        loss.backward()
        return loss

    optimizer.step(closure)
    return classifier.eval()


def save_shape_classifier(classifier: ShapeClassifier, path: str | Path) -> None:
    """Write the weights (float16: the file is a few kB) and their settings (in its metadata) to a ``.safetensors``."""
    settings = {"classes": classifier.classes, "patch_size": classifier.patch_size, "extent": classifier.extent,
                "pool": classifier.pool, "hidden": classifier.hidden, "description": classifier.description}
    state = {k: v.detach().half().contiguous() for k, v in classifier.state_dict().items()}
    save_atomic(path, state, {"settings": json.dumps(settings)})


@functools.lru_cache(maxsize=4)
def load_shape_classifier(name: str) -> ShapeClassifier:
    """A shipped classifier by name (a file of :data:`CLASSIFIER_DIR`) or a ``.safetensors`` path; cached."""
    path = Path(name) if name.endswith(".safetensors") else CLASSIFIER_DIR / f"{name}.safetensors"
    if not path.is_file():
        shipped = sorted(p.stem for p in CLASSIFIER_DIR.glob("*.safetensors"))
        raise FileNotFoundError(f"No shape classifier {name!r} (looked for {path}); shipped: {shipped}.")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "settings" not in metadata:
        raise ValueError(f"{path} has no classifier settings in its metadata; write it with save_shape_classifier.")
    settings = json.loads(metadata["settings"])
    classifier = ShapeClassifier([tuple(c) for c in settings["classes"]], settings["patch_size"],
                                 settings["extent"], settings["pool"], settings["hidden"], settings["description"])
    classifier.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return classifier.eval()
