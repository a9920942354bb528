"""docs/tutorial.ipynb runs from a clean kernel (the venv's Python) and its checks pass;
the repository keeps it without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"

pytestmark = pytest.mark.notebook


def test_the_notebook_is_stored_without_outputs() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "the tutorial has no code"
    for cell in code:
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
            "strip the outputs: jupyter nbconvert --clear-output --inplace docs/tutorial.ipynb"


def test_the_tutorial_runs_from_a_clean_kernel(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # A kernelspec named python3 that runs this interpreter (the venv's), found first.
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cnnlab test kernel", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=170,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    for check in ("Exercise 1: right", "Exercise 2: right", "Exercise 3: right", "Exercise 4:"):
        assert check in text
    kernel_python = [o for o in outputs if "figures in" in o.get("text", "")]
    assert kernel_python
