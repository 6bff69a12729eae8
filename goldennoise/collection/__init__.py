"""NPD collection: NPNet's re-denoise sampling at scale (batched, sharded, crash-safe, multi-process)."""

from goldennoise.collection.collect import CollectionJob, collect, collect_batch
from goldennoise.collection.config import CollectConfig, ScorerSpec, build_items, config_hash, unet_evals_per_pair

__all__ = ["CollectConfig", "ScorerSpec", "build_items", "CollectionJob", "collect", "collect_batch", "config_hash",
           "unet_evals_per_pair"]
