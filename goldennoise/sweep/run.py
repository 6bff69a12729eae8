"""Run a sweep's points as Optuna trials: each point a ``python -m goldennoise`` process, resumable, shareable.

The sweep is an Optuna study (named after the sweep) in an RDB storage, with a
:class:`~optuna.samplers.GridSampler` over the point indices: every worker that joins the study, here or on another
machine, asks it for a point nobody has run yet. A point's trial

- runs its command in its own process (a broken point fails alone; its error is kept as a trial attribute);
- beats a heartbeat into the storage while it runs: a point whose worker was killed stops beating and, once
  ``grace_period`` has passed, the next worker to look marks it failed and
  :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` queues it again (up to ``max_retries`` times);
- is skipped on a rerun once it finished (done, or failed with an error).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from goldennoise.sweep.config import PointSpec, SweepConfig
from goldennoise.sweep.result import RESULT_FILE_ENV, read_result
from goldennoise.sweep.tracking import PointOutcome, SweepTracker

POINT_PARAM = "point"
ERROR_ATTR = "error"
KILLED = "its process was killed more often than max_retries allows"


class PointFailed(Exception):
    """A point's process ended with an error (kept on its trial; the sweep goes on)."""


def open_study(config: SweepConfig, points: list[PointSpec]) -> optuna.Study:
    """The sweep's study in ``config.storage`` (created on first use); refuses a study made for other points."""
    storage = optuna.storages.RDBStorage(
        config.storage, heartbeat_interval=config.heartbeat_interval, grace_period=config.grace_period,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(config.max_retries))
    sampler = optuna.samplers.GridSampler({POINT_PARAM: list(range(len(points)))}, seed=0)
    study = optuna.create_study(study_name=config.name, storage=storage, sampler=sampler, load_if_exists=True)
    signature = [[p.name, config.point_args(p)] for p in points]
    stored = study.user_attrs.get("points")
    if stored is None:
        study.set_user_attr("points", signature)
    elif stored != signature:
        raise ValueError(f"The sweep {config.name!r} in {config.storage} was started with other points or settings; "
                         f"give this sweep another name, or delete that study (optuna delete-study --study-name "
                         f"{config.name} --storage {config.storage}).")
    return study


def _point_trials(study: optuna.Study, index: int) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.params.get(POINT_PARAM) == index
            or t.system_attrs.get("fixed_params", {}).get(POINT_PARAM) == index]


def point_status(trials: list[FrozenTrial]) -> str:
    """A point's status from its trials.

    ``done``; ``failed`` (an error, or killed more often than ``max_retries``); ``running`` (by a live worker);
    ``pending`` (never started, or killed and queued again).
    """
    states = [t.state for t in trials]
    if TrialState.COMPLETE in states:
        return "done"
    if any(t.state == TrialState.FAIL and ERROR_ATTR in t.user_attrs for t in trials):
        return "failed"
    if TrialState.RUNNING in states:
        return "running"
    if TrialState.WAITING in states or not states:
        return "pending"
    return "failed" if TrialState.FAIL in states else "pending"  # killed, no retry left; or only duplicates


def _settles(trial: FrozenTrial) -> bool:
    """Whether ``trial`` settles its point: completed, failed with an error, or running (a killed one does not)."""
    failed = trial.state == TrialState.FAIL and ERROR_ATTR in trial.user_attrs
    return failed or trial.state in (TrialState.COMPLETE, TrialState.RUNNING)


def outcomes(study: optuna.Study, points: list[PointSpec]) -> list[PointOutcome]:
    """Every point's outcome, from its trials (the completed one, else the latest)."""
    result = []
    for index, point in enumerate(points):
        trials = _point_trials(study, index)
        status = point_status(trials)
        chosen = next((t for t in trials if t.state == TrialState.COMPLETE), trials[-1] if trials else None)
        attrs = chosen.user_attrs if chosen is not None else {}
        error = attrs.get(ERROR_ATTR) or (KILLED if status == "failed" else None)
        result.append(PointOutcome(point.name, status, attrs.get("seconds"), attrs.get("metrics"), error))
    return result


def error_line(log: Path) -> str:
    """The error a failed point printed: its ``error:`` line, else the last line of its log."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1][:1000]


class PointRunner:
    """The objective of the sweep's trials: run the trial's point and report its result.

    Args:
        config: the sweep.
        points: its points.
        tracker: the MLflow runs (``None``: no MLflow).
    """

    def __init__(self, config: SweepConfig, points: list[PointSpec], tracker: SweepTracker | None) -> None:
        self.config, self.points, self.tracker = config, points, tracker

    def __call__(self, trial: optuna.Trial) -> float:
        index = trial.suggest_categorical(POINT_PARAM, list(range(len(self.points))))
        point = self.points[index]
        trial.set_user_attr("name", point.name)
        others = [t for t in _point_trials(trial.study, index) if t.number != trial.number]
        if any(_settles(t) for t in others):  # the grid sampler, once exhausted, hands out points others run
            raise optuna.TrialPruned(f"{point.name} ran or runs elsewhere")
        folder = self.config.point_dir(point)
        folder.mkdir(parents=True, exist_ok=True)
        result_file, log = folder / "result.json", folder / "log.txt"
        result_file.unlink(missing_ok=True)
        run_id = None if self.tracker is None else self.tracker.start_point(
            point.name, {**self.config.overrides, **point.overrides})
        seconds, code = self._run_process(point, result_file, log)
        result = read_result(result_file)
        trial.set_user_attr("seconds", seconds)
        error = None if code == 0 else error_line(log)
        if error is None and self.config.objective is not None and self.config.objective not in result["metrics"]:
            error = f"the point reported no metric {self.config.objective!r} (objective)"
        if self.tracker is not None:
            self.tracker.finish_point(run_id, result, seconds, error, log)
        if error is not None:
            trial.set_user_attr(ERROR_ATTR, error)
            raise PointFailed(f"point {point.name}: {error}")
        trial.set_user_attr("metrics", result["metrics"])
        return float(result["metrics"][self.config.objective] if self.config.objective else seconds)

    def _run_process(self, point: PointSpec, result_file: Path, log: Path) -> tuple[float, int]:
        """Run the point's command, its output into ``log``; returns (seconds, exit code)."""
        command = [sys.executable, "-m", "goldennoise", *self.config.point_args(point)]
        env = {**os.environ, RESULT_FILE_ENV: str(result_file)}
        start = time.monotonic()
        with log.open("w") as out:
            out.write(" ".join(command) + "\n")
            out.flush()
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode
        return time.monotonic() - start, code


