"""Every module of the package imports on its own, in a fresh interpreter, whichever is imported first.

A spawned worker (DDP, the engine's multi-process launch) unpickles its function by importing that function's module
first, so an import cycle that the usual import order hides breaks only there; this finds it in seconds.
"""

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "goldennoise"


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return [name for name in names if not name.endswith("__main__")]


def test_every_module_imports_first_in_a_fresh_interpreter():
    script = ("import importlib, sys, traceback\n"
              "for name in sys.argv[1:]:\n"
              "    for loaded in [m for m in sys.modules if m.startswith('goldennoise')]:\n"
              "        del sys.modules[loaded]\n"
              "    try:\n"
              "        importlib.import_module(name)\n"
              "    except Exception as error:\n"
              "        print(f'{name}: {type(error).__name__}: {error}')\n")
    result = subprocess.run([sys.executable, "-c", script, *_modules()], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "", "modules that fail when imported first:\n" + result.stdout
