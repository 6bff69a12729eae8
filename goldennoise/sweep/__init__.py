"""Sweeps: one base config run at every point of a grid or list of overrides, scheduled by Optuna (docs/sweeps.md).

Kept import-light: the CLI imports :mod:`goldennoise.sweep.result` on every command.
"""
