"""Read the objects back from a shapes image: colors, objects and boxes by rule, shapes by rule or a small fit.

1. Foreground: pixels bright enough (HSV value) and saturated enough; each takes the palette color nearest in hue
   (:data:`~goldennoise.shapes.world.COLOR_HUES`, 60° apart, so a global hue shift under 30° keeps every color).
2. Objects: 8-connected components of each color's foreground (label propagation by 3 × 3 max-pooling), dropping
   those smaller than ``min_area``.
3. Coverage: the renderer draws coverage, so ``(value - background) / (peak - background)`` around an object
   estimates it, anti-aliased edges included.
4. Shape: for each shape and each candidate blur σ, the box whose template has the measured centroid and second
   moments (a Gaussian blur keeps the centroid and adds σ² to each variance) is drawn, blurred by σ, and compared
   with the coverage by soft IoU; the best shape wins and its box gives the object's center and size.
5. Decoded shapes: a VAE does not draw what the renderer draws (the embedded backbone's draws crosses as diamonds and
   rounds squares and triangles, by an amount that depends on the object's size and color), and step 4 calls many
   of those circles. With ``ReaderSettings.shape_classifier`` set (the default), a small classifier fitted on
   train-split renders and their VAE round-trips (:mod:`goldennoise.shapes.shape_classifier`, 6 kB) picks the shape
   from the object's coverage instead, and step 4's fit of that shape gives the box. ``shape_classifier=None`` is
   the weight-free reader of steps 1–4.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from goldennoise.shapes.render import _subpixel_grid, inside_shape
from goldennoise.shapes.shape_classifier import ShapeClassifier, centered_patch, load_shape_classifier
from goldennoise.shapes.world import COLORS, SHAPES


@dataclass(frozen=True)
class ReaderSettings:
    """Thresholds of the reader (defaults measured on renders with blur, noise and color jitter) and its shape decision.

    Args:
        min_value: least HSV value (max of R, G, B) of a foreground pixel.
        min_saturation: least HSV saturation of a foreground pixel.
        min_area: least pixel count of an object, as a fraction of the image area (8 px at 32 × 32).
        peak_quantile: quantile of an object's values taken as its full brightness.
        template_blurs: Gaussian blurs of the templates tried, so a blurred object matches its shape; in pixels of a
            32-pixel image (scaled with the image side, as the objects are).
        shape_classifier: name (or ``.safetensors`` path) of the fitted classifier that decides each object's shape
            (:func:`~goldennoise.shapes.shape_classifier.load_shape_classifier`); the default ``"shapes-vae"`` was
            fitted on renders and their round-trips through the embedded backbone's VAE. ``None``: the exact
            templates decide, the weight-free reader that results before this calibration were measured with.
    """

    min_value: float = 0.3
    min_saturation: float = 0.4
    min_area: float = 8.0 / 1024.0
    peak_quantile: float = 0.9
    template_blurs: tuple[float, ...] = (0.0, 0.5, 0.8, 1.1, 1.4, 1.8)
    shape_classifier: str | None = "shapes-vae"


@dataclass(frozen=True)
class DetectedObject:
    """One object read from an image; geometry in fractions of the image side (``x`` right, ``y`` down).

    Args:
        color: palette color name.
        shape: best-matching shape name.
        x: box center, horizontal.
        y: box center, vertical.
        width: box width.
        height: box height.
        area: pixel count as a fraction of the image area.
        shape_score: soft IoU of the object with its shape's template (1 = a clean render).
    """

    color: str
    shape: str
    x: float
    y: float
    width: float
    height: float
    area: float
    shape_score: float


def rgb_to_hsv(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue in degrees [0, 360), saturation and value in [0, 1] of ``(..., 3, H, W)`` RGB, each ``(..., H, W)``."""
    r, g, b = images.unbind(dim=-3)
    value, _ = images.max(dim=-3)
    chroma = value - images.min(dim=-3).values
    safe = chroma.clamp_min(1e-8)
    hue = torch.where(value == r, ((g - b) / safe) % 6.0,
                      torch.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = torch.where(chroma > 0, hue * 60.0, torch.zeros_like(hue))
    return hue, chroma / value.clamp_min(1e-8), value


def nearest_color_index(hue: torch.Tensor) -> torch.Tensor:
    """Index into :data:`~goldennoise.shapes.world.COLORS` of the palette hue nearest to ``hue`` (degrees)."""
    return torch.round(hue / 60.0).long() % len(COLORS)


def label_components(mask: torch.Tensor) -> torch.Tensor:
    """8-connected component labels of boolean masks ``(N, H, W)``: 0 off the mask, one positive id per component."""
    n, h, w = mask.shape
    seeds = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, h, w).expand(n, h, w)
    labels = seeds * mask
    while True:  # each pass spreads the largest id one pixel further; stops when components are uniform
        spread = F.max_pool2d(labels.unsqueeze(1), 3, stride=1, padding=1).squeeze(1) * mask
        if torch.equal(spread, labels):
            return labels.long()
        labels = spread


