"""Settings of a sweep: a base command and config, and the points (overrides) to run it at.

Parsed from YAML by ``python -m goldennoise sweep`` (every field is a flag). A point is a set of overrides, each a
dotted key of the base command's config (``model.init_args.lr``, ``methods``, ``margin``) and its value, given to the
point's process as ``--key value`` after the base configs, so it wins over them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

COMMANDS = ("fit", "validate", "test", "collect", "collect-teacher", "evaluate")
"""The commands a sweep can run at its points."""

TRAINER_COMMANDS = ("fit", "validate", "test")

POINT_NAME = re.compile(r"^[A-Za-z0-9_.=,+\-]+$")

POINT_DIR = "{point_dir}"
"""Written in an override's value, replaced by the point's own folder (``<output_dir>/points/<point name>``)."""


@dataclass
class PointSpec:
    """One point of a sweep.

    Args:
        name: the point's name (its folder, Optuna user attribute and MLflow child run name); letters, digits and
            ``_ . = , + -``.
        overrides: dotted config keys and their values at this point.
        configs: further config files given after the base configs (before the overrides).
    """

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    configs: list[str] = field(default_factory=list)


@dataclass
class SweepConfig:
    """A sweep: ``python -m goldennoise <command> --config <base>... <overrides>`` at every point.

    Args:
        name: the sweep's name: its Optuna study, its MLflow parent run and the ``goldennoise.sweep`` tag of its runs.
        command: the command every point runs (``fit``, ``validate``, ``test``, ``collect``, ``collect-teacher`` or
            ``evaluate``).
        base: the config files of every point, composed left to right.
        overrides: overrides of every point (a point's own overrides win over these).
        points: the points, each with a name and its overrides (run first, in order).
        grid: ``{key: [values]}``: a point per combination of the values (after ``points``); its name is
            ``key=value,...`` over the last part of each key.
        output_dir: folder of the points' logs and results; default ``runs/sweeps/<name>``. Each point also gets its
            own output folder ``<output_dir>/points/<point>`` (the command's ``output_dir``, or the trainer's
            ``default_root_dir``), so points never share files; ``{point_dir}`` in an override value is that folder.
        workers: points run at the same time on this machine (each in its own process). On more machines, start
            the same sweep on each with a shared ``storage``.
        storage: the Optuna storage URL every worker shares (``sqlite:///sweeps.db``: a file next to
            ``mlruns.db``; on a cluster a PostgreSQL or MySQL URL).
        heartbeat_interval: seconds between a running point's heartbeats in the storage.
        grace_period: seconds without a heartbeat after which a running point counts as killed and runs again.
        max_retries: times a killed point reruns (a point that fails with an error is not rerun).
        objective: the metric reported to Optuna as a point's value; default the point's wall time in seconds.
        summary_metrics: metrics shown in the summary table (all are logged); default the first 4 of the first point.
        mlflow_tracking_uri: MLflow tracking URI of the parent and child runs; ``null`` logs nothing.
        mlflow_experiment: MLflow experiment of the parent and child runs.
        progress: show a progress bar over the points.
    """

    name: str = "sweep"
    command: str = "evaluate"
    base: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    points: list[PointSpec] = field(default_factory=list)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    output_dir: str | None = None
    workers: int = 1
    storage: str = "sqlite:///sweeps.db"
    heartbeat_interval: int = 10
    grace_period: int = 30
    max_retries: int = 3
    objective: str | None = None
    summary_metrics: list[str] | None = None
    mlflow_tracking_uri: str | None = "sqlite:///mlruns.db"
    mlflow_experiment: str = "sweeps"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise ValueError(f"command must be one of {list(COMMANDS)}, got {self.command!r}.")
        if not self.base:
            raise ValueError("A sweep needs a base config (base: [path/to/config.yaml]).")
        missing = [path for path in self.base if not Path(path).is_file()]
        if missing:
            raise ValueError(f"Base config file(s) not found: {missing}.")
        self._check_scheduling()
        names = [point.name for point in self.all_points()]
        if not names:
            raise ValueError("A sweep needs points or a grid.")
        bad = [n for n in names if not POINT_NAME.match(n)]
        if bad:
            raise ValueError(f"Point names may hold letters, digits and '_ . = , + -' only: {bad}.")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"Point names must be unique; repeated: {duplicated}.")

    def _check_scheduling(self) -> None:
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid.{key} must be a non-empty list of values, got {values!r}.")
        if self.workers < 1 or self.heartbeat_interval < 1 or self.max_retries < 0:
            raise ValueError("workers and heartbeat_interval must be at least 1, max_retries at least 0.")
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"grace_period ({self.grace_period} s) must exceed heartbeat_interval "
                             f"({self.heartbeat_interval} s).")

    @property
    def folder(self) -> Path:
        """The sweep's output folder."""
        return Path(self.output_dir or f"runs/sweeps/{self.name}")

    def all_points(self) -> list[PointSpec]:
        """The listed points, then one per grid combination."""
        keys = list(self.grid)
        combos = itertools.product(*(self.grid[k] for k in keys))
        grid = [PointSpec(",".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in zip(keys, values, strict=True)),
                          dict(zip(keys, values, strict=True))) for values in combos] if keys else []
        return [PointSpec(**p) if isinstance(p, dict) else p for p in self.points] + grid

    def point_dir(self, point: PointSpec) -> Path:
        """The point's own folder."""
        return self.folder / "points" / point.name

    def point_args(self, point: PointSpec) -> list[str]:
        """The point's command line after ``python -m goldennoise``: command, configs, then overrides as flags."""
        args = [self.command]
        for path in [*self.base, *point.configs]:
            args += ["--config", path]
        folder = str(self.point_dir(point))
        own_dir = "trainer.default_root_dir" if self.command in TRAINER_COMMANDS else "output_dir"
        for key, value in {own_dir: folder, **self.overrides, **point.overrides}.items():
            args += [f"--{key}", flag_value(value).replace(POINT_DIR, folder)]
        return args


def flag_value(value: Any) -> str:
    """A value as a command-line flag's text (YAML flow style; jsonargparse parses it back)."""
    if isinstance(value, str):
        return value
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _short(value: Any) -> str:
    """A value in a grid point's name."""
    return re.sub(r"[^A-Za-z0-9_.+\-]", "", flag_value(value).replace(" ", ""))[:40] or "x"
