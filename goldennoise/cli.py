"""``python -m goldennoise``: a LightningCLI (omegaconf mode) with MLflow on an embedded sqlite store by default.

Trainer subcommands (``fit``, ``validate``, ``test``, ``predict``) go to :class:`GoldenNoiseCLI`; further
subcommands (data collection, sweeps) register in :data:`COMMANDS` and receive the remaining arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import MLFlowLogger

from goldennoise.errors import MissingWeightsError

TRAINER_DEFAULTS = {
    "default_root_dir": "runs",  # checkpoints land in runs/<experiment id>/<run id>/checkpoints
    "logger": {
        "class_path": "lightning.pytorch.loggers.MLFlowLogger",
        "init_args": {"experiment_name": "goldennoise", "tracking_uri": "sqlite:///mlruns.db", "log_model": False},
    },
}
"""Trainer settings a config may override: MLflow on ``sqlite:///mlruns.db`` in the working directory."""

COMMANDS: dict[str, Callable[[list[str]], object]] = {}
"""Non-trainer subcommands by name; each receives the arguments after its name."""


def _collect(argv: list[str]) -> object:
    """``collect``: NPD collection (imported on use, so the trainer CLI does not load it)."""
    from goldennoise.collection.cli import collect_command

    return collect_command(argv)


COMMANDS["collect"] = _collect


def _evaluate(argv: list[str]) -> object:
    """``evaluate``: compare noise methods (imported on use)."""
    from goldennoise.evaluation.cli import evaluate_command

    return evaluate_command(argv)


COMMANDS["evaluate"] = _evaluate


class MLflowSaveConfigCallback(SaveConfigCallback):
    """Log the resolved config to every MLflow logger: the text as artifact ``config.yaml``, the values as params.

    Lightning's default callback writes into the logger's ``log_dir``, which an MLflow logger on sqlite lacks.
    """

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        text = self.parser.dump(self.config, skip_none=False)
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                logger.experiment.log_text(logger.run_id, text, "config.yaml")
                logger.log_hyperparams({"config": yaml.safe_load(text)})


class GoldenNoiseCLI(LightningCLI):
    """LightningCLI over any LightningModule / LightningDataModule given by ``class_path``.

    Config files compose left to right (``--config a.yaml --config b.yaml``), dotted flags override them, and
    ``${...}`` interpolation works (omegaconf parser mode).
    """

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            model_class=LightningModule,
            datamodule_class=None,
            subclass_mode_model=True,
            save_config_callback=MLflowSaveConfigCallback,
            save_config_kwargs={"save_to_log_dir": False},
            trainer_defaults=TRAINER_DEFAULTS,
            parser_kwargs={"parser_mode": "omegaconf", "allow_abbrev": False},
            args=args,
            run=run,
        )


    def after_fit(self) -> None:
        """Tell the user what the run achieved and where it went."""
        if self.trainer.is_global_zero:
            print(run_summary(self.trainer))


def run_summary(trainer: Trainer) -> str:
    """Final logged metrics, the MLflow run and the best checkpoint of a finished fit, one per line."""
    metrics = ", ".join(f"{k} {float(v):.4g}" for k, v in sorted(trainer.callback_metrics.items()))
    lines = [f"final metrics: {metrics or 'none logged'}"]
    for logger in trainer.loggers:
        if isinstance(logger, MLFlowLogger):
            experiment = logger.experiment.get_experiment(logger.experiment_id).name
            lines.append(f"MLflow run {logger.run_id} in experiment '{experiment}' ({logger.experiment.tracking_uri})")
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_path:
        lines.append(f"checkpoint: {checkpoint.best_model_path}")
    return "\n".join(lines)


def main(args: list[str] | None = None) -> object:
    """Entry point; ``args`` defaults to ``sys.argv[1:]``, so tests call ``main([...])``."""
    argv = sys.argv[1:] if args is None else list(args)
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        return GoldenNoiseCLI(args=args)
    except Exception as err:
        missing = _missing_weights_cause(err)
        if missing is None:
            raise
        print(f"error: {missing}", file=sys.stderr)
        raise SystemExit(1) from None


def _missing_weights_cause(err: BaseException | None) -> MissingWeightsError | None:
    """The :class:`MissingWeightsError` behind ``err``, if any (jsonargparse wraps errors raised in __init__)."""
    while err is not None and not isinstance(err, MissingWeightsError):
        err = err.__cause__ or err.__context__
    return err
