"""On-disk format of NoiseRefine teacher records: atomic, content-hashed shards of (x_T, guided x_0) pairs.

NoiseRefine (Ahn et al., 2024, arXiv 2412.03895, Sec. 4) trains on text–image pairs whose image latent is the guided
DDIM sample of a *known* initial noise. A teacher folder (``docs/noiserefine_data.md``) holds:

* ``shards/shard-<k>.safetensors`` (:mod:`goldennoise.data.shards`): tensors ``noise`` (x_T) and ``latent``
  (guided x_0), (n, C, h, w); ``seed``, ``index`` (n,) int64; ``cfg``, ``pag`` (n,) float32, the guidance scales of
  each record. Header: one record per kept item (index, prompt, prompt_id, seed, scores ``{name: value}``,
  guidance ``{cfg, pag}``), the backbone id and ``dropped``, how many of the shard's items the score filter removed.
* ``teacher.json``: the run's digest, ``num_items`` (before filtering), its settings; after the run also
  ``kept`` and ``dropped``.
* ``prompt_embeds/<backbone>/``: the cached text embeddings (:mod:`goldennoise.data.npd_embeddings`).
"""

from __future__ import annotations

from goldennoise.data.shards import ShardError, ShardFormat


class TeacherShardError(ShardError):
    """A teacher shard, or its manifest, is missing, corrupt, truncated or not teacher data; names the file."""


TEACHER_FORMAT = ShardFormat(name="goldennoise-teacher/1", label="teacher shard", manifest="teacher.json",
                             count_key="num_items", unit="items",
                             tensors=frozenset({"noise", "latent", "seed", "index", "cfg", "pag"}),
                             row_tensor="noise", error=TeacherShardError)
"""Teacher shards: ``noise``, ``latent``, ``seed``, ``index``, ``cfg``, ``pag``, one row per kept record."""
