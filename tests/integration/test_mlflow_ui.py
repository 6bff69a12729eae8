"""MLflow's run-comparison page, rendered by headless Chromium, shows goldennoise's runs (skipped without Chromium:
Debian/Ubuntu ``apt-get install chromium``)."""

import shutil
import subprocess

import pytest

from goldennoise.mlflow_ui import compare_url, experiment_id, runs_url

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
RUNS = {"gaussian-baseline": 0.41, "npnet-golden": 0.57}


def render(url: str, tmp_path) -> str:
    """The page's DOM after its scripts ran (a virtual-time budget lets the single-page app fetch and render)."""
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", "--dump-dom", url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.slow  # a server and a browser: about half a minute
@pytest.mark.skipif(BROWSER is None, reason="no chromium installed (apt-get install chromium)")
def test_the_comparison_page_shows_the_runs_and_their_metric(mlflow_server, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    experiment = experiment_id(client, "ui-check")
    runs = []
    for name, score in RUNS.items():
        run = client.create_run(experiment, run_name=name)
        client.log_metric(run.info.run_id, "shapes_alignment/mean", score)
        client.set_terminated(run.info.run_id)
        runs.append(run.info.run_id)
    page = render(compare_url(mlflow_server.url, runs, [experiment]), tmp_path)
    assert all(name in page for name in RUNS), "the comparison page should name every run"
    assert "shapes_alignment/mean" in page and "0.57" in page
    listing = render(runs_url(mlflow_server.url, experiment), tmp_path)
    assert all(name in listing for name in RUNS), "the experiment should open on its runs table"
    genai = render(f"{mlflow_server.url}/#/experiments/{experiment}", tmp_path)  # MLflow 3's default view
    assert not any(name in genai for name in RUNS), "without the link's query the page opens on traces"
