"""Collection settings: the (prompt, seed) index, the config hash, scorers (shapes alignment on rendered scenes)."""

import importlib
from pathlib import Path

import pytest
import torch
import yaml

from goldennoise.collection import CollectConfig, ScorerSpec, build_items, config_hash
from goldennoise.collection.scoring import build_scorers
from goldennoise.engine.run import rank_shards
from goldennoise.shapes import render_scenes, sample_scenes, to_prompt


def test_items_are_prompt_major_products_or_source_seeds():
    config = CollectConfig(prompts=["a", "b"], seeds="0-2")
    assert build_items(config) == [(0, "a", 0), (0, "a", 1), (0, "a", 2), (1, "b", 0), (1, "b", 1), (1, "b", 2)]
    shapes = build_items(CollectConfig(prompt_source="shapes:train:3", seeds=None))
    assert [seed for _, _, seed in shapes] == [0, 1, 2] and len({p for _, p, _ in shapes}) >= 1
    with pytest.raises(ValueError, match="per-prompt seeds"):
        build_items(CollectConfig(prompts=["a"], seeds=None))


def test_config_hash_tracks_content_not_execution_settings():
    base = CollectConfig(prompts=["a", "b"], seeds="0-1")
    items = build_items(base)
    same = CollectConfig(prompts=["a", "b"], seeds="0-1", devices=2, output_dir="elsewhere", progress=False)
    assert config_hash(same, build_items(same)) == config_hash(base, items)
    for change in ({"convention": "textbook"}, {"num_steps": 11}, {"inversion_guidance": 0.0}, {"seeds": "0-2"}):
        other = CollectConfig(**{"prompts": ["a", "b"], "seeds": "0-1", **change})
        assert config_hash(other, build_items(other)) != config_hash(base, items), change


def test_ranks_split_the_shards_without_overlap():
    ranks = [rank_shards(20, 3, r, 3) for r in range(3)]
    assert sorted(k for r in ranks for k in r) == list(range(7))


def test_shapes_alignment_scorer_reads_rendered_scenes():
    scenes = sample_scenes(range(4), "train")
    images, prompts = render_scenes(scenes), [to_prompt(s.spec) for s in scenes]
    scores = build_scorers([ScorerSpec("shapes_alignment")])["shapes_alignment"](images, prompts)
    assert scores.shape == (4,) and torch.all(scores > 0.9)
    blank = build_scorers([ScorerSpec("shapes_alignment")])["shapes_alignment"](torch.ones_like(images), prompts)
    assert torch.all(blank < scores)


def test_unknown_metric_and_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="Unknown metric"):
        ScorerSpec("fid")
    with pytest.raises(ValueError, match="unique"):
        build_scorers([ScorerSpec("shapes_alignment"), ScorerSpec("shapes_alignment")])


def test_collect_never_overwrites_shards_it_did_not_write(tmp_path):
    from goldennoise.data.npd_store import NPD_FORMAT, shard_path, write_shard
    from goldennoise.data.shards import prepare_folder

    tensors = {"noise": torch.zeros(1, 4, 2, 2), "target": torch.zeros(1, 4, 2, 2), "seed": torch.zeros(1).long(),
               "index": torch.zeros(1).long()}
    write_shard(shard_path(tmp_path / "npd", 0), tensors, [{"index": 0}], "imported", "official-x")
    with pytest.raises(ValueError, match="shards of no goldennoise run"):
        prepare_folder(NPD_FORMAT, tmp_path / "npd", "abc", 1, {"shard_size": 1})


def test_changed_settings_names_each_difference_shortly():
    from goldennoise.data.shards import changed_settings

    stored = {"batch_size": 16, "seeds": "0-3", "prompts": ["a" * 60], "devices": 1}
    current = {"batch_size": 8, "seeds": "0-3", "prompts": ["b" * 60], "devices": 1, "pag_scale": 0.5}
    assert changed_settings(stored, current) == (f'batch_size (16 → 8), pag_scale (null → 0.5), prompts (["{"a" * 37}… '
                                                 f'→ ["{"b" * 37}…)')
    assert changed_settings(stored, stored) == ""
    evaluation = {"settings": {"steps": 20, "backbone": "shapes"}}
    assert changed_settings(evaluation, {"settings": {"steps": 10, "backbone": "shapes"}}) == "settings.steps (20 → 10)"
    assert changed_settings(stored, current, limit=1) == "batch_size (16 → 8), 2 more"


