"""A LightningModule base for modules that carry a frozen backbone they never train."""

from __future__ import annotations

from typing import Any

import lightning as L

from goldennoise.backbones import Backbone, load_backbone


class FrozenBackboneModule(L.LightningModule):
    """Holds ``self.backbone`` frozen and in eval mode, and keeps its weights out of checkpoints.

    The backbone is a submodule so that Lightning moves it to the right device and precision, but its weights are
    reloaded from ``backbone`` (a name, hub id or folder), not from the checkpoint: a checkpoint holds only what
    was trained.

    Args:
        backbone: built-in name, hub id or local folder (see :func:`goldennoise.backbones.load_backbone`).
        backbone_dtype: weight dtype of the backbone.
    """

    frozen_prefix = "backbone."

    def __init__(self, backbone: str = "tiny-sd", backbone_dtype: str = "float32") -> None:
        super().__init__()
        self.backbone: Backbone = load_backbone(backbone, backbone_dtype)

    def train(self, mode: bool = True) -> FrozenBackboneModule:
        """Switch the trainable parts only; the backbone stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the frozen backbone's weights from the checkpoint."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(self.frozen_prefix)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Fill the backbone's weights back in from the loaded backbone, so strict loading still checks the rest."""
        own = self.state_dict()
        checkpoint["state_dict"].update({k: v for k, v in own.items() if k.startswith(self.frozen_prefix)})
