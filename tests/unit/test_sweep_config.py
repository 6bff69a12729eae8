"""Sweep settings: points from a list and a grid, each point's command line, bad settings named before anything runs,
point statuses from Optuna trials, the summary table; every configs/sweeps/*.yaml parses down to its points' configs."""

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from goldennoise.cli import GoldenNoiseCLI
from goldennoise.sweep.cli import parse_sweep
from goldennoise.sweep.config import PointSpec, SweepConfig, flag_value
from goldennoise.sweep.run import KILLED, outcomes, point_status, summary_table
from goldennoise.sweep.tracking import PointOutcome

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text("name: x\n")
    return str(path)


def test_points_are_the_list_then_every_grid_combination(base):
    config = SweepConfig(base=[base], points=[PointSpec("first", {"steps": 3})],
                         grid={"model.init_args.lr": [0.1, 0.01], "methods": [[{"name": "a b"}]]})
    points = config.all_points()
    assert [p.name for p in points] == ["first", "lr=0.1,methods=nameab", "lr=0.01,methods=nameab"]
    assert points[2].overrides == {"model.init_args.lr": 0.01, "methods": [{"name": "a b"}]}


def test_a_points_command_line_gives_its_folder_then_shared_then_own_overrides(base):
    config = SweepConfig(name="s", command="evaluate", base=[base], output_dir="out",
                         overrides={"steps": 2, "seeds": "0-1", "grid_dir": "{point_dir}/grid"},
                         points=[PointSpec("p", {"steps": 5, "prompts": ["a", "b"]}, configs=["extra.yaml"])])
    args = config.point_args(config.all_points()[0])
    assert args == ["evaluate", "--config", base, "--config", "extra.yaml", "--output_dir", "out/points/p",
                    "--steps", "5", "--seeds", "0-1", "--grid_dir", "out/points/p/grid", "--prompts", "[a, b]"]
    fit = SweepConfig(command="fit", base=[base], points=[PointSpec("p")], output_dir="o")
    assert fit.point_args(fit.all_points()[0])[3:] == ["--trainer.default_root_dir", "o/points/p"]


def test_flag_values_read_back_as_the_same_yaml():
    import yaml

    for value in (None, True, 0.05, 3, "official", [1, 2], {"a": [1, {"b": None}]}):
        assert yaml.safe_load(flag_value(value)) == value


@pytest.mark.parametrize(("settings", "message"), [
    ({"command": "train"}, "command must be one of"),
    ({"base": ["missing.yaml"]}, "Base config file(s) not found"),
    ({"points": [PointSpec("a"), PointSpec("a")]}, "repeated: ['a']"),
    ({"points": [PointSpec("a b")]}, "Point names may hold"),
    ({"points": [], "grid": {}}, "needs points or a grid"),
    ({"grid": {"steps": []}}, "grid.steps must be a non-empty list"),
    ({"heartbeat_interval": 10, "grace_period": 5}, "grace_period (5 s) must exceed"),
])
def test_bad_settings_are_named(base, settings, message):
    with pytest.raises(ValueError) as error:
        SweepConfig(**{"base": [base], "points": [PointSpec("a")], **settings})
    assert message in str(error.value)


def _trial(state, error=None):
    attrs = {"name": "p", **({"error": error} if error else {})}
    return create_trial(state=state, params={"point": 0}, distributions={"point": CategoricalDistribution([0])},
                        user_attrs=attrs, value=1.0 if state == TrialState.COMPLETE else None)


@pytest.mark.parametrize(("states", "status"), [
    ([], "pending"),
    ([(TrialState.COMPLETE, None)], "done"),
    ([(TrialState.FAIL, "error: bad"), ], "failed"),
    ([(TrialState.FAIL, None), (TrialState.WAITING, None)], "pending"),    # killed, queued again
    ([(TrialState.FAIL, None), (TrialState.RUNNING, None)], "running"),
    ([(TrialState.FAIL, None), (TrialState.FAIL, None)], "failed"),        # killed, no retry left
    ([(TrialState.FAIL, None), (TrialState.COMPLETE, None)], "done"),
])
def test_point_status(states, status):
    assert point_status([_trial(state, error) for state, error in states]) == status


def test_outcomes_say_why_a_point_failed():
    study = optuna.create_study()
    study.add_trial(_trial(TrialState.FAIL))
    assert outcomes(study, [PointSpec("p")]) == [PointOutcome("p", "failed", None, None, KILLED)]


def test_summary_table_puts_scores_before_costs():
    results = [PointOutcome("a", "done", 1.25, {"cost/seconds": 2.0, "m/wins": 0.1, "m/mean": 0.5}),
               PointOutcome("b", "failed", 0.5, None, "error: bad")]
    lines = summary_table(results).splitlines()
    assert lines[0].split() == ["point", "status", "seconds", "m/mean", "m/wins", "cost/seconds", "error"]
    assert lines[2].split() == ["a", "done", "1.2", "0.5", "0.1", "2"]
    assert lines[3].split() == ["b", "failed", "0.5", "—", "—", "—", "error:", "bad"]


