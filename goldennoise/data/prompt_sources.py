"""Prompt sources for NPD collection and evaluation: local files, Hugging Face ``datasets`` ids and named sets.

NPNet's data (Zhou et al., 2024, arXiv 2411.09502; ``docs/npnet.md`` §2.1, §6.1) pairs Pick-a-Pic prompts
with one seed each; evaluation uses Pick-a-Pic, DrawBench, HPDv2 and GenEval prompts. A source is resolved by
:func:`load_prompts`:

* a local ``.txt`` (one prompt a line), ``.csv``, ``.jsonl`` or ``.parquet`` file; tabular files take the prompt
  from ``column`` (or the first of :data:`PROMPT_COLUMNS` present) and an optional ``seed`` column;
* ``shapes:<split>[:<count>]`` or ``shapes:<split>:<first>-<last>``: prompts of the embedded backbone's world
  (:mod:`goldennoise.shapes`), scenes 0…count-1 or first…last, each with its scene index as seed;
* a named set of :data:`NAMED_SETS` (``drawbench``, ``pickapic``, ``hpdv2``, ``geneval``, ``coco``): a file
  ``<name>.{txt,csv,jsonl,parquet}`` in ``$GOLDENNOISE_PROMPTS`` (default ``~/.cache/goldennoise/prompts``), else
  its Hugging Face dataset;
* any other ``owner/name`` string: a Hugging Face dataset id, read with ``datasets.load_dataset`` (offline-tolerant:
  the local cache works with ``HF_HUB_OFFLINE=1``; when the data are absent the error is one sentence).

A malformed file raises :class:`PromptFileError` naming the file and line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from goldennoise.checks import check_int
from goldennoise.sampling.rng import SEED_MAX, check_seed

PROMPT_COLUMNS = ("prompt", "caption", "text", "Prompt", "Caption", "sentence", "prompts")
"""Column names tried, in order, when a tabular source is given no ``column``."""

FILE_SUFFIXES = (".txt", ".csv", ".jsonl", ".parquet")


@dataclass(frozen=True)
class NamedPromptSet:
    """Where a named prompt set lives on the Hugging Face hub.

    Attributes:
        hub_id: dataset id for ``datasets.load_dataset``.
        column: the prompt column.
        split: the dataset split read by default.
        config: the dataset configuration name, if any.
    """

    hub_id: str
    column: str
    split: str = "test"
    config: str | None = None


NAMED_SETS: dict[str, NamedPromptSet] = {
    "pickapic": NamedPromptSet("yuvalkirstain/pickapic_v2", "caption", "test_unique"),
    "drawbench": NamedPromptSet("sayakpaul/drawbench", "Prompts", "train"),
    "hpdv2": NamedPromptSet("ymhao/HPDv2", "prompt", "test"),
    "geneval": NamedPromptSet("djghosh/geneval_prompts", "prompt", "train"),
    "coco": NamedPromptSet("sentence-transformers/coco-captions", "caption1", "train"),
}
"""Named prompt sets; a local ``<name>.<suffix>`` file in :func:`prompt_dir` takes precedence over the hub."""


class PromptFileError(ValueError):
    """A prompt file is malformed; the message names the file and the line."""


@dataclass
class PromptList:
    """Prompts and, when the source provides them, one seed per prompt.

    Attributes:
        prompts: the prompt texts.
        seeds: one seed per prompt, or ``None``.
    """

    prompts: list[str]
    seeds: list[int] | None = None

    def head(self, limit: int | None) -> PromptList:
        """The first ``limit`` prompts (all when ``None``)."""
        if limit is None:
            return self
        return PromptList(self.prompts[:limit], None if self.seeds is None else self.seeds[:limit])


def prompt_dir() -> Path:
    """Folder searched for named prompt-set files: ``$GOLDENNOISE_PROMPTS`` or ``~/.cache/goldennoise/prompts``."""
    return Path(os.environ.get("GOLDENNOISE_PROMPTS", "~/.cache/goldennoise/prompts")).expanduser()


def _check_prompt(prompt: object, path: Path, line: int) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptFileError(f"{path}, line {line}: the prompt is missing or empty.")
    return prompt.strip()


def _seed(value: object, path: Path, line: int) -> int:
    try:
        return check_seed(int(value.strip()) if isinstance(value, str) else value)
    except ValueError:
        raise PromptFileError(f"{path}, line {line}: seed {value!r} is not an integer in 0…{SEED_MAX}.") from None


def _finish(path: Path, prompts: list[str], seeds: list[int | None]) -> PromptList:
    if not prompts:
        raise PromptFileError(f"Prompt file {path} holds no prompts.")
    if all(s is None for s in seeds):
        return PromptList(prompts)
    if any(s is None for s in seeds):
        raise PromptFileError(f"Prompt file {path} gives a seed for some prompts but not all.")
    return PromptList(prompts, seeds)


def _read_text(path: Path) -> str:
    """The file as UTF-8 text, without a leading byte-order mark (spreadsheet exports often write one)."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise PromptFileError(f"{path}, line {line}: not UTF-8 text (byte {err.start}).") from None


