"""LightningModule pieces for modules that carry a frozen network they never train (a backbone, a VAE)."""

from __future__ import annotations

from typing import Any

import lightning as L

from goldennoise.backbones import Backbone, load_backbone


class FrozenPartMixin:
    """Keeps one frozen submodule, named by ``frozen_attribute``, out of training and out of checkpoints.

    The frozen part is a submodule so that Lightning moves it to the right device and precision, but it stays in
    eval mode when Lightning switches the module to training, and its weights are dropped from saved checkpoints
    and refilled from the live module on load, so strict loading still checks everything that was trained. Mix it
    in before :class:`lightning.LightningModule`. A missing (``None``) frozen part is allowed.
    """

    frozen_attribute = "backbone"

    @property
    def _frozen_prefix(self) -> str:
        return f"{self.frozen_attribute}."

    def train(self, mode: bool = True) -> FrozenPartMixin:
        """Switch the trainable parts only; the frozen part stays in eval mode."""
        super().train(mode)
        frozen = getattr(self, self.frozen_attribute, None)
        if frozen is not None:
            frozen.eval()
        return self

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the frozen part's weights from the checkpoint."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(self._frozen_prefix)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Fill the frozen part's weights back in from the live module."""
        own = self.state_dict()
        checkpoint["state_dict"].update({k: v for k, v in own.items() if k.startswith(self._frozen_prefix)})


class FrozenBackboneModule(FrozenPartMixin, L.LightningModule):
    """A LightningModule holding ``self.backbone``, frozen, loaded from ``backbone`` rather than from checkpoints.

    Args:
        backbone: built-in name, hub id or local folder (see :func:`goldennoise.backbones.load_backbone`).
        backbone_dtype: weight dtype of the backbone.
    """

    def __init__(self, backbone: str = "tiny-sd", backbone_dtype: str = "float32") -> None:
        super().__init__()
        self.backbone: Backbone = load_backbone(backbone, backbone_dtype)
