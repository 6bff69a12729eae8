"""``python -m goldennoise collect --config configs/npd/<backbone>.yaml``: the NPD collection command.

Every :class:`~goldennoise.collection.config.CollectConfig` setting is a flag (``--help`` documents them,
``--print_config`` prints the resolved YAML); config files compose left to right and flags win, a list (``scorers``,
``prompts``) given later replacing the earlier one whole (:class:`~goldennoise.config_parser.ConfigParser`).
"""

from __future__ import annotations

from goldennoise.collection.collect import collect
from goldennoise.collection.config import CollectConfig
from goldennoise.config_parser import ConfigParser, parse_settings, settings_parser


def build_parser() -> ConfigParser:
    """The ``collect`` argument parser (omegaconf mode, like the trainer CLI)."""
    return settings_parser(CollectConfig, "python -m goldennoise collect",
                           "Collect a noise prompt dataset (NPD) by NPNet's re-denoise sampling.")


def parse_config(argv: list[str]) -> CollectConfig:
    """Parse command-line arguments into a :class:`CollectConfig`."""
    return parse_settings(build_parser(), CollectConfig, argv)[0]


def collect_command(argv: list[str]) -> dict | None:
    """Entry point registered as the ``collect`` subcommand; returns the summary (rank 0)."""
    return collect(parse_config(argv))
