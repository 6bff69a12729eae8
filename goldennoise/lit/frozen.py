"""LightningModule pieces for modules that carry a frozen network they never train (a backbone, a VAE)."""

from __future__ import annotations

from typing import Any

import lightning as L

from goldennoise.backbones import Backbone, load_backbone


class FrozenPartMixin:
    """Keeps one frozen submodule, named by ``frozen_attribute``, out of training and out of checkpoints.

    The frozen part is a submodule so that Lightning moves it to the right device and precision, but it stays in
    eval mode when Lightning switches the module to training, and its weights are dropped from saved checkpoints
    and refilled from the live module on load, so strict loading still checks everything that was trained.
    Parameters of the frozen part that require gradients (an adapter trained on it, like a NoiseRefine LoRA on the
    UNet) are trained, not frozen: they stay in checkpoints and load from them. Mix it in before
    :class:`lightning.LightningModule`. A missing (``None``) frozen part is allowed.
    """

    frozen_attribute = "backbone"

    @property
    def _frozen_prefix(self) -> str:
        return f"{self.frozen_attribute}."

    def _trained_keys(self) -> set[str]:
        """State keys under the frozen part that are trained (parameters requiring gradients)."""
        frozen = getattr(self, self.frozen_attribute, None)
        if frozen is None:
            return set()
        return {f"{self._frozen_prefix}{name}" for name, p in frozen.named_parameters() if p.requires_grad}

    def train(self, mode: bool = True) -> FrozenPartMixin:
        """Switch the trainable parts only; the frozen part stays in eval mode."""
        super().train(mode)
        frozen = getattr(self, self.frozen_attribute, None)
        if frozen is not None:
            frozen.eval()
        return self

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the frozen part's weights from the checkpoint (trained ones, an adapter, stay)."""
        state, trained = checkpoint["state_dict"], self._trained_keys()
        for key in [k for k in state if k.startswith(self._frozen_prefix) and k not in trained]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Fill the frozen part's weights back in from the live module (trained ones come from the checkpoint)."""
        own, trained = self.state_dict(), self._trained_keys()
        checkpoint["state_dict"].update({k: v for k, v in own.items()
                                         if k.startswith(self._frozen_prefix) and k not in trained})


class FrozenBackboneModule(FrozenPartMixin, L.LightningModule):
    """A LightningModule holding ``self.backbone``, frozen, loaded from ``backbone`` rather than from checkpoints.

    Args:
        backbone: built-in name, hub id or local folder (see :func:`goldennoise.backbones.load_backbone`).
        backbone_dtype: weight dtype of the backbone.
    """

    def __init__(self, backbone: str = "tiny-sd", backbone_dtype: str = "float32") -> None:
        super().__init__()
        self.backbone: Backbone = load_backbone(backbone, backbone_dtype)
