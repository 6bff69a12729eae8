"""The notebooks in notebooks/ execute top to bottom in a fresh kernel and draw their figures (nbclient, the dev extra).

Each runs in its own empty working directory; the compare-runs notebook writes its demo MLflow store into a temporary
folder (``GOLDENNOISE_TRACKING_URI`` unset). Outputs are stripped in git, which a cheap test checks too.
Executing them takes about a minute, so they run as their own step (``make test-notebooks``, marker ``notebooks``).
"""

import json
import os
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ROOT = NOTEBOOKS.parent

EXPECTED = {
    # notebook: (figures, axes per figure, text every printed output must hold together)
    "01_quickstart.ipynb": ([18], ["Gaussian", "NPNet", "NoiseRefine"]),  # 3 methods x 6 prompts
    "02_compare_runs.ipynb": ([2, 1], ["gaussian", "cfg3", "npnet", "noiserefine", "steps=5", "steps=10"]),
}


def test_every_notebook_is_checked_and_stored_without_outputs():
    stored = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert stored == sorted(EXPECTED), "every notebook needs an entry in EXPECTED (its figures and printed text)"
    for name in stored:
        cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code), (
            f"{name}: strip the outputs before committing")


def _outputs(notebook) -> tuple[list[str], str]:
    """The text/plain of every displayed figure, and all printed text."""
    figures, text = [], []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                figures.append(data.get("text/plain", ""))
            text.append(output.get("text", "") + data.get("text/plain", ""))
    return figures, "\n".join(text)


@pytest.mark.notebooks
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_notebook_runs_and_draws_its_figures(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel", reason="the notebooks run in an ipykernel (pip install -e '.[dev]')")
    monkeypatch.delenv("GOLDENNOISE_TRACKING_URI", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell on any error
    figures, text = _outputs(notebook)
    axes, words = EXPECTED[name]
    assert [int(re.search(r"with (\d+) Axes", f).group(1)) for f in figures] == axes
    assert all(word in text for word in words), f"{name} should print {words}"
    assert not list(tmp_path.iterdir()), f"{name} should write nothing into its working directory"
