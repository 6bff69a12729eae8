"""Every ``python -m goldennoise ...`` command an experiment README gives parses with the real command line.

The commands are taken from fenced and indented code blocks (continued lines joined, comments dropped) and from
inline code spans of ``experiments/README.md`` and ``experiments/*/README.md`` (a bare subcommand, as in "`python -m
goldennoise evaluate` with ...", names the command and is skipped); each is run through
:func:`goldennoise.cli.main` with ``--print_config``, which reads every config file, resolves interpolations and
checks every key, ``class_path`` and ``init_args`` against the signatures, then exits before anything is built (no
weights are loaded).
"""

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from goldennoise.cli import main

ROOT = Path(__file__).resolve().parents[2]
READMES = sorted([*(ROOT / "experiments").glob("README.md"), *(ROOT / "experiments").glob("*/README.md")])
COMMAND = re.compile(r"(?:^|\s)(?:\S*/)?python3? -m goldennoise\b")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
SHELL_OPERATORS = {">", ">>", "<", "|", "||", "&&", ";", "&", "2>&1"}
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
WITHOUT_CONFIG = {"export-refiner"}
"""Subcommands that take file paths, not a config (no ``--print_config``; their own tests cover them)."""


def _logical_lines(block: str) -> list[str]:
    """A code block's lines with backslash continuations joined."""
    return block.replace("\\\n", " ").splitlines()


def _command(line: str) -> tuple[dict[str, str], list[str]] | None:
    """The environment assignments before ``python -m goldennoise`` and the arguments after it, or ``None``."""
    match = COMMAND.search(line)
    if match is None:
        return None
    before = shlex.split(line[:match.start()], comments=True)
    env = dict(token.split("=", 1) for token in before if ENV_ASSIGNMENT.match(token))
    args = []
    for token in shlex.split(line[match.end():], comments=True):
        if token in SHELL_OPERATORS or token.startswith((">", "2>")):
            break
        args.append(token)
    return env, args


def readme_commands(text: str) -> list[tuple[dict[str, str], list[str]]]:
    """Every ``python -m goldennoise`` command of a README: code blocks (fenced, indented) and inline code."""
    lines = [line for block in FENCE.findall(text) for line in _logical_lines(block)]
    prose = FENCE.sub("", text)
    lines += [span for span in INLINE.findall(prose)]
    lines += [line for line in _logical_lines(INLINE.sub("", prose)) if line.startswith("    ")]
    commands = [command for line in lines if (command := _command(line)) is not None]
    return [(env, args) for env, args in commands  # a bare `python -m goldennoise fit` names it
            if len(args) > 1 and args[0] not in WITHOUT_CONFIG]


def _cases() -> list[tuple[Path, dict[str, str], list[str]]]:
    return [(readme, env, args) for readme in READMES
            for env, args in readme_commands(readme.read_text(encoding="utf-8"))]


CASES = _cases()


def test_commands_are_found_in_every_form():
    text = ("Run `python -m goldennoise evaluate --config a.yaml` first.\n\n"
            "```bash\nX=1 python -m goldennoise fit --config b.yaml \\\n  --trainer.max_steps 2  # two steps\n"
            "nice .venv/bin/python -m goldennoise collect --config c.yaml > log.txt 2>&1\n```\n\n"
            "    python -m goldennoise sweep --config d.yaml | tee out\n\n"
            "    python -m goldennoise export-refiner last.ckpt refiner.safetensors\n\n"
            "The command `python -m goldennoise evaluate` ...\n")
    assert readme_commands(text) == [
        ({"X": "1"}, ["fit", "--config", "b.yaml", "--trainer.max_steps", "2"]),
        ({}, ["collect", "--config", "c.yaml"]),
        ({}, ["evaluate", "--config", "a.yaml"]),
        ({}, ["sweep", "--config", "d.yaml"]),
    ]


def test_every_experiment_folder_has_a_readme_with_a_command():
    folders = [p for p in sorted((ROOT / "experiments").iterdir()) if p.is_dir() and not p.name.startswith(("_", "."))]
    assert [f.name for f in folders if not (f / "README.md").exists()] == []
    with_commands = {readme.parent.name for readme, *_ in CASES}
    assert [f.name for f in folders if f.name not in with_commands] == []


@pytest.mark.parametrize(("readme", "env", "args"), CASES,
                         ids=[f"{r.parent.name}:{' '.join(a)[:80]}" for r, _, a in CASES])
def test_readme_command_parses(readme, env, args, monkeypatch):
    monkeypatch.chdir(ROOT)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    where = f"{readme.relative_to(ROOT)}: python -m goldennoise {shlex.join(args)}"
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors), pytest.raises(SystemExit) as info:
        main([*args, "--print_config"])
    assert info.value.code in (0, None), f"{where}\n{errors.getvalue().strip()}"
    assert printed.getvalue().strip(), f"{where}: printed no config"
