"""The jsonargparse parser behind every ``python -m goldennoise`` command (omegaconf mode).

Departures from plain jsonargparse, so that what ``--print_config`` shows is what runs:

- A list given whole (in a later ``--config`` file or as a flag) replaces the earlier list. jsonargparse parses a new
  list against the previous one element by element when both have the same length, so ``scorers: [{metric:
  hpsv2}]`` after ``[{metric: hpsv2, model: tiny}]`` would keep ``model: tiny``, and a second ``trainer.callbacks``
  list would inherit the first list's ``init_args``. Appending (``--key+=value``) and flags that change the last
  element (``--trainer.callbacks.init_args.x``) keep jsonargparse's meaning, and a later file can change the last
  element the same way (``callbacks: {init_args: {x: ...}}``), so an overlay holds only what differs.
- Errors are raised, not printed (``exit_on_error=False``), so the command reports them in one line; an error in a
  config file names the file, and a YAML syntax error says where it is.
"""

from __future__ import annotations

from typing import Any

import yaml
from jsonargparse import ArgumentError, ArgumentParser, Namespace
from jsonargparse._loaders_dumpers import get_loader_exceptions
from jsonargparse._typehints import ActionTypeHint, NestedArg
from jsonargparse._util import parse_value_or_config


class ListReplacingTypeHint(ActionTypeHint):
    """A typed option whose whole-list values replace the previous value instead of merging into it.

    A mapping holding only ``init_args`` (a later config file's ``callbacks: {init_args: {backbone: x}}``) changes
    the previous list's last element, as the flag ``--trainer.callbacks.init_args.backbone x`` does.
    """

    def _check_type(self, value: Any, append: bool = False, cfg: Any = None, mode: str | None = None) -> Any:
        if not append and _is_whole_list(value, self._enable_path):
            cfg = None  # no previous value: the list is parsed as if it were the first one given
        elif not append and (update := _last_element_update(value)) and cfg and isinstance(cfg.get(self.dest), list):
            for key, leaf in update.items():  # one flag's worth at a time, onto the updated list
                updated = super()._check_type(NestedArg(key=key, val=leaf), cfg=cfg, mode=mode)
                cfg = cfg.clone()
                cfg[self.dest] = updated
            return updated
        return super()._check_type(value, append=append, cfg=cfg, mode=mode)


def _last_element_update(value: object) -> dict[str, Any] | None:
    """The arguments of ``value`` if it is ``{init_args: {...}}`` (new arguments for a list's last element)."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, dict) and set(value) == {"init_args"} and isinstance(value["init_args"], dict):
        return value["init_args"] or None
    return None


def _is_whole_list(value: object, enable_path: bool) -> bool:
    """Whether ``value`` (a parsed value, a flag's string or a path to a file holding one) is a complete list."""
    if isinstance(value, str):
        try:
            value, _ = parse_value_or_config(value, enable_path=enable_path)
        except (TypeError, ValueError, OSError, *get_loader_exceptions()):
            return False  # not loadable: the parse proper reports it
    return isinstance(value, list)


class ConfigParser(ArgumentParser):
    """jsonargparse parser in omegaconf mode whose list options are replaced whole and whose errors are raised.

    Args:
        args: positional arguments of :class:`jsonargparse.ArgumentParser`.
        parser_mode: config loader (``omegaconf`` allows ``${...}`` interpolation).
        exit_on_error: print and exit on a parse error (argparse's default) instead of raising
            :class:`jsonargparse.ArgumentError`; the goldennoise CLI raises and reports in one line.
        kwargs: further :class:`jsonargparse.ArgumentParser` arguments.
    """

    def __init__(self, *args: Any, parser_mode: str = "omegaconf", exit_on_error: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, parser_mode=parser_mode, exit_on_error=exit_on_error, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        """Add an argument; a typed option that takes lists gets :class:`ListReplacingTypeHint`'s meaning.

        jsonargparse copies this method's source into the parser's argument-group class, so it holds for arguments
        added by ``add_class_arguments`` too.
        """
        action = super().add_argument(*args, **kwargs)
        if type(action) is ActionTypeHint and ActionTypeHint.supports_append(action):
            action.__class__ = ListReplacingTypeHint  # jsonargparse constructs the action itself; same fields
        return action

    def parse_path(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        """Parse a config file; an error names the file (and, for a YAML syntax error, the line)."""
        try:
            return super().parse_path(path, *args, **kwargs)
        except ArgumentError as err:
            raise ArgumentError(None, f"{path}: {_config_error_message(err)}") from err


def _config_error_message(err: BaseException) -> str:
    """A YAML syntax error as 'not valid YAML: <problem> (line l, column c)', anything else as jsonargparse says it."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, yaml.MarkedYAMLError):
        cause = cause.__cause__ or cause.__context__
    if cause is None or cause.problem_mark is None:
        return str(err)
    mark = cause.problem_mark
    return f"not valid YAML: {cause.problem} (line {mark.line + 1}, column {mark.column + 1})"


def settings_parser(settings: type, prog: str, description: str) -> ConfigParser:
    """A command's parser over one settings dataclass: every field a flag, plus repeatable ``--config`` files."""
    parser = ConfigParser(prog=prog, description=description)
    parser.add_argument("--config", action="config", help="A YAML config (repeatable: later files win).")
    parser.add_class_arguments(settings)
    return parser


def parse_settings(parser: ConfigParser, settings: type, argv: list[str]) -> tuple[Any, dict[str, Any]]:
    """The settings object parsed from ``argv`` and its resolved configuration as plain data (for logging)."""
    namespace = parser.parse_args(argv)
    resolved = yaml.safe_load(parser.dump(namespace))
    values = {k: v for k, v in vars(parser.instantiate(namespace)).items() if k != "config"}
    return settings(**values), resolved