def _lines(text: str) -> list[str]:
    r"""Lines ended by ``\n``, a trailing ``\r`` dropped.

    Not ``str.splitlines``: it also breaks at form feed, NEL and U+2028, which a prompt or a JSON string may hold.
    """
    return [line.removesuffix("\r") for line in text.split("\n")]


def _read_txt(path: Path, column: str | None) -> PromptList:
    prompts = [line.strip() for line in _lines(_read_text(path)) if line.strip()]
    return _finish(path, prompts, [None] * len(prompts))


def _pick_column(columns: list[str], column: str | None, path: Path) -> str:
    if column is not None:
        if column not in columns:
            raise PromptFileError(f"{path} has no column {column!r} (columns: {columns}).")
        return column
    for name in PROMPT_COLUMNS:
        if name in columns:
            return name
    raise PromptFileError(f"{path} has none of the prompt columns {list(PROMPT_COLUMNS)}; pass column=.")


def _read_jsonl(path: Path, column: str | None) -> PromptList:
    prompts, seeds, key = [], [], column
    for number, line in enumerate(_lines(_read_text(path)), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PromptFileError(f"{path}, line {number}: not valid JSON ({err.msg}).") from None
        if isinstance(record, str):
            record = {"prompt": record}
        if not isinstance(record, dict):
            raise PromptFileError(f"{path}, line {number}: expected a JSON object or string.")
        key = key or _pick_column(list(record), None, path)
        if key not in record:
            raise PromptFileError(f"{path}, line {number}: no {key!r} field.")
        prompts.append(_check_prompt(record[key], path, number))
        seeds.append(None if record.get("seed") is None else _seed(record["seed"], path, number))
    return _finish(path, prompts, seeds)


def _csv_records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(first line number, row)`` of every CSV record; a quoted field may span lines, as the csv module reads it."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as err:
        raise PromptFileError(f"{path}, line {start}: not valid CSV ({err}).") from None


def _read_csv(path: Path, column: str | None) -> PromptList:
    records = _csv_records(path)
    _, header = next(records, (1, None))
    if header is None:
        raise PromptFileError(f"Prompt file {path} holds no prompts.")
    key = _pick_column(header, column, path)
    position, seed_at = header.index(key), header.index("seed") if "seed" in header else None
    prompts, seeds = [], []
    for number, row in records:
        if not row:
            continue
        if len(row) != len(header):
            raise PromptFileError(f"{path}, line {number}: {len(row)} fields where the header has {len(header)} "
                                  "(quote prompts that contain commas).")
        prompts.append(_check_prompt(row[position], path, number))
        seeds.append(None if seed_at is None else _seed(row[seed_at], path, number))
    return _finish(path, prompts, seeds)


def _read_parquet(path: Path, column: str | None) -> PromptList:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        key = _pick_column(names, column, path)
        table = pq.read_table(path, columns=[key] + (["seed"] if "seed" in names else []))
    except PromptFileError:
        raise
    except Exception as err:  # pyarrow raises its own ArrowInvalid / OSError family
        raise PromptFileError(f"{path} is not a readable parquet file ({err}).") from None
    prompts = [_check_prompt(p, path, i + 1) for i, p in enumerate(table.column(key).to_pylist())]
    seeds = table.column("seed").to_pylist() if "seed" in names else [None] * len(prompts)
    return _finish(path, prompts, [None if s is None else _seed(s, path, i + 1) for i, s in enumerate(seeds)])


READERS = {".txt": _read_txt, ".jsonl": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet}


def read_prompt_source_file(path: str | Path, column: str | None = None) -> PromptList:
    """Read prompts (and seeds, if a ``seed`` column exists) from a ``.txt``, ``.csv``, ``.jsonl`` or ``.parquet``.

    Args:
        path: the file.
        column: the prompt column of tabular files; default: the first of :data:`PROMPT_COLUMNS` present.

    Raises:
        PromptFileError: the file is malformed (the message names the line) or holds no prompts.
    """
    path = Path(path)
    if path.suffix not in READERS:
        raise ValueError(f"Prompt file {path} must end in one of {sorted(READERS)}.")
    if not path.is_file():
        raise FileNotFoundError(f"Prompt file {path} does not exist.")
    return READERS[path.suffix](path, column)


SHAPES_PREFIX = "shapes:"
"""Prompt sources ``shapes:<split>[:<count>]`` name prompts of the embedded backbone's world."""


def parse_shapes_source(source: str) -> tuple[str, range]:
    """``"shapes:<split>[:<count>]"`` or ``"shapes:<split>:<first>-<last>"`` → ``(split, scene indices)``.

    The count (default 256) takes scenes ``0…count-1``; a range takes scenes ``first…last`` (inclusive), so a report
    set can stay disjoint from the scenes a model was selected on.

    Raises:
        ValueError: the source has another form, an unknown split, or a count or range that is not positive integers.
    """
    from goldennoise.shapes import SPLITS

    _, split, *rest = source.split(":")
    if split not in SPLITS or len(rest) > 1:
        raise ValueError(f"Prompt source {source!r} must read 'shapes:<split>[:<count>]' or "
                         f"'shapes:<split>:<first>-<last>' with a split of {list(SPLITS)}.")
    text = rest[0] if rest else "256"
    first, dash, last = text.partition("-")
    try:
        bounds = (int(first), int(last)) if dash else (0, int(text) - 1)
    except ValueError:
        what = "range" if dash else "count"
        raise ValueError(f"Prompt source {source!r}: the {what} {text!r} is not an integer.") from None
    if not dash:
        check_int(f"the count of prompt source {source!r}", bounds[1] + 1, minimum=1)
    elif not 0 <= bounds[0] <= bounds[1]:
        raise ValueError(f"Prompt source {source!r}: the range {text!r} needs 0 <= first <= last.")
    return split, range(bounds[0], bounds[1] + 1)


def shapes_prompts(split: str = "train", scenes: Sequence[int] = range(256)) -> PromptList:
    """Prompts of the shapes world's ``split`` for scene indices ``scenes``, each paired with its scene seed."""
    from goldennoise.shapes import sample_scenes, to_prompt

    seeds = list(scenes)
    return PromptList([to_prompt(scene.spec) for scene in sample_scenes(seeds, split)], seeds)


def load_hub_prompts(hub_id: str, column: str | None, split: str, config: str | None = None) -> PromptList:
    """Prompts of a Hugging Face dataset (offline-tolerant: the local cache is enough with ``HF_HUB_OFFLINE=1``)."""
    import datasets

    try:
        data = datasets.load_dataset(hub_id, config, split=split)
    except Exception as err:  # datasets raises many types (ConnectionError, FileNotFoundError, DatasetNotFoundError)
        raise FileNotFoundError(
            f"Prompt dataset '{hub_id}' (split {split!r}) is neither cached nor reachable "
            f"({type(err).__name__}); download it where the hub is reachable or pass a local prompt file.") from None
    key = _pick_column(list(data.column_names), column, Path(hub_id))
    prompts = [p.strip() for p in data[key] if isinstance(p, str) and p.strip()]
    seeds = [check_seed(s) for s in data["seed"]] if "seed" in data.column_names and len(prompts) == len(data) else None
    return PromptList(prompts, seeds)


def _named(name: str, column: str | None, split: str | None) -> PromptList:
    for suffix in FILE_SUFFIXES:
        local = prompt_dir() / f"{name}{suffix}"
        if local.is_file():
            return read_prompt_source_file(local, column)
    spec = NAMED_SETS[name]
    try:
        return load_hub_prompts(spec.hub_id, column or spec.column, split or spec.split, spec.config)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Named prompt set '{name}' is not available here: put {name}.txt/.csv/.jsonl/.parquet in "
            f"{prompt_dir()} or cache the dataset '{spec.hub_id}' where the hub is reachable.") from None


def load_prompts(source: str | Path, column: str | None = None, split: str | None = None,
                 limit: int | None = None) -> PromptList:
    """Resolve a prompt source (file, ``shapes:<split>[:<count>]``, named set or hub id); see the module docstring.

    Args:
        source: what to read.
        column: prompt column for tabular sources.
        split: dataset split for hub sources (named sets have their own default).
        limit: keep only the first ``limit`` prompts.
    """
    text = str(source)
    if text.startswith(SHAPES_PREFIX):
        return shapes_prompts(*parse_shapes_source(text)).head(limit)
    if Path(text).expanduser().suffix in READERS or Path(text).expanduser().exists():
        return read_prompt_source_file(Path(text).expanduser(), column).head(limit)
    if text in NAMED_SETS:
        return _named(text, column, split).head(limit)
    if text.count("/") == 1:
        return load_hub_prompts(text, column, split or "train").head(limit)
    raise FileNotFoundError(f"Prompt source '{text}' is not a file, a named set {sorted(NAMED_SETS)}, "
                            "'shapes:<split>' or a Hugging Face dataset id.")