@functools.lru_cache(maxsize=1)
def shape_moments() -> torch.Tensor:
    """Per shape, in units of the half-side of its box: mean v and variances of u and v, ``(len(SHAPES), 3)``."""
    line = (torch.arange(512, dtype=torch.float64) + 0.5) / 256.0 - 1.0
    v, u = torch.meshgrid(line, line, indexing="ij")
    rows = []
    for shape in SHAPES:
        inside = inside_shape(shape, u, v).double()
        mass = inside.sum()
        mean_v = (inside * v).sum() / mass
        rows.append([mean_v, (inside * u.square()).sum() / mass, (inside * (v - mean_v).square()).sum() / mass])
    return torch.tensor(rows, dtype=torch.float32)


def _soft_moments(soft: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float, float]:
    # Mass-weighted (mean x, mean y, var x, var y) of a soft map over pixel-center coordinates x, y.
    mass = soft.sum().clamp_min(1e-6)
    mx, my = (soft * x).sum() / mass, (soft * y).sum() / mass
    var_x, var_y = (soft * (x - mx).square()).sum() / mass, (soft * (y - my).square()).sum() / mass
    return float(mx), float(my), float(var_x), float(var_y)


def _fitted_boxes(moments: tuple[float, float, float, float], blurs: tuple[float, ...]) -> torch.Tensor:
    # Box (cx, cy, half_w, half_h) of each shape at each blur whose blurred moments equal the measured ones:
    # blurring by sigma adds sigma² to each variance and keeps the means. (len(SHAPES), len(blurs), 4).
    mx, my, var_x, var_y = moments
    table = shape_moments()  # (S, 3)
    sigma2 = torch.tensor(blurs).square()[None, :]  # (1, K)
    half_w = ((var_x - sigma2).clamp_min(0.25) / table[:, 1:2]).sqrt()  # (S, K)
    half_h = ((var_y - sigma2).clamp_min(0.25) / table[:, 2:3]).sqrt()
    cy = my - table[:, 0:1] * half_h
    return torch.stack([torch.full_like(half_w, mx), cy, half_w, half_h], dim=-1)


@functools.lru_cache(maxsize=8)
def _blur_kernels(blurs: tuple[float, ...]) -> torch.Tensor:
    # One normalised 2-D Gaussian per blur (a delta for 0), padded to a common odd side: (len(blurs), 1, k, k).
    radius = max(1, max(int(torch.tensor(2.0 * max(blurs)).ceil()), 1))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernels = []
    for sigma in blurs:
        line = (offsets == 0).float() if sigma == 0 else torch.exp(-0.5 * (offsets / sigma).square())
        kernels.append(torch.outer(line, line) / line.sum().square())
    return torch.stack(kernels)[:, None]


