"""Evaluation scores as torchmetrics metrics, each with a functional twin and a differentiable ``score`` path.

| metric | functional | logged name | weights |
|---|---|---|---|
| :class:`HPSv2Score` (``"v2.0"`` / ``"v2.1"``) | :func:`hpsv2_score` | ``hpsv2`` / ``hpsv2.1`` | ``xswu/HPSv2`` |
| :class:`PickScore` | :func:`pickscore` | ``pickscore`` | ``yuvalkirstain/PickScore_v1`` |
| :class:`ImageReward` | :func:`image_reward` | ``image_reward`` | ``THUDM/ImageReward`` |
| :class:`AestheticScore` | :func:`aesthetic_score` | ``aesthetic`` | LAION ``sac+logos+ava1-l14-linearMSE`` |
| :class:`CLIPScore` | :func:`clip_score` | ``clip_score`` | ``openai/clip-vit-large-patch14`` |

Every metric takes ``update(images, prompts)`` with images (B, 3, H, W) in [0, 1]; weights load lazily on
construction (hub id, URL or local path), never at import. Log with ``metric.log_name(split)`` → ``"val/hpsv2"``.
"""

from goldennoise.metrics.aesthetic import AestheticScore, aesthetic_score
from goldennoise.metrics.base import PromptImageMetric
from goldennoise.metrics.clip_score import CLIPScore, clip_score
from goldennoise.metrics.hps import HPSv2Score, hpsv2_score
from goldennoise.metrics.image_reward import ImageReward, image_reward
from goldennoise.metrics.pickscore import PickScore, pickscore

__all__ = [
    "AestheticScore",
    "CLIPScore",
    "HPSv2Score",
    "ImageReward",
    "PickScore",
    "PromptImageMetric",
    "aesthetic_score",
    "clip_score",
    "hpsv2_score",
    "image_reward",
    "pickscore",
]
