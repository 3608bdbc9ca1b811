"""examples/quick_demo.ipynb runs from top to bottom (nbclient, a real ipykernel) against the
shared small run, and shows what it says it shows."""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.pipeline.conftest import MODELS

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quick_demo.ipynb"


def outputs_of(cell) -> tuple[str, list[bytes]]:
    """(all text a cell showed, its PNG images)."""
    text, images = [], []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            text.append(out["text"])
        elif out["output_type"] in ("display_data", "execute_result"):
            data = out["data"]
            text.append(data.get("text/markdown", data.get("text/plain", "")))
            if "image/png" in data:
                images.append(base64.b64decode(data["image/png"]))
    return "".join(text), images


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])


def test_the_notebook_runs_against_a_run_and_shows_table_explanations_and_heatmap(
    demo_run, tmp_path, monkeypatch
):
    monkeypatch.setenv("SEGUE_DEMO_DIR", str(demo_run.out))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()  # raises on any cell's error
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [
        o for c in code for o in c.outputs if o.get("name") == "stderr"
    ] == []  # no warnings shown
    cells = [outputs_of(c) for c in code]
    text = "\n".join(t for t, _ in cells)
    assert f"run: {demo_run.out.resolve()}" in text

    # The metric table: every evaluated model, with numbers and CIs; then its chart.
    table_text = next(t for t, _ in cells if "| model | R-precision" in t)
    for model in MODELS:
        assert f"| {model} | 0." in table_text, model
    charts = [img for _, imgs in cells for img in imgs]
    assert len(charts) == 2 and all(img[:8] == b"\x89PNG\r\n\x1a\n" for img in charts)

    # Continuations with their explanations: ten lines with "because", for the best model and PlaylistGAT.
    assert "models: itemknn, playlistgat, playlistknn, popular, rp3beta, rules, title" in text
    assert text.count("because: ") == 10 + 8
    assert "playlistgat: top 8" in text
    # The heatmap cell wrote its figure into the run and displayed it.
    (heatmap,) = (demo_run.out / "notebook").glob("attention_*.png")
    assert heatmap.read_bytes() == charts[1]
