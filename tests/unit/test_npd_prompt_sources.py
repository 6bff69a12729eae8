"""Prompt sources: every file format, seeds from the source, malformed lines named, named sets and hub ids offline."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from goldennoise.data.prompt_sources import PromptFileError, load_prompts, read_prompt_source_file


def test_txt_csv_jsonl_parquet_give_the_same_prompts(tmp_path):
    prompts = ["a cat, sitting", "a dog", "an owl"]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n\n")
    (tmp_path / "p.csv").write_text('id,caption\n0,"a cat, sitting"\n1,a dog\n2,an owl\n')
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps({"prompt": p, "seed": i}) for i, p in enumerate(prompts)))
    pq.write_table(pa.table({"text": prompts, "seed": [0, 1, 2]}), tmp_path / "p.parquet")
    for suffix in ("txt", "csv", "jsonl", "parquet"):
        assert load_prompts(tmp_path / f"p.{suffix}").prompts == prompts, suffix
    assert load_prompts(tmp_path / "p.jsonl").seeds == [0, 1, 2]
    assert load_prompts(tmp_path / "p.parquet", limit=2).seeds == [0, 1]
    assert load_prompts(tmp_path / "p.txt").seeds is None


@pytest.mark.parametrize(("name", "text", "line"), [
    ("bad.jsonl", '{"prompt": "ok"}\n{"prompt": "ok too"}\n{"prompt": broken}\n', 3),
    ("bad.jsonl", '{"prompt": "ok"}\n\n{"caption": "wrong key"}\n', 3),
    ("bad.jsonl", '{"prompt": "ok", "seed": 1}\n{"prompt": "x", "seed": "one"}\n', 2),
    ("bad.csv", "prompt,seed\na cat,1\na dog, with comma,2\n", 3),
    ("bad.csv", "prompt,seed\na cat,1\n,2\n", 3),
])
def test_malformed_prompt_file_names_the_line(tmp_path, name, text, line):
    (tmp_path / name).write_text(text)
    with pytest.raises(PromptFileError, match=rf"{name}, line {line}:"):
        read_prompt_source_file(tmp_path / name)


def test_non_utf8_text_names_the_line(tmp_path):
    (tmp_path / "p.txt").write_bytes(b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(PromptFileError, match="line 3"):
        load_prompts(tmp_path / "p.txt")


def test_shapes_split_prompts_come_with_scene_seeds():
    prompts = load_prompts("shapes:train:5")
    assert len(prompts.prompts) == 5 and prompts.seeds == [0, 1, 2, 3, 4]
    assert prompts.prompts == load_prompts("shapes:train:5").prompts
    assert prompts.prompts != load_prompts("shapes:test:5").prompts


def test_named_set_missing_offline_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("GOLDENNOISE_PROMPTS", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_prompts("drawbench")
    message = str(err.value)
    assert "drawbench" in message and str(tmp_path) in message and message.count(". ") == 0


def test_named_set_reads_a_local_file_first(tmp_path, monkeypatch):
    monkeypatch.setenv("GOLDENNOISE_PROMPTS", str(tmp_path))
    (tmp_path / "geneval.jsonl").write_text('{"prompt": "a photo of a bench"}\n')
    assert load_prompts("geneval").prompts == ["a photo of a bench"]


def test_unknown_hub_id_offline_is_one_sentence():
    with pytest.raises(FileNotFoundError, match="neither cached nor reachable"):
        load_prompts("nobody/no-such-prompts")