def test_summary_table_shows_means_and_deltas_with_their_cis():
    metrics = {"npnet/s/mean": 0.61, "npnet/s/ci95_low": 0.55, "npnet/s/ci95_high": 0.66, "npnet/s/delta": 0.04,
               "npnet/s/delta_ci95_low": 0.01, "npnet/s/delta_ci95_high": 0.07, "npnet/cost/evaluations": 10.0}
    results = [PointOutcome("steps=10", "done", 3.0, metrics), PointOutcome("steps=20", "done", 5.0,
                                                                              {"npnet/s/mean": 0.7})]
    lines = summary_table(results).splitlines()
    assert lines[0].split() == ["point", "status", "seconds", "npnet/s/delta", "npnet/s/mean",
                                "npnet/cost/evaluations", "error"]  # CI bounds fold into their value's cell
    assert "0.04 [0.01, 0.07]" in lines[2] and "0.61 [0.55, 0.66]" in lines[2]
    assert lines[3].split() == ["steps=20", "done", "5.0", "—", "0.7", "—"]  # no CI reported: the value alone


SWEEPS = {"npnet_shapes_ablations.yaml": 6, "npd_shapes_inversion.yaml": 6, "noiserefine_shapes.yaml": 6,
          "stability_shapes.yaml": 7}


class ParsedCLI(GoldenNoiseCLI):
    """The trainer CLI's parsed and type-checked config, nothing instantiated (no backbone is loaded)."""

    def instantiate_classes(self) -> None:
        pass


def _check_fit_point(config: SweepConfig, point: PointSpec, args: list[str]) -> None:
    if config.name == "noiserefine-shapes":  # parsed only: each point's module would load the backbone
        cli = ParsedCLI(args=[*args, "--trainer.logger=false"], run=False)
        model, data = cli.config["model"]["init_args"], cli.config["data"]["init_args"]
        expected = {"rank": 32, "rollout_steps": 20, "min_score": None}
        expected.update({k.split(".")[-1]: v for k, v in point.overrides.items() if not k.endswith("filter_metric")})
        assert {key: {**model, **data}[key] for key in expected} == expected
        assert data["filter_metric"] == point.overrides.get("data.init_args.filter_metric")
        assert cli.config["trainer"]["default_root_dir"].endswith(f"points/{point.name}")
        assert all(c["init_args"].get("dirpath") is None for c in cli.config["trainer"]["callbacks"]), (
            "checkpoints must land in each point's own folder")
        return
    cli = GoldenNoiseCLI(args=[*args, "--trainer.logger=false"], run=False)
    net = cli.model.net.config
    expected = {"svd_branch": True, "residual_branch": True, "svd_attention": True}
    expected.update({k.split(".")[-1]: v for k, v in point.overrides.items() if ".net." in k})
    assert {k: getattr(net, k) for k in expected} == expected
    assert cli.datamodule.margin == point.overrides.get("data.init_args.margin")
    assert cli.trainer.default_root_dir.endswith(f"points/{point.name}")


def _check_evaluate_point(config: SweepConfig, point: PointSpec, args: list[str]) -> None:
    from goldennoise.evaluation.cli import parse_config
    from goldennoise.noise import Gaussian, StabilityOptimization, StabilitySelection

    evaluation, _ = parse_config(args)
    assert evaluation.folder == f"runs/sweeps/{config.name}/points/{point.name}" and evaluation.budget is None
    assert len(evaluation.items()) == 64 and [m.name for m in evaluation.methods] == ["gaussian", "stability"]
    assert isinstance(evaluation.methods[0].method, Gaussian)
    method = evaluation.methods[1].method
    kind, value = point.name.split("=")
    if kind == "k":
        assert isinstance(method, StabilitySelection) and method.k == int(value) and method.pick == "most"
    else:
        assert isinstance(method, StabilityOptimization) and method.gradient_mode == value
        assert (method.steps, method.step_size, method.lr_rel) == (10, "relative", 0.02)


def test_every_shipped_sweep_is_checked():
    assert sorted(SWEEPS) == sorted(p.name for p in (ROOT / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_shipped_sweeps_parse_down_to_every_points_config(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    config, _ = parse_sweep(["--config", f"configs/sweeps/{name}"])
    points = config.all_points()
    assert len(points) == SWEEPS[name]
    for point in points:
        args = config.point_args(point)
        if config.command == "collect":
            from goldennoise.collection.cli import parse_config

            collect = parse_config(args[1:])
            assert (collect.convention, collect.num_steps) == (point.overrides["convention"],
                                                               point.overrides["num_steps"])
            assert collect.output_dir == f"runs/sweeps/{config.name}/points/{point.name}"
        elif config.command == "evaluate":
            _check_evaluate_point(config, point, args[1:])
        else:
            _check_fit_point(config, point, args[1:])