def _templates(boxes: torch.Tensor, blurs: tuple[float, ...], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # Anti-aliased coverage of each shape in its fitted box, blurred by its blur, on sub-pixel centers x, y of
    # shape (h, w, s²): (len(SHAPES), len(blurs), h, w).
    cx, cy, half_w, half_h = (t[..., None, None, None] for t in boxes.unbind(dim=-1))  # (S, K, 1, 1, 1) each
    u, v = (x - cx) / half_w, (y - cy) / half_h  # (S, K, h, w, s²)
    sharp = torch.stack([inside_shape(shape, u[i], v[i]) for i, shape in enumerate(SHAPES)]).float().mean(dim=-1)
    kernels = _blur_kernels(blurs)  # (K, 1, k, k)
    groups = sharp.transpose(0, 1)  # (K, S, h, w): one conv group per blur
    blurred = F.conv2d(groups.reshape(1, -1, *x.shape[:2]), kernels.repeat_interleave(len(SHAPES), dim=0),
                       padding=kernels.shape[-1] // 2, groups=len(blurs) * len(SHAPES))
    return blurred.view(len(blurs), len(SHAPES), *x.shape[:2]).transpose(0, 1)


def _soft_iou(soft: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    return torch.minimum(soft, templates).sum(dim=(-2, -1)) / torch.maximum(soft, templates).sum(dim=(-2, -1))


def _window(component: torch.Tensor, margin: int) -> tuple[slice, slice]:
    rows, cols = component.any(dim=1).nonzero()[:, 0], component.any(dim=0).nonzero()[:, 0]
    size = component.shape[-1]
    return (slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, size)),
            slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, size)))


@dataclass(frozen=True)
class _ObjectView:
    # One object's window of the image: its pixels, its coverage estimate and where the pixels lie.
    color: str
    component: torch.Tensor  # (h, w) bool, the object's pixels
    soft: torch.Tensor  # (h, w) coverage near the object, its own color only (what the templates are fitted to)
    wide: torch.Tensor  # (h, w) coverage near the object, any pixel but other objects' (what the classifier sees)
    x_sub: torch.Tensor  # (h, w, 16) sub-pixel centers, image pixels
    y_sub: torch.Tensor
    image_size: int


def _view(component: torch.Tensor, color_mask: torch.Tensor, others: torch.Tensor, value: torch.Tensor,
          background: float, color: str, settings: ReaderSettings) -> _ObjectView:
    # component: (H, W) bool pixels of one object; color_mask: its color's pixels; others: foreground pixels of
    # other colors; value: (H, W) HSV value.
    size = value.shape[-1]
    rows, cols = _window(component, margin=4)
    component, color_mask, others, value = (t[rows, cols] for t in (component, color_mask, others, value))
    peak = torch.quantile(value[component], settings.peak_quantile)
    near = F.max_pool2d(component.float()[None, None], 5, stride=1, padding=2)[0, 0].bool()
    level = ((value - background) / (peak - background).clamp_min(1e-6)).clamp(0.0, 1.0)  # (h, w)
    x_sub, y_sub = (t[rows, cols] for t in _subpixel_grid(size, 4))  # (h, w, 16)
    # decoder edges drift in hue, so the classifier's coverage keeps off-color pixels unless another object owns them
    return _ObjectView(color, component, level * (near & color_mask), level * (near & ~others), x_sub, y_sub, size)


def _patch(view: _ObjectView, patch_size: int, extent: float) -> torch.Tensor:
    return centered_patch(view.wide, view.x_sub.mean(dim=-1), view.y_sub.mean(dim=-1), patch_size, extent,
                          view.image_size)


