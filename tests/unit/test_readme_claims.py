"""The README's opening and the package description advertise only methods that have code; the rest is on the roadmap.

A method counts as implemented when a goldennoise module cites its paper (every method module names its arXiv id).
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARXIV = re.compile(r"arXiv[ :]?(\d{4}\.\d{4,5})")
ROADMAP = "**Roadmap**"


def _intro() -> str:
    """The README up to its first section heading."""
    return (ROOT / "README.md").read_text(encoding="utf-8").split("\n## ", 1)[0]


def _cited_by_code() -> set[str]:
    return {i for p in (ROOT / "goldennoise").rglob("*.py") for i in ARXIV.findall(p.read_text(encoding="utf-8"))}


def test_intro_advertises_only_papers_the_code_implements():
    present = _intro().split(ROADMAP, 1)[0]
    advertised = set(ARXIV.findall(present))
    assert advertised, "the README's opening names no method paper"
    assert advertised <= _cited_by_code(), f"advertised without code: {sorted(advertised - _cited_by_code())}"


def test_roadmap_names_what_is_coming():
    intro = _intro()
    assert ROADMAP in intro, "the README's opening has no roadmap line"
    coming = set(ARXIV.findall(intro.split(ROADMAP, 1)[1]))
    assert coming and not coming & set(ARXIV.findall(intro.split(ROADMAP, 1)[0]))


def test_package_description_names_no_roadmap_method():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    description = re.search(r'^description = "(.*)"$', pyproject, re.M).group(1)
    roadmap = " ".join(_intro().split(ROADMAP, 1)[1].split())
    names = [m.split()[0] for m in re.findall(r"([\w-]+(?: [\w-]+)*) \(arXiv", roadmap)]
    text = description.lower().replace("-", " ")
    assert names and not [n for n in names if n.lower().replace("-", " ") in text], (description, names)
