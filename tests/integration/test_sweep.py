"""``goldennoise sweep`` end to end against a real MLflow server: 3 evaluate points on the embedded backbone, one
broken, the sweep SIGKILLed during its third point; the rerun runs that point alone; parent and child runs read back
over REST."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from goldennoise.cli import main

PROMPTS = ["a red circle left of a blue square", "a green triangle at the top left"]
BASE = {
    "name": "sweep-base", "backbone": "shapes", "prompts": PROMPTS, "seeds": "0", "steps": 1,
    "methods": [{"name": "gaussian", "method": {"class_path": "goldennoise.noise.Gaussian"}, "guidance_scale": 1.0},
                {"name": "cfg3", "method": {"class_path": "goldennoise.noise.Gaussian"}, "guidance_scale": 3.0}],
    "metrics": [{"class_path": "goldennoise.metrics.ShapesAlignment"}],
    "batch_size": 2, "accelerator": "cpu", "progress": False, "bootstrap_resamples": 100,
    "mlflow_tracking_uri": None,
}
POINTS = [{"name": "steps1", "overrides": {"steps": 1}},
          {"name": "broken", "overrides": {"steps": 0}},     # fails while parsing: "steps must be at least 1"
          {"name": "steps2", "overrides": {"steps": 2}}]
GRACE_S = 2


def write_sweep(folder, tracking_uri):
    (folder / "base.yaml").write_text(yaml.safe_dump(BASE))
    sweep = {"name": "tiny", "command": "evaluate", "base": ["base.yaml"], "points": POINTS,
             "storage": "sqlite:///sweeps.db", "heartbeat_interval": 1, "grace_period": GRACE_S,
             "mlflow_tracking_uri": tracking_uri, "progress": False}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    return folder / "sweep.yaml"


def kill_during_last_point(config, folder):
    """Start the sweep, SIGKILL it (and its point process) once its third point has started; returns that point."""
    process = subprocess.Popen([sys.executable, "-m", "goldennoise", "sweep", "--config", str(config)], cwd=folder,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    points = folder / "runs/sweeps/tiny/points"
    deadline = time.monotonic() + 300
    while process.poll() is None and len(list(points.glob("*/log.txt"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    logs = sorted(points.glob("*/log.txt"), key=lambda path: path.stat().st_mtime_ns)
    assert len(logs) == 3 and not logs[-1].with_name("result.json").exists(), "the sweep should die in its 3rd point"
    return logs[-1].parent.name


@pytest.mark.slow  # five process starts and a server: about a minute on 2 cores
def test_a_killed_sweep_reruns_only_its_unfinished_point_and_logs_parent_and_child_runs(tmp_path, mlflow_server,
                                                                                       capsys):
    config = write_sweep(tmp_path, mlflow_server.url)
    killed = kill_during_last_point(config, tmp_path)
    logs = {path.parent.name: path.stat().st_mtime_ns for path in tmp_path.glob("runs/sweeps/tiny/points/*/log.txt")}
    time.sleep(GRACE_S + 1)  # the killed point's heartbeat goes stale
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--config", str(config)])
    assert exit_info.value.code == 1  # a point failed; the others ran
    out = capsys.readouterr()
    assert "error: 1 of 3 points failed: broken" in out.err

    study = optuna.load_study(study_name="tiny", storage="sqlite:///sweeps.db")
    trials = {}
    for trial in study.get_trials():
        trials.setdefault(trial.user_attrs.get("name"), []).append(trial.state.name)
    final = {"steps1": "COMPLETE", "broken": "FAIL", "steps2": "COMPLETE"}
    assert trials == {name: ["FAIL", state] if name == killed else [state] for name, state in final.items()}
    rerun = {path.parent.name for path in tmp_path.glob("runs/sweeps/tiny/points/*/log.txt")
             if path.stat().st_mtime_ns != logs[path.parent.name]}
    assert rerun == {killed}  # the finished points did not run again

    table = {line.split()[0]: line.split() for line in out.out.splitlines() if line.startswith(("steps", "broken"))}
    assert table["steps1"][1] == table["steps2"][1] == "done" and table["broken"][1] == "failed"
    assert "Sampler steps must be at least 1" in " ".join(table["broken"])

    experiment = mlflow_server.experiment("sweeps")
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
    runs = {r["info"]["run_name"]: r for r in mlflow_server.runs(experiment["experiment_id"])}
    assert set(runs) == {"tiny", "steps1", "broken", "steps2"}
    parent = runs["tiny"]["info"]["run_id"]
    for name, point in zip(("steps1", "broken", "steps2"), POINTS, strict=True):
        run = runs[name]
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert tags["mlflow.parentRunId"] == parent and tags["goldennoise.sweep"] == "tiny"
        assert params == {"steps": str(point["overrides"]["steps"])}
        assert run["info"]["status"] == ("FAILED" if name == "broken" else "FINISHED")
        assert metrics["cost/seconds"] > 0
        if name == "broken":
            assert "Sampler steps must be at least 1" in tags["goldennoise.error"]
        else:  # the point's own result: one DDIM step per image per guidance pass (CFG doubles it)
            steps = point["overrides"]["steps"]
            assert metrics["gaussian/cost/sampling/evaluations"] == steps
            assert metrics["cfg3/cost/sampling/evaluations"] == 2 * steps
            assert -1 <= metrics["cfg3/shapes_alignment/alignment/delta"] <= 1
    parent_metrics = {m["key"]: m["value"] for m in runs["tiny"]["data"]["metrics"]}
    assert parent_metrics == {"points/done": 2, "points/failed": 1}
