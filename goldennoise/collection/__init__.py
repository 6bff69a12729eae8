"""Dataset collection on the engine: NPNet's NPD (re-denoise sampling) and NoiseRefine's teacher records."""

from goldennoise.collection.collect import CollectionJob, collect, collect_batch, is_collected
from goldennoise.collection.config import CollectConfig, ScorerSpec, build_items, config_hash, unet_evals_per_pair
from goldennoise.collection.teacher import TeacherJob, collect_teacher
from goldennoise.collection.teacher_config import TeacherConfig

__all__ = ["CollectConfig", "ScorerSpec", "build_items", "CollectionJob", "collect", "collect_batch", "config_hash",
           "is_collected", "unet_evals_per_pair", "TeacherConfig", "TeacherJob", "collect_teacher"]
