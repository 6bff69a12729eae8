"""experiments/noiserefine_shapes/recovered.py: several evaluations pooled into one set of pairs.

Pooling two files must give the scores of their union (every pair once, grouped by prompt): a pair in both counts
once when its scores agree and is refused when they differ.
"""

import importlib.util
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "noiserefine_shapes" / "recovered.py"


def _script():
    spec = importlib.util.spec_from_file_location("recovered", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _samples(path: Path, prompts: list[str], offset: float) -> str:
    rows = [{"method": method, "prompt": prompt, "seed": seed, "cost/evaluations": 20.0,
             "score/shapes_alignment/alignment": offset + bonus + 0.01 * seed}
            for method, bonus in (("gaussian", 0.0), ("cfg3", 0.2), ("noiserefine", 0.1))
            for prompt in prompts for seed in (0, 1)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def test_pooled_files_are_the_union_of_their_pairs_grouped_by_prompt(tmp_path):
    recovered = _script()
    first = _samples(tmp_path / "a.parquet", ["a red circle", "a blue square"], 0.5)
    second = _samples(tmp_path / "b.parquet", ["a green cross"], 0.3)
    scores, groups, evaluations = recovered.per_method([first, second])
    assert {m: len(s) for m, s in scores.items()} == {"gaussian": 6, "cfg3": 6, "noiserefine": 6}
    assert groups.unique().numel() == 3 and torch.bincount(groups).tolist() == [2, 2, 2]
    torch.testing.assert_close(scores["cfg3"] - scores["gaussian"], torch.full((6,), 0.2))
    assert scores["gaussian"].sum().item() == pytest.approx(2 * (2 * 0.5 + 0.01) + 2 * 0.3 + 0.01)
    assert evaluations["cfg3"] == 20.0


def test_a_pair_in_two_pooled_files_counts_once_and_differing_scores_are_refused(tmp_path):
    recovered = _script()
    first = _samples(tmp_path / "a.parquet", ["a red circle"], 0.5)
    both = _samples(tmp_path / "b.parquet", ["a red circle", "a blue square"], 0.5)
    scores, groups, _ = recovered.per_method([first, both])
    assert len(scores["gaussian"]) == 4 and torch.bincount(groups).tolist() == [2, 2]
    other = _samples(tmp_path / "c.parquet", ["a red circle"], 0.4)
    with pytest.raises(SystemExit, match="two different scores"):
        recovered.per_method([first, other])


def test_a_method_that_only_some_pooled_files_ran_is_left_out_and_named(tmp_path, capsys):
    recovered = _script()
    first = _samples(tmp_path / "a.parquet", ["a red circle"], 0.5)
    second = tmp_path / "b.parquet"
    rows = pq.read_table(_samples(second, ["a blue square"], 0.3)).to_pylist()
    extra = [{**row, "method": "ensemble"} for row in rows if row["method"] == "noiserefine"]
    pq.write_table(pa.Table.from_pylist(rows + extra), second)
    scores, groups, _ = recovered.per_method([first, str(second)])
    assert sorted(scores) == ["cfg3", "gaussian", "noiserefine"] and len(groups) == 4
    assert "left out, not evaluated on every pair: ensemble" in capsys.readouterr().err
