"""``python -m goldennoise evaluate --config configs/eval/<name>.yaml``: compare noise methods on prompts × seeds.

Every :class:`~goldennoise.evaluation.config.EvaluateConfig` setting is a flag (``--help`` documents them,
``--print_config`` prints the resolved YAML); config files compose left to right and flags win. Methods and metrics
are given by ``class_path`` + ``init_args``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from goldennoise.config_parser import ConfigParser, parse_settings, settings_parser
from goldennoise.evaluation.config import EvaluateConfig
from goldennoise.evaluation.harness import MethodSpec


def build_parser() -> ConfigParser:
    """The ``evaluate`` argument parser (omegaconf mode, like the trainer CLI)."""
    return settings_parser(EvaluateConfig, "python -m goldennoise evaluate",
                           "Compare noise methods on the same prompts and seeds, with costs and CIs.")


def parse_config(argv: list[str]) -> tuple[EvaluateConfig, dict[str, Any]]:
    """The evaluation and each method's resolved configuration (for MLflow params), from command-line arguments."""
    config, resolved = parse_settings(build_parser(), EvaluateConfig, argv)
    method_params = {spec["name"]: {"guidance_scale": spec["guidance_scale"], **spec["method"]}
                     for spec in resolved.get("methods") or []}
    return config, method_params


def evaluate_command(argv: list[str], extra: Sequence[MethodSpec] = ()) -> dict | None:
    """Entry point registered as the ``evaluate`` subcommand; returns the summary (rank 0).

    Args:
        argv: the command-line arguments.
        extra: methods built in code, evaluated after the config's (an experiment's diagnostics); each is recorded in
            MLflow by its ``describe()``.
    """
    from goldennoise.evaluation.run import evaluate

    config, method_params = parse_config(argv)
    config = replace(config, methods=[*config.methods, *extra])
    return evaluate(config, {**method_params, **{spec.name: spec.method.describe() for spec in extra}})
