"""Errors that carry one sentence a user can act on."""


class MissingWeightsError(FileNotFoundError):
    """A model, checkpoint or weight file is not where it was asked for; the message says how to get it."""


class CheckpointError(ValueError):
    """A checkpoint or weight file exists but cannot be read or holds the wrong tensors; the message names it."""
