"""``python -m goldennoise``: a LightningCLI (omegaconf mode) with MLflow on an embedded sqlite store by default.

Trainer subcommands (``fit``, ``validate``, ``test``, ``predict``) go to :class:`GoldenNoiseCLI`; further
subcommands (``collect``, ``evaluate``) register in :data:`COMMANDS` and receive the remaining arguments. Both parse
with :class:`~goldennoise.config_parser.ConfigParser` (a later config or flag replaces a list whole).

Expected user errors (a bad value, file or argument) end the command with one ``error: ...`` line on stderr and exit
code 2; ``--debug`` (anywhere on the command line) or ``GOLDENNOISE_DEBUG=1`` shows their traceback instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml
from jsonargparse import ArgumentError
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import MLFlowLogger

from goldennoise.config_parser import ConfigParser
from goldennoise.errors import MissingWeightsError
from goldennoise.mlflow_ui import mark_experiment, runs_url
from goldennoise.sweep.result import write_result
from goldennoise.tensor_files import naming_checkpoint

TRAINER_DEFAULTS = {
    "default_root_dir": "runs",  # checkpoints land in runs/<experiment id>/<run id>/checkpoints
    "logger": {
        "class_path": "lightning.pytorch.loggers.MLFlowLogger",
        "init_args": {"experiment_name": "goldennoise", "tracking_uri": "sqlite:///mlruns.db", "log_model": False},
    },
}
"""Trainer settings a config may override: MLflow on ``sqlite:///mlruns.db`` in the working directory."""

UI_PORT = 5055
"""The port ``make ui`` serves the MLflow UI on."""

DESCRIPTION = (
    "goldennoise: train golden-noise methods and collect their datasets for diffusers text-to-image models. Trainer "
    "subcommands take a LightningModule and a DataModule by class_path; config files compose left to right and "
    "flags win. Add --debug (or set GOLDENNOISE_DEBUG=1) to see the traceback behind an error."
)

SHIPPED_MODULES = ("goldennoise.lit", "goldennoise.data", "goldennoise.data.npd", "goldennoise.data.text_image")
"""Modules imported before the parser is built, so ``--help`` lists their LightningModules and DataModules (the
NPD and text-image ones load lazily from :mod:`goldennoise.data`)."""

USER_ERRORS = (ValueError, MissingWeightsError, ArgumentError, FileNotFoundError, IsADirectoryError,
               NotADirectoryError, PermissionError)
"""Errors a user causes and can fix from the message (bad values, missing or unreadable files, arguments): one
line, exit code 2."""

PARSING_PACKAGES = ("jsonargparse", "argparse", "yaml", "omegaconf")
"""Where parse errors are raised and wrapped; an error raised elsewhere is the one to report."""

DEBUG_FLAG = "--debug"
DEBUG_ENV = "GOLDENNOISE_DEBUG"

QUIET_LOG_PREFIXES = ("💡 Tip:",)
"""Lightning's promotional tips (litlogger, litmodels), dropped from CLI output."""

QUIET_WARNINGS = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),  # Lightning's pytree helper, torch >= 2.9
    (UserWarning, r"LightningCLI's args parameter is intended to run from within Python"),  # main() passes argv
)
"""Known-harmless warnings, by category and message."""

LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


@dataclass(frozen=True)
class Command:
    """A subcommand beside the trainer's.

    Args:
        help: one line for ``python -m goldennoise --help``.
        run: receives the arguments after the subcommand's name.
    """

    help: str
    run: Callable[[list[str]], object]


def _collect(argv: list[str]) -> object:
    """``collect``: NPD collection (imported on use, so the trainer CLI does not load it)."""
    from goldennoise.collection.cli import collect_command

    return collect_command(argv)


def _collect_teacher(argv: list[str]) -> object:
    """``collect-teacher``: NoiseRefine teacher records (imported on use)."""
    from goldennoise.collection.teacher_cli import collect_teacher_command

    return collect_teacher_command(argv)


def _evaluate(argv: list[str]) -> object:
    """``evaluate``: compare noise methods (imported on use)."""
    from goldennoise.evaluation.cli import evaluate_command

    return evaluate_command(argv)


def _export_refiner(argv: list[str]) -> object:
    """``export-refiner``: a NoiseRefine checkpoint as a LoRA file (imported on use)."""
    from goldennoise.lit.noiserefine import export_refiner_command

    return export_refiner_command(argv)


