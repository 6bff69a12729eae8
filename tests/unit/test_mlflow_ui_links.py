"""goldennoise's MLflow experiments are tagged as model development, found or created through one helper; the UI
links open MLflow 3's Machine-learning view (the runs) and the run comparison."""

import json
import urllib.parse
from types import SimpleNamespace

from goldennoise.mlflow_ui import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, compare_url, experiment_id, runs_url


class FakeClient:
    """The three MlflowClient calls the helper makes, over a dict of experiments."""

    def __init__(self, **experiments):
        self.experiments = {name: SimpleNamespace(experiment_id=str(k), tags=dict(tags))
                            for k, (name, tags) in enumerate(experiments.items())}

    def get_experiment_by_name(self, name):
        return self.experiments.get(name)

    def create_experiment(self, name, tags):
        self.experiments[name] = SimpleNamespace(experiment_id=str(len(self.experiments)), tags=dict(tags))
        return self.experiments[name].experiment_id

    def set_experiment_tag(self, experiment, key, value):
        next(e for e in self.experiments.values() if e.experiment_id == experiment).tags[key] = value


def test_new_and_existing_experiments_end_up_tagged_as_model_development():
    client = FakeClient(old={"team": "x"})
    assert experiment_id(client, "old") == "0"
    assert experiment_id(client, "new") == "1"
    for experiment in client.experiments.values():
        assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    assert client.experiments["old"].tags["team"] == "x"


def test_links_open_the_machine_learning_view():
    assert runs_url("http://h:1/", "7") == "http://h:1/#/experiments/7/runs?workflowType=machine_learning"
    url = compare_url("http://h:1", ["a", "b"], ["7"])
    route, query = url.split("#/")[1].split("?", 1)
    fields = urllib.parse.parse_qs(query)
    assert route == "compare-runs" and json.loads(fields["runs"][0]) == ["a", "b"]
    assert json.loads(fields["experiments"][0]) == ["7"] and fields["workflowType"] == ["machine_learning"]
