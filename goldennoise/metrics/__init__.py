"""Evaluation scores as torchmetrics metrics, each with a functional twin and a differentiable ``score`` path.

| metric | functional twin | logged name | weights |
|---|---|---|---|
| :class:`HPSv2Score` (``"v2.0"`` / ``"v2.1"``) | ``hpsv2_score`` | ``hpsv2`` / ``hpsv2.1`` | ``xswu/HPSv2`` |
| :class:`PickScore` | ``pickscore`` | ``pickscore`` | ``yuvalkirstain/PickScore_v1`` |
| :class:`ImageReward` | ``image_reward`` | ``image_reward`` | ``THUDM/ImageReward`` |
| :class:`AestheticScore` | ``aesthetic_score`` | ``aesthetic`` | LAION ``sac+logos+ava1-l14-linearMSE`` |
| :class:`CLIPScore` | ``clip_score`` | ``clip_score`` | ``openai/clip-vit-large-patch14`` |
| :class:`ShapesAlignment` | ``shapes_alignment`` | per fact | none: an exact reader of the shapes world |
| :class:`SoftShapesAlignment` | — | ``soft_shapes_alignment`` | none: its differentiable surrogate (a reward) |

The functional twins live in :mod:`goldennoise.metrics.functional` (``shapes_alignment`` in
:mod:`goldennoise.metrics.shapes_alignment`).

Every metric takes ``update(images, prompts)`` with images (B, 3, H, W) in [0, 1]; weights load lazily on
construction (hub id, URL or local path), never at import. Log with ``metric.log_name(split)`` → ``"val/hpsv2"``.
:func:`paired_bootstrap_ci` and :func:`paired_summary` compare two noise sources scored on the same pairs.
"""

from goldennoise.metrics import functional
from goldennoise.metrics.aesthetic import AestheticScore
from goldennoise.metrics.base import PromptImageMetric
from goldennoise.metrics.clip_score import CLIPScore
from goldennoise.metrics.hps import HPSv2Score
from goldennoise.metrics.image_reward import ImageReward
from goldennoise.metrics.paired import gain_share, paired_bootstrap_ci, paired_summary
from goldennoise.metrics.pickscore import PickScore
from goldennoise.metrics.shapes_alignment import ShapesAlignment
from goldennoise.metrics.soft_shapes_alignment import SoftShapesAlignment

__all__ = [
    "AestheticScore",
    "CLIPScore",
    "HPSv2Score",
    "ImageReward",
    "PickScore",
    "PromptImageMetric",
    "ShapesAlignment",
    "SoftShapesAlignment",
    "functional",
    "gain_share",
    "paired_bootstrap_ci",
    "paired_summary",
]
