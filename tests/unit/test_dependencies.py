"""The package declares what it imports, and the pinned install adds no runtime package beyond the declared ones.

A plain ``pip install goldennoise`` installs ``pyproject.toml``'s ``dependencies`` only; ``make install`` adds
``requirements/reference.txt`` (``--no-deps``) for the parity tests. Anything goldennoise imports must therefore be
declared, and nothing in reference.txt may be imported by goldennoise or needed by its declared dependencies.
"""

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parents[2]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> list[Requirement]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return [Requirement(spec) for spec in tomllib.load(file)["project"]["dependencies"]]


def _reference_requirements() -> list[Requirement]:
    lines = (ROOT / "requirements" / "reference.txt").read_text(encoding="utf-8").splitlines()
    return [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]


def _imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def third_party_imports(package: Path) -> dict[str, set[str]]:
    """Top-level third-party module names imported anywhere in ``package`` (also inside functions) → files."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            for module in _imported_modules(node):
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top != package.name:
                    found.setdefault(top, set()).add(str(path.relative_to(package.parent)))
    return found


def runtime_closure(requirements: list[Requirement]) -> set[str]:
    """Canonical names of ``requirements`` and everything they require here (extras and markers evaluated)."""
    names: set[str] = set()
    done: set[tuple[str, frozenset[str]]] = set()
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        key = (_canonical(requirement.name), frozenset(requirement.extras))
        if key in done:
            continue
        done.add(key)
        names.add(key[0])
        try:
            specs = md.requires(requirement.name) or []
        except md.PackageNotFoundError:  # not installed here: nothing below it to follow
            continue
        extras = requirement.extras or {""}
        for spec in specs:
            sub = Requirement(spec)
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(sub)
    return names


def test_every_imported_package_is_a_declared_dependency():
    declared = {_canonical(r.name) for r in _declared()}
    providers = md.packages_distributions()
    missing = {}
    for module, files in third_party_imports(ROOT / "goldennoise").items():
        distributions = {_canonical(d) for d in providers.get(module, [])}
        if not distributions & declared:
            missing[module] = (sorted(distributions) or "no installed distribution", sorted(files))
    assert not missing, f"imported but not in pyproject.toml's dependencies: {missing}"


def test_reference_requirements_add_no_runtime_package():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--no-deps -r requirements/reference.txt" in makefile  # so reference.txt installs exactly what it lists
    providers = md.packages_distributions()
    imported = {_canonical(d) for module in third_party_imports(ROOT / "goldennoise")
                for d in providers.get(module, [])}
    runtime = runtime_closure(_declared()) | imported
    overlap = sorted({_canonical(r.name) for r in _reference_requirements()} & runtime)
    assert not overlap, (f"requirements/reference.txt installs runtime packages {overlap}: pin them in "
                         "requirements/constraints.txt (and declare what goldennoise imports in pyproject.toml)")