def _sweep(argv: list[str]) -> object:
    """``sweep``: a base config run at many points (imported on use)."""
    from goldennoise.sweep.cli import sweep_command

    return sweep_command(argv)


COMMANDS: dict[str, Command] = {
    "collect": Command("Collect a noise prompt dataset (NPD) by NPNet's re-denoise sampling.", _collect),
    "collect-teacher": Command("Collect NoiseRefine teacher records (guided samples of stored noises, CFG or "
                               "CFG + PAG), sharded and resumable.", _collect_teacher),
    "evaluate": Command("Compare noise methods on the same prompts and seeds, with costs and CIs, into MLflow.",
                        _evaluate),
    "export-refiner": Command("Write a NoiseRefine fit's checkpoint as the diffusers/PEFT LoRA file that "
                              "NoiseRefineNoise and pipeline.load_lora_weights load.", _export_refiner),
    "sweep": Command("Run a fit, collect or evaluate config at every point of a grid or list of overrides (Optuna "
                     "schedules them; one MLflow parent run, a child run per point).", _sweep),
}
"""Non-trainer subcommands by name."""


class MLflowSaveConfigCallback(SaveConfigCallback):
    """Log the resolved config to every MLflow logger: the text as artifact ``config.yaml``, the values as params.

    Lightning's default callback writes into the logger's ``log_dir``, which an MLflow logger on sqlite lacks.
    """

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        text = self.parser.dump(self.config, skip_none=False)
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                mark_experiment(logger.experiment, logger.experiment_id)
                logger.experiment.log_text(logger.run_id, text, "config.yaml")
                logger.log_hyperparams({"config": yaml.safe_load(text)})


class TrainerParser(ConfigParser, LightningArgumentParser):
    """LightningCLI's parser with :class:`~goldennoise.config_parser.ConfigParser`'s list and error handling."""


class StepsRichProgressBar(RichProgressBar):
    """Lightning's rich progress bar, without an epoch total when only ``max_steps`` bounds the run.

    Lightning sets ``max_epochs = -1`` then, and its bar reads "Epoch 0/-2"; this one reads "Epoch 0".
    """

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"


class GoldenNoiseCLI(LightningCLI):
    """LightningCLI over any LightningModule / LightningDataModule given by ``class_path``.

    Config files compose left to right (``--config a.yaml --config b.yaml``), dotted flags override them, a list given
    later replaces the earlier one, and ``${...}`` interpolation works (omegaconf parser mode).
    """

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        for module in SHIPPED_MODULES:
            importlib.import_module(module)  # registers the subclasses that --help lists
        super().__init__(
            model_class=LightningModule,
            datamodule_class=None,
            subclass_mode_model=True,
            save_config_callback=MLflowSaveConfigCallback,
            save_config_kwargs={"save_to_log_dir": False},
            trainer_defaults=TRAINER_DEFAULTS,
            parser_class=TrainerParser,
            parser_kwargs={"prog": "python -m goldennoise", "allow_abbrev": False, "description": DESCRIPTION},
            args=args,
            run=run,
        )

    def setup_parser(self, add_subcommands: bool, main_kwargs: dict[str, Any],
                     subparser_kwargs: dict[str, Any]) -> None:
        """Build the parsers; the main parser's help also lists the :data:`COMMANDS` (run by :func:`main`)."""
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        if add_subcommands:
            subcommands = self.parser._subcommands_action  # jsonargparse allows one subcommands action per parser
            for name, command in COMMANDS.items():
                subcommands.add_subcommand(name, ConfigParser(prog=f"python -m goldennoise {name}"), help=command.help)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The configured trainer, with :class:`StepsRichProgressBar` where Lightning would add its rich bar."""
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        callbacks = _as_list(config.get("callbacks"))
        default_bar = config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks)
        if default_bar and importlib.util.find_spec("rich") is not None:  # as Lightning: a rich bar when rich is there
            kwargs["callbacks"] = [*callbacks, StepsRichProgressBar()]
        return super().instantiate_trainer(**kwargs)

    def _parse_ckpt_path(self) -> None:
        """Lightning reads ``--ckpt_path`` here first: an unreadable checkpoint is named."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        with naming_checkpoint(ckpt_path, keep=(ArgumentError,)):  # the checkpoint's hparams are parsed too
            super()._parse_ckpt_path()

    def after_fit(self) -> None:
        """Tell the user what the run achieved and where it went."""
        if self.trainer.is_global_zero:
            print(run_summary(self.trainer))