def _progress_callback(bar: tqdm, points: list[PointSpec]) -> Callable[[optuna.Study, FrozenTrial], None]:
    def update(study: optuna.Study, trial: FrozenTrial) -> None:
        finished = sum(o.status in ("done", "failed") for o in outcomes(study, points))
        bar.update(finished - bar.n)
        bar.set_postfix_str(f"last: {trial.user_attrs.get('name', '?')}")
    return update


def run_sweep(config: SweepConfig, tracker: SweepTracker | None = None) -> list[PointOutcome]:
    """Run every point not yet finished (on ``config.workers`` at once); returns every point's outcome."""
    with warnings.catch_warnings():  # heartbeats and retries are "experimental" in Optuna (since 2.8)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _run_points(config, tracker)


def _run_points(config: SweepConfig, tracker: SweepTracker | None) -> list[PointOutcome]:
    points = config.all_points()
    study = open_study(config, points)
    optuna.storages.fail_stale_trials(study)  # points whose worker was killed are queued again
    now = outcomes(study, points)
    with tqdm(total=len(points), initial=sum(o.status in ("done", "failed") for o in now), unit="point",
              desc=f"sweep {config.name}", disable=not config.progress) as bar:
        while any(o.status == "pending" for o in now):
            study.optimize(PointRunner(config, points, tracker), n_jobs=config.workers, catch=(PointFailed,),
                           callbacks=[_progress_callback(bar, points)])
            before, now = now, outcomes(study, points)
            if now == before:  # nothing this worker can run (the rest runs elsewhere)
                break
    final = outcomes(study, points)
    if tracker is not None:
        tracker.finish_sweep(final)
    return final


def summary_table(results: list[PointOutcome], metrics: list[str] | None = None) -> str:
    """A plain-text table: point, status, seconds, the chosen metrics (default the first 4 reported), error.

    A mean or a paired Δ whose 95 % CI was reported too (``<score>/mean`` with ``<score>/ci95_low|high``,
    ``<score>/delta`` with ``<score>/delta_ci95_low|high``: what an evaluation reports) reads ``value [low, high]``.
    """
    reported = next((o.metrics for o in results if o.metrics), {}) or {}
    bounds = {bound for name in reported for bound in _ci_keys(name)}
    columns = metrics if metrics is not None else sorted(set(reported) - bounds, key=_column_rank)[:4]
    header = ["point", "status", "seconds", *columns, "error"]
    rows = [header]
    for o in results:
        values = [_cell(o.metrics or {}, c) for c in columns]
        seconds = "—" if o.seconds is None else f"{o.seconds:.1f}"
        rows.append([o.name, o.status, seconds, *values, o.error or ""])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([text[0], "  ".join("-" * w for w in widths), *text[1:]])


def _ci_keys(name: str) -> tuple[str, ...]:
    """The keys of the 95 % CI bounds of metric ``name`` (a mean or a paired Δ), none for other metrics."""
    if name.endswith("/mean"):
        stem = name.removesuffix("/mean")
        return f"{stem}/ci95_low", f"{stem}/ci95_high"
    if name.endswith("/delta"):
        return f"{name}_ci95_low", f"{name}_ci95_high"
    return ()


def _cell(metrics: dict[str, float], column: str) -> str:
    """A metric's table cell: ``—`` when missing, with its CI when both bounds were reported."""
    if column not in metrics:
        return "—"
    bounds = _ci_keys(column)
    if bounds and all(b in metrics for b in bounds):
        low, high = (metrics[b] for b in bounds)
        return f"{metrics[column]:.4g} [{low:.4g}, {high:.4g}]"
    return f"{metrics[column]:.4g}"


def _column_rank(name: str) -> tuple[int, str]:
    """Default table columns: scores and Δs first, then CIs and shares, costs last."""
    secondary = ("ci95", "wins", "ties", "losses")
    return (2 if name.startswith("cost/") or "/cost/" in name else int(any(s in name for s in secondary)), name)


def describe(config: SweepConfig) -> dict[str, Any]:
    """The parent run's params: command, base configs, shared overrides, number of points."""
    return {"command": config.command, "base": config.base, "overrides": config.overrides,
            "points": len(config.all_points()), "storage": config.storage}