def _describe(view: _ObjectView, settings: ReaderSettings, classifier: ShapeClassifier | None) -> DetectedObject:
    size = view.image_size
    blurs = tuple(sigma * size / 32.0 for sigma in settings.template_blurs)
    boxes = _fitted_boxes(_soft_moments(view.soft, view.x_sub.mean(dim=-1), view.y_sub.mean(dim=-1)), blurs)
    scores = _soft_iou(view.soft, _templates(boxes, blurs, view.x_sub, view.y_sub))  # (S, K)
    best_shape_scores, best_blur = scores.max(dim=1)
    best = (int(best_shape_scores.argmax()) if classifier is None
            else classifier.shape_indices(_patch(view, classifier.patch_size, classifier.extent)[None])[0])
    cx, cy, half_w, half_h = boxes[best, int(best_blur[best])].tolist()
    return DetectedObject(color=view.color, shape=SHAPES[best], x=cx / size, y=cy / size, width=2 * half_w / size,
                          height=2 * half_h / size, area=float(view.component.sum()) / size**2,
                          shape_score=float(best_shape_scores[best]))


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"Shapes images must be a (B, 3, H, W) tensor, got {shape}.")
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"Shapes images are square, got {images.shape[-2]} × {images.shape[-1]}.")
    if not images.is_floating_point() or images.min() < -1e-3 or images.max() > 1 + 1e-3:
        raise ValueError("Shapes images must be floating point in [0, 1]; map [-1, 1] model outputs with "
                         "(x + 1) / 2 first.")


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    # The reader runs many tiny ops, which intra-op threads only slow down (10× on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def read_objects(images: torch.Tensor, settings: ReaderSettings | None = None) -> list[list[DetectedObject]]:
    """The objects in each image, largest first.

    Runs on the CPU with one intra-op thread (restored on return): its many tiny ops only lose from threading.

    Args:
        images: ``(B, 3, H, W)`` RGB in [0, 1], square.
        settings: reader thresholds; defaults to :class:`ReaderSettings()`.

    Returns:
        One list of :class:`DetectedObject` per image.
    """
    settings = settings or ReaderSettings()
    classifier = None if settings.shape_classifier is None else load_shape_classifier(settings.shape_classifier)
    with _one_thread():
        return [sorted((_describe(view, settings, classifier) for view in views), key=lambda o: -o.area)
                for views in _object_views(images, settings)]


def object_patches(images: torch.Tensor, patch_size: int = 24, extent: float = 7.0,
                   settings: ReaderSettings | None = None) -> list[dict[str, torch.Tensor]]:
    """Per image, the classifier's input patch of the largest object of each color found (see :func:`centered_patch`).

    Args:
        images: ``(B, 3, H, W)`` RGB in [0, 1], square.
        patch_size: samples per patch side.
        extent: half-width of the patch in pixels of a 32-pixel image.
        settings: reader thresholds (which pixels are objects).

    Returns:
        One ``{color: (patch_size, patch_size) patch}`` per image.
    """
    patches = []
    with _one_thread():
        for views in _object_views(images, settings or ReaderSettings()):
            by_size = sorted(views, key=lambda v: float(v.component.sum()))  # larger ones overwrite smaller ones
            patches.append({view.color: _patch(view, patch_size, extent) for view in by_size})
    return patches


def _object_views(images: torch.Tensor, settings: ReaderSettings) -> list[list[_ObjectView]]:
    _check_images(images)
    images = images.detach().float().cpu().clamp(0.0, 1.0)
    hue, saturation, value = rgb_to_hsv(images)  # (B, H, W) each
    foreground = (value > settings.min_value) & (saturation > settings.min_saturation)
    colors = nearest_color_index(hue)
    color_masks = torch.stack([colors == k for k in range(len(COLORS))], dim=1)  # (B, C, H, W)
    labels = label_components((color_masks & foreground[:, None]).flatten(0, 1)).view(color_masks.shape)
    backgrounds = value.flatten(1).median(dim=1).values  # (B,) most of a shapes image is background
    return [_views_in(labels[b], color_masks[b], foreground[b], value[b], float(backgrounds[b]), settings)
            for b in range(images.shape[0])]


def _views_in(labels: torch.Tensor, color_masks: torch.Tensor, foreground: torch.Tensor, value: torch.Tensor,
              background: float, settings: ReaderSettings) -> list[_ObjectView]:
    # One image: labels and color_masks (C, H, W), foreground and value (H, W). Components under min_area are dropped.
    min_pixels = settings.min_area * value.shape[-1] ** 2
    views = []
    for k, name in enumerate(COLORS):
        others = foreground & ~color_masks[k]
        for label in labels[k].unique().tolist():
            component = labels[k] == label
            if label > 0 and component.sum() >= min_pixels:
                views.append(_view(component, color_masks[k], others, value, background, name, settings))
    return views