def _as_list(value: object) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def run_summary(trainer: Trainer) -> str:
    """A labelled block: the final logged metrics (one per line), the MLflow run and the best checkpoint of a fit."""
    metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items())}
    width = max((len(k) for k in metrics), default=0)
    lines = ["fit finished", "  metrics:" if metrics else "  metrics: none logged"]
    lines += [f"    {name:{width}}  {value:.4g}" for name, value in metrics.items()]
    for logger in trainer.loggers:
        if isinstance(logger, MLFlowLogger):
            experiment = logger.experiment.get_experiment(logger.experiment_id).name
            lines.append(f"  MLflow run: {logger.run_id} in experiment '{experiment}' "
                         f"({logger.experiment.tracking_uri})")
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_path:
        lines.append(f"  checkpoint: {checkpoint.best_model_path}")
    lines += [ui_line(logger) for logger in trainer.loggers if isinstance(logger, MLFlowLogger)]
    return "\n".join(lines)


def ui_line(logger: MLFlowLogger) -> str:
    """The command that opens the MLflow UI on the logger's store, and the page of the run's experiment."""
    uri = logger.experiment.tracking_uri
    command = "make ui" if uri == TRAINER_DEFAULTS["logger"]["init_args"]["tracking_uri"] else (
        f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port {UI_PORT}")
    return f"  MLflow UI: {command}   then open {runs_url(f'http://127.0.0.1:{UI_PORT}', logger.experiment_id)}"


def main(args: list[str] | None = None) -> object:
    """Entry point; ``args`` defaults to ``sys.argv[1:]``, so tests call ``main([...])``.

    Raises:
        SystemExit: code 2 with one ``error:`` line for an expected user error (:func:`user_error`), unless
            ``--debug`` or ``GOLDENNOISE_DEBUG=1`` asks for the traceback; other errors propagate with theirs.
    """
    argv = sys.argv[1:] if args is None else list(args)
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "0") not in ("", "0")
    argv = [a for a in argv if a != DEBUG_FLAG]
    try:
        with quiet_lightning():
            if argv and argv[0] in COMMANDS:
                result = COMMANDS[argv[0]].run(argv[1:])
            else:
                result = GoldenNoiseCLI(args=argv)
        write_result(result)  # for a sweep point: its metrics where the sweep asks (nothing otherwise)
        return result
    except Exception as err:
        message = None if debug else user_error(err)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def user_error(err: BaseException) -> str | None:
    """One line for an expected user error, ``None`` for anything else (a bug: its traceback is what helps).

    jsonargparse wraps what a class's ``__init__`` raises in its own errors; the first error of the chain raised
    outside the config parsing libraries is the one that happened. It is a user error if it is one of
    :data:`USER_ERRORS`; a chain raised entirely while parsing is a parse error, said by its outermost error's first
    line (which names the key) and its innermost error (which says what is wrong).
    """
    chain = _error_chain(err)
    for current in chain:
        if not _raised_while_parsing(current):
            return _one_line(current) if isinstance(current, USER_ERRORS) else None
    if not isinstance(err, USER_ERRORS):
        return None
    where, what = _one_line(str(err).strip().splitlines()[0]), _one_line(chain[-1])
    return where if what in where else _one_line(f"{where} {what}")


def _error_chain(err: BaseException) -> list[BaseException]:
    chain = [err]
    while (cause := chain[-1].__cause__ or (None if chain[-1].__suppress_context__ else chain[-1].__context__)):
        chain.append(cause)
    return chain


def _raised_while_parsing(err: BaseException) -> bool:
    """Whether ``err`` was raised inside the config parsing libraries (by the module of its innermost frame)."""
    frame, tb = None, err.__traceback__
    while tb is not None:
        frame, tb = tb.tb_frame, tb.tb_next
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    return module.split(".")[0] in PARSING_PACKAGES


def _one_line(err: BaseException | str) -> str:
    """An error's message (a ``KeyError``'s without its quotes) or a text, with its lines joined."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Drop Lightning's promotional tips and the :data:`QUIET_WARNINGS` while a command runs (nothing else)."""
    tips = _PrefixFilter(QUIET_LOG_PREFIXES)
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    for logger in loggers:
        logger.addFilter(tips)
    try:
        with warnings.catch_warnings():
            for category, message in QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category)
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(tips)


class _PrefixFilter(logging.Filter):
    """Drops log records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)
