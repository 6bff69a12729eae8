"""``python -m goldennoise evaluate --config configs/eval/<name>.yaml``: compare noise methods on prompts × seeds.

Every :class:`~goldennoise.evaluation.config.EvaluateConfig` setting is a flag (``--help`` documents them,
``--print_config`` prints the resolved YAML); config files compose left to right and flags win. Methods and metrics
are given by ``class_path`` + ``init_args``.
"""

from __future__ import annotations

from typing import Any

import yaml
from jsonargparse import ArgumentParser

from goldennoise.evaluation.config import EvaluateConfig


def build_parser() -> ArgumentParser:
    """The ``evaluate`` argument parser (omegaconf mode, like the trainer CLI)."""
    parser = ArgumentParser(prog="python -m goldennoise evaluate", parser_mode="omegaconf",
                            description="Compare noise methods on the same prompts and seeds, with costs and CIs.")
    parser.add_argument("--config", action="config", help="A YAML evaluation config (repeatable).")
    parser.add_class_arguments(EvaluateConfig)
    return parser


def parse_config(argv: list[str]) -> tuple[EvaluateConfig, dict[str, Any]]:
    """The evaluation and each method's resolved configuration (for MLflow params), from command-line arguments."""
    parser = build_parser()
    namespace = parser.parse_args(argv)
    resolved = yaml.safe_load(parser.dump(namespace, skip_none=False))
    method_params = {spec["name"]: {"guidance_scale": spec["guidance_scale"], **spec["method"]}
                     for spec in resolved.get("methods") or []}
    values = {k: v for k, v in vars(parser.instantiate(namespace)).items() if k != "config"}
    return EvaluateConfig(**values), method_params


def evaluate_command(argv: list[str]) -> dict | None:
    """Entry point registered as the ``evaluate`` subcommand; returns the summary (rank 0)."""
    from goldennoise.evaluation.run import evaluate

    config, method_params = parse_config(argv)
    return evaluate(config, method_params)
