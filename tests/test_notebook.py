"""The walk-through notebook executes top to bottom (tiny configuration)."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("COREFIX_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("| model |" in str(o) for o in outputs), "the evaluation table was not shown"


def test_committed_notebook_stays_small():
    size = NOTEBOOK.stat().st_size
    assert size < 600_000, f"{NOTEBOOK.name} is {size} bytes: clear large outputs before committing"