@pytest.mark.parametrize(("change", "message"), [
    ({"prompts": ["a cat", "   "]}, r"prompts\[1\] is '   '; every prompt needs some text"),
    ({"prompts": [""]}, r"prompts\[0\] is ''"),
    ({"num_steps": 0}, "num_steps must be at least 2, got 0"),
    ({"num_steps": 1}, "num_steps must be at least 2, got 1"),
    ({"seeds": "1.7"}, "Cannot parse seed range '1.7'"),
    ({"seeds": "99999999999999999999"}, "seed must be between 0 and 18446744073709551615"),
    ({"prompt_source": "shapes:train:abc"}, "the count 'abc' is not an integer"),
    ({"batch_size": -1}, "batch_size must be at least 1, got -1"),
    ({"shard_size": 0}, "shard_size must be at least 1"),
    ({"devices": 0}, "devices must be at least 1"),
    ({"max_prompts": 0}, "max_prompts must be at least 1"),
    ({"repeats": 0}, "repeats must be at least 1"),
    ({"image_size": -64}, "image_size must be at least 1"),
    ({"denoise_guidance": float("nan")}, "denoise_guidance must be finite"),
    ({"convention": "reverse"}, "convention must be 'official' or 'textbook'"),
    ({"noise_dtype": "float8"}, "noise_dtype: Unknown dtype 'float8'"),
    ({"filter_metric": "pickscore"}, "filter_metric 'pickscore' is none of the scorers' columns"),
])
def test_bad_settings_fail_at_construction(change, message):
    with pytest.raises(ValueError, match=message):
        CollectConfig(**{"prompts": ["a cat"], **change})


def test_collect_command_fails_before_loading_a_model_or_writing(tmp_path, monkeypatch):
    from goldennoise.collection import cli

    def no_loading(*args, **kwargs):
        raise AssertionError("the backbone was loaded")

    monkeypatch.setattr(importlib.import_module("goldennoise.collection.collect"), "load_backbone", no_loading)
    out = tmp_path / "npd"
    for flags in (["--num_steps", "0"], ["--prompts", '["a cat", " "]'], ["--seeds", "1.7"]):
        with pytest.raises(ValueError, match="num_steps|prompts|seed"):
            cli.collect_command(["--output_dir", str(out), "--backbone", "tiny-sd", "--prompts", '["a cat"]',
                                 *flags])
    assert not out.exists()
ROOT_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY_SDXL = str(ROOT_CONFIGS / "npd" / "tiny_sdxl.yaml")


def test_a_later_config_or_flag_replaces_the_scorers_list(tmp_path, capsys):
    """tiny_sdxl.yaml's scorer is ``{metric: hpsv2, model: tiny}``; a scorer list given later must not inherit it."""
    from goldennoise.collection.cli import parse_config

    flag = parse_config(["--config", TINY_SDXL, "--scorers", '[{"metric": "hpsv2"}]'])
    assert flag.scorers == [ScorerSpec("hpsv2")]
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("scorers:\n  - metric: pickscore\nprompts: [a, b, c, d]\n")
    config = parse_config(["--config", TINY_SDXL, "--config", str(overlay)])
    assert config.scorers == [ScorerSpec("pickscore")] and config.prompts == ["a", "b", "c", "d"]
    appended = parse_config(["--config", TINY_SDXL, "--scorers+", '{"metric": "pickscore"}'])
    assert appended.scorers == [ScorerSpec("hpsv2", model="tiny"), ScorerSpec("pickscore")]  # += still appends
    with pytest.raises(SystemExit):
        parse_config(["--config", TINY_SDXL, "--config", str(overlay), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["scorers"] == [{"metric": "pickscore", "name": None, "model": None, "version": "v2.1"}]


@pytest.mark.parametrize("module", ["goldennoise.collection.cli", "goldennoise.collection.teacher_cli",
                                    "goldennoise.evaluation.cli"])
def test_a_yaml_integer_is_a_one_seed_list(tmp_path, module):
    overlay = tmp_path / "seeds.yaml"
    overlay.write_text("seeds: 1000000\n")
    base = ROOT_CONFIGS / {"goldennoise.collection.cli": "npd/tiny_sdxl.yaml",
                           "goldennoise.collection.teacher_cli": "teacher/shapes.yaml",
                           "goldennoise.evaluation.cli": "eval/shapes.yaml"}[module]
    parsed = importlib.import_module(module).parse_config(["--config", str(base), "--config", str(overlay)])
    config = parsed[0] if isinstance(parsed, tuple) else parsed
    assert config.seeds == "1000000"


def test_a_seed_spec_is_text_whatever_it_was_given_as():
    from goldennoise.sampling import seed_spec

    assert (seed_spec("0-3"), seed_spec(7), seed_spec([0, 5])) == ("0-3", "7", "0,5")
    with pytest.raises(ValueError, match="Cannot parse seed range"):
        seed_spec("1.7")
