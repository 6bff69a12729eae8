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


def test_jsonl_prompts_may_hold_line_separators(tmp_path):
    # U+2028, U+2029, NEL and form feed are valid unescaped inside a JSON string; only "\n" ends a record
    prompts = ["a red cube\u2028on a table", "two\u2029paragraphs", "next\x85line", "form\x0cfeed"]
    text = "".join(json.dumps({"prompt": p, "seed": i}, ensure_ascii=False) + "\r\n" for i, p in enumerate(prompts))
    (tmp_path / "p.jsonl").write_text(text, encoding="utf-8", newline="")
    loaded = load_prompts(tmp_path / "p.jsonl")
    assert loaded.prompts == prompts and loaded.seeds == [0, 1, 2, 3]
    (tmp_path / "bad.jsonl").write_text(text + '{"prompt": "x\u2028y", "seed": 4}\n{"prompt": oops}\n')
    with pytest.raises(PromptFileError, match="bad.jsonl, line 6:"):
        load_prompts(tmp_path / "bad.jsonl")


def test_txt_breaks_only_at_newlines(tmp_path):
    (tmp_path / "p.txt").write_text("page\x0cbreak\r\nnext\x85line\nline\u2028separator\n\n", encoding="utf-8",
                                    newline="")
    assert load_prompts(tmp_path / "p.txt").prompts == ["page\x0cbreak", "next\x85line", "line\u2028separator"]


def test_csv_quoted_prompt_keeps_its_line_break_and_later_lines_keep_their_numbers(tmp_path):
    text = 'prompt,seed\n"a red cube\non a table",3\n"one, two",4\nlast,5\n'
    (tmp_path / "p.csv").write_text(text, newline="")
    loaded = load_prompts(tmp_path / "p.csv")
    assert loaded.prompts == ["a red cube\non a table", "one, two", "last"] and loaded.seeds == [3, 4, 5]
    (tmp_path / "bad.csv").write_text(text + "bad,seed\n", newline="")
    with pytest.raises(PromptFileError, match="bad.csv, line 6: seed 'seed' is not an integer"):
        load_prompts(tmp_path / "bad.csv")
    (tmp_path / "open.csv").write_text('prompt\nfine\n"never closed\nmore\n', newline="")
    with pytest.raises(PromptFileError, match="open.csv, line 3: not valid CSV"):
        load_prompts(tmp_path / "open.csv")


def test_byte_order_mark_is_not_part_of_the_header_or_the_first_prompt(tmp_path):
    (tmp_path / "p.csv").write_bytes("prompt,seed\r\na café,1\r\n".encode("utf-8-sig"))
    (tmp_path / "p.txt").write_bytes("a café\n".encode("utf-8-sig"))
    (tmp_path / "p.jsonl").write_bytes('{"prompt": "a café"}\n'.encode("utf-8-sig"))
    assert load_prompts(tmp_path / "p.csv").prompts == ["a café"] and load_prompts(tmp_path / "p.csv").seeds == [1]
    assert load_prompts(tmp_path / "p.txt").prompts == ["a café"]
    assert load_prompts(tmp_path / "p.jsonl").prompts == ["a café"]


@pytest.mark.parametrize(("name", "text"), [
    ("float.jsonl", '{"prompt": "a", "seed": 1.7}\n'),
    ("huge.csv", "prompt,seed\na,99999999999999999999\n"),
    ("negative.csv", "prompt,seed\na,-1\n"),
])
def test_file_seeds_must_be_integers_manual_seed_takes(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(PromptFileError, match=rf"{name}, line \d: seed .* is not an integer in 0…"):
        load_prompts(tmp_path / name)


@pytest.mark.parametrize(("source", "message"), [
    ("shapes:train:abc", r"the count 'abc' is not an integer"),
    ("shapes:train:0", "must be at least 1, got 0"),
    ("shapes:trian:4", "must read 'shapes:<split>\\[:<count>\\]' or .* with a split of"),
    ("shapes:train:4:5", "must read 'shapes:<split>"),
    ("shapes:train:9-3", "needs 0 <= first <= last"),
    ("shapes:train:3-x", "the range '3-x' is not an integer"),
])
def test_malformed_shapes_source_is_named(source, message):
    with pytest.raises(ValueError, match=message):
        load_prompts(source)


def test_a_shapes_range_takes_those_scenes_with_their_seeds():
    ranged, counted = load_prompts("shapes:test:2-4"), load_prompts("shapes:test:5")
    assert ranged.seeds == [2, 3, 4] and ranged.prompts == counted.prompts[2:5]
