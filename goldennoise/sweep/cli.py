"""``python -m goldennoise sweep --config configs/sweeps/<name>.yaml``: a base config run at every point of a sweep.

Every :class:`~goldennoise.sweep.config.SweepConfig` setting is a flag (``--help`` documents them,
``--print_config`` prints the resolved YAML). docs/sweeps.md explains the format, resuming and clusters.
"""

from __future__ import annotations

import sys
from urllib.parse import urlparse

from goldennoise.config_parser import ConfigParser, settings_parser
from goldennoise.sweep.config import SweepConfig

UI_SERVER = "http://127.0.0.1:5055"
"""Where ``make ui`` serves the embedded MLflow store."""


def build_parser() -> ConfigParser:
    """The ``sweep`` argument parser (omegaconf mode, like the other commands)."""
    return settings_parser(SweepConfig, "python -m goldennoise sweep",
                           "Run a fit, collect or evaluate config at every point of a grid or list of overrides.")


def parse_sweep(argv: list[str]) -> tuple[SweepConfig, dict]:
    """The sweep and its resolved configuration, overrides kept as plain data.

    Nothing is instantiated: an override holding a ``class_path`` (a method, a metric) is passed to the points'
    commands as the YAML it resolves to, not built (and loaded) by the sweep itself.
    """
    import yaml

    parser = build_parser()
    resolved = yaml.safe_load(parser.dump(parser.parse_args(argv)))
    resolved.pop("config", None)
    return SweepConfig(**resolved), resolved


def sweep_command(argv: list[str]) -> dict:
    """Entry point registered as the ``sweep`` subcommand; prints the summary table and returns every outcome.

    Raises:
        SystemExit: code 1 when a point failed (after every other point ran).
    """
    import optuna
    import yaml

    from goldennoise.mlflow_ui import runs_url
    from goldennoise.sweep.run import describe, run_sweep, summary_table
    from goldennoise.sweep.tracking import SweepTracker

    config, resolved = parse_sweep(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the progress bar and the table say what happened
    tracker = None
    if config.mlflow_tracking_uri:
        tracker = SweepTracker(config.mlflow_tracking_uri, config.mlflow_experiment, config.name, describe(config),
                               yaml.safe_dump(resolved, sort_keys=False))
    results = run_sweep(config, tracker)
    print(f"Sweep '{config.name}' ({config.command}, {len(results)} points; logs in {config.folder}/points):")
    print(summary_table(results, config.summary_metrics))
    if tracker is not None:
        uri = config.mlflow_tracking_uri
        remote = urlparse(uri).scheme in ("http", "https")
        print(f"MLflow: parent run {tracker.parent_id} in experiment '{config.mlflow_experiment}' ({uri}); its runs: "
              f"{runs_url(uri if remote else UI_SERVER, tracker.experiment_id)}{'' if remote else ' (after make ui)'}")
    failed = [o.name for o in results if o.status == "failed"]
    if failed:
        print(f"error: {len(failed)} of {len(results)} points failed: {', '.join(failed)} (logs: "
              f"{config.folder}/points/<point>/log.txt)", file=sys.stderr)
        raise SystemExit(1)
    return {"name": config.name, "points": [vars(o) for o in results],
            "parent_run": None if tracker is None else tracker.parent_id}
