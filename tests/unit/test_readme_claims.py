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


def test_a_roadmap_line_names_only_what_is_coming():
    """A roadmap line is optional; when there is one, it names papers the opening does not advertise as present."""
    intro = _intro()
    if ROADMAP in intro:
        present, coming = intro.split(ROADMAP, 1)
        assert ARXIV.findall(coming) and not set(ARXIV.findall(coming)) & set(ARXIV.findall(present))


def test_package_description_names_only_implemented_methods():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    description = re.search(r'^description = "(.*)"$', pyproject, re.M).group(1).lower()
    coming = _intro().split(ROADMAP, 1)[1] if ROADMAP in _intro() else ""
    names = [m.split()[0].lower() for m in re.findall(r"([\w-]+(?: [\w-]+)*) \(arXiv", " ".join(coming.split()))]
    assert not [n for n in names if n in description], (description, names)
    for method, module in {"npnet": "noise/npnet.py", "noiserefine": "noise/noiserefine.py",
                           "stability": "noise/stability.py"}.items():
        assert method in description.replace(" ", "") and (ROOT / "goldennoise" / module).exists()
