"""Every document the project cites exists in the repository, down to the cited section or anchor.

Code, configs, requirements, tests and benchmarks cite the method notes as ``docs/<page>.md §2.2`` or
``docs/<page>.md#anchor``; the docs pages link each other the same way. A citation of a file a user cannot open
(notes outside the repository, a renamed page, a section that moved) fails here, naming the file and the line.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SOURCES = ("goldennoise", "configs", "requirements", "tests", "benchmarks", "experiments")
SUFFIXES = {".py", ".yaml", ".yml", ".txt", ".toml", ".md", ".sh"}
OUTSIDE = "/".join(("shared", "docs"))  # the unpublished reference notes beside the repository

MD_REF = re.compile(r"(?<![\w./-])[\w.][\w./-]*\.md\b")
DOCS_CITATION = re.compile(r"docs/([\w-]+\.md)(?:``)?((?:#[\w-]+)?)((?:[ ,]*(?:and )?§\s*\d+(?:\.\d+)*)*)")
SECTION = re.compile(r"§\s*(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)*)\.? ", re.M)
ANCHOR = re.compile(r'<a id="([\w-]+)"></a>')
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _text_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / "Makefile"]
    for folder in SOURCES:
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.suffix in SUFFIXES and p.is_file()]
    this = Path(__file__).resolve()  # names pages in its own checks
    return [p for p in files if p.is_file() and "weights" not in p.parts and p.resolve() != this]


def _lines(path: Path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        yield f"{path.relative_to(ROOT)}:{number}", line


def _sections(page: Path) -> set[str]:
    return set(HEADING.findall(page.read_text(encoding="utf-8")))


def _anchors(page: Path) -> set[str]:
    return set(ANCHOR.findall(page.read_text(encoding="utf-8")))


def test_the_docs_folder_exists_with_its_index():
    assert (DOCS / "README.md").is_file()
    for page in ("npnet.md", "npd_format.md", "metrics.md", "dependencies.md"):
        assert (DOCS / page).is_file(), page


def test_no_citation_of_notes_outside_the_repository():
    bad = [where for path in _text_files() for where, line in _lines(path) if OUTSIDE in line]
    assert not bad, f"cites {OUTSIDE}, which users do not have: {bad}"


def test_every_cited_markdown_file_exists():
    """A ``*.md`` named in code, configs or tests is a repository path or a page of ``docs/``."""
    bad = []
    for path in _text_files():
        if path.suffix == ".md":
            continue  # markdown pages are checked through their links below
        for where, line in _lines(path):
            for ref in MD_REF.findall(line):
                ref = ref.lstrip("./")
                if not ((ROOT / ref).is_file() or (path.parent / ref).is_file()):
                    bad.append(f"{where}: {ref}")
    assert not bad, "cited files that do not exist:\n" + "\n".join(bad)


def test_every_cited_section_and_anchor_exists():
    bad = []
    for path in _text_files():
        for where, line in _lines(path):
            for page, anchor, sections in DOCS_CITATION.findall(line):
                target = DOCS / page
                if not target.is_file():
                    bad.append(f"{where}: docs/{page} does not exist")
                    continue
                if anchor and anchor[1:] not in _anchors(target):
                    bad.append(f"{where}: docs/{page} has no anchor {anchor}")
                missing = set(SECTION.findall(sections)) - _sections(target)
                bad += [f"{where}: docs/{page} has no section §{s}" for s in sorted(missing)]
                if re.search(rf"docs/{re.escape(page)}\W.*(Appendix|App\.) A", line):
                    if "Appendix A" not in target.read_text(encoding="utf-8"):
                        bad.append(f"{where}: docs/{page} has no Appendix A")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")) + ["../README.md"])
def test_markdown_links_resolve(page):
    source = (DOCS / page).resolve()
    bad = []
    for where, line in _lines(source):
        for link in MD_LINK.findall(line):
            if link.startswith(("http://", "https://")):
                continue
            file, _, anchor = link.partition("#")
            target = (source.parent / file).resolve() if file else source
            if not target.exists():
                bad.append(f"{where}: {link} (no such file)")
            elif anchor and target.suffix == ".md" and target.parent == DOCS and anchor not in _anchors(target):
                bad.append(f"{where}: {link} (no such anchor)")
    assert not bad, "\n".join(bad)
