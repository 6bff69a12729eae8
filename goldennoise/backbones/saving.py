"""Write diffusers pipeline folders that load back the plain diffusers way, whatever dtype their weights are stored in.

diffusers loads its models (UNet, VAE) in float32 unless ``torch_dtype`` / ``dtype`` asks otherwise, whatever the
dtype of the files; transformers 5 loads a model in the dtype its ``config.json`` records (``dtype="auto"``), and
``save_pretrained`` records the dtype of the saved weights. A folder saved in fp16 would then come back from
``DiffusionPipeline.from_pretrained(folder)`` with an fp16 text encoder beside an fp32 UNet, and a call with
classifier-free guidance fails ("mat1 and mat2 must have the same dtype"). :func:`save_pipeline` records float32 as
the load dtype of every transformers component instead, so every component loads in float32 by default and in the
requested dtype when one is given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from goldennoise.shipped import export_target

LOAD_DTYPE = "float32"
"""The dtype recorded for transformers components: the one diffusers loads its own models in by default."""


def record_load_dtype(config_file: Path, dtype: str = LOAD_DTYPE) -> None:
    """Set the dtype a transformers ``config.json`` asks ``from_pretrained`` to load in (the weights stay as stored).

    transformers 5 reads ``dtype``; transformers 4 wrote ``torch_dtype`` (and loaded float32 whatever it said).
    """
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["dtype"] = dtype
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_pipeline(pipeline: Any, folder: str | Path, overwrite_shipped: bool = False) -> Path:
    """``save_pretrained`` (safetensors) into ``folder``, then :func:`record_load_dtype` for each transformers model.

    Args:
        pipeline: a diffusers pipeline; its weights are written in the dtype they have.
        folder: the model folder to write (``model_index.json`` and one subfolder per component).
        overwrite_shipped: allow ``folder`` inside the installed package (replacing shipped weights).

    Returns:
        ``folder`` as a path.

    Raises:
        ValueError: ``folder`` is inside the installed package and ``overwrite_shipped`` is false.
    """
    folder = export_target(folder, "folder", overwrite_shipped)
    pipeline.save_pretrained(str(folder), safe_serialization=True)
    for name, component in pipeline.components.items():
        if isinstance(component, PreTrainedModel):
            record_load_dtype(folder / name / "config.json")
    return folder
