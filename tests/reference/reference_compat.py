"""Make the upstream reference packages (image-reward 1.5, hpsv2x 1.2.0) importable and offline under transformers 5.

Why it is needed: docs/dependencies.md §3. Used by the parity tests only; goldennoise never imports these.
"""

import importlib
import os

import pytest
import torch

REQUIRED_ENV = "GOLDENNOISE_REQUIRE_REFERENCES"
"""Set (to anything non-empty) where requirements/reference.txt is installed, so a broken reference fails."""


def require(module: str):
    """Import a reference package; skip with the reason without it, fail instead where :data:`REQUIRED_ENV` is set.

    A plain ``pip install -e '.[dev]'`` has no reference packages, so there the parity tests skip; ``make test``
    installs them and CI (``.ci/run``) sets the variable, so a reference that stops importing fails there.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if os.environ.get(REQUIRED_ENV):
            raise
        pytest.skip(f"reference package {module} is not importable ({err}); install the parity references with "
                    "`pip install --no-deps -r requirements/reference.txt`")


def _pruneable_heads(heads, n_heads, head_size, already_pruned):
    todo = set(heads) - set(already_pruned)
    keep = torch.ones(n_heads, head_size, dtype=torch.bool)
    for head in todo:
        keep[head - sum(1 for p in already_pruned if p < head)] = False
    return todo, keep.flatten().nonzero().squeeze(1)


def _get_head_mask(self, head_mask, num_hidden_layers, is_attention_chunked=False):
    if head_mask is not None:
        raise NotImplementedError("head masks are not supported by this compat layer")
    return [None] * num_hidden_layers


def _invert_attention_mask(self, mask):
    mask = mask[:, None] if mask.dim() == 3 else mask[:, None, None]  # (B, 1, [1|Lq], L)
    mask = mask.to(self.dtype)
    return (1.0 - mask) * torch.finfo(self.dtype).min


def install_image_reward_compat():
    """Re-add what image-reward 1.5's BLIP code needs from transformers 4.x; idempotent."""
    import transformers.modeling_utils as mu
    import transformers.pytorch_utils as pu

    for name in ("apply_chunking_to_forward", "prune_linear_layer"):
        if not hasattr(mu, name):
            setattr(mu, name, getattr(pu, name))
    if not hasattr(mu, "find_pruneable_heads_and_indices"):
        mu.find_pruneable_heads_and_indices = _pruneable_heads
    from ImageReward.models.BLIP import med

    if getattr(med.BertModel, "_goldennoise_compat", False):
        return
    if not hasattr(mu.PreTrainedModel, "get_head_mask"):
        med.BertModel.get_head_mask = _get_head_mask
    if not hasattr(mu.PreTrainedModel, "invert_attention_mask"):
        med.BertModel.invert_attention_mask = _invert_attention_mask
    base_init = mu.PreTrainedModel.init_weights

    def init_weights(self):
        # BLIP calls init_weights() where v5 expects post_init(); post_init() calls back into this
        if hasattr(self, "all_tied_weights_keys"):
            base_init(self)
        else:
            self.post_init()

    med.BertModel.init_weights = init_weights
    med.BertModel._goldennoise_compat = True
