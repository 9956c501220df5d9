"""The widgets in a real Jupyter kernel, headless: build a notebook with nbformat, execute it with nbclient.

No browser here (tests/browser does that): this checks that the calls a lesson makes (display a panel, run it,
display a board, run it) work in a kernel, end without errors, and leave no thread writing to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from widgetlib.widgets._static import STATIC_FIGURES_ENV

pytestmark = pytest.mark.timeout(400)

REPO = Path(__file__).resolve().parents[1]

CELLS = [
    """
    import sys
    from IPython.display import display
    from widgetlib import STRATEGIES, CompareBoard, StrategyPanel
    from widgetlib.core.checkpoints import make_checkpoint
    print(sys.executable)
    """,
    """
    checkpoint = make_checkpoint(size="24MB", shards=3)  # the suite's small_checkpoint: cached
    checkpoint.name
    """,
    """
    panel = StrategyPanel(checkpoint, "manual_shards")
    display(panel)
    report = panel.run()
    assert report is not None and report.outcome == "ok", panel.message
    assert panel.plot.point_count() > 0 and panel.plot.event_count() > 0
    assert panel.plot.line_y("peak") == report.peak_above_baseline_bytes / 1e6
    print(report.summary())
    """,
    """
    board = CompareBoard(checkpoint)
    display(board)
    reports = board.run()
    assert [r.strategy for r in reports] == list(STRATEGIES), board.message
    assert all(r.outcome == "ok" for r in reports), [r.error for r in reports]
    assert [name.split(" · ")[0] for name in board.plot.legend_names()] == list(STRATEGIES)
    print(board.table.value.count("<tr data-strategy="))
    """,
    """
    reports[0]  # a Report alone in a cell: one line of text, the card as HTML
    """,
    """
    static = board.plot.static_figure()
    assert type(static).__name__ == "Figure" and len(static.data) >= 8
    panel.plot.join(); board.plot.join()  # no thread of a run or a plot outlives the notebook
    import threading
    # (the zygote's reader lives as long as the kernel, by design: it is the next run's fast start)
    print(sorted(t.name for t in threading.enumerate()
                 if t.name.startswith("offload-lab") and t.name != "offload-lab-zygote"))
    """,
]


def _notebook() -> nbformat.NotebookNode:
    import textwrap

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(src).strip()) for src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _text(cell: nbformat.NotebookNode, name: str = "stdout") -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == name)


def test_panel_and_board_run_in_a_headless_kernel(tmp_path, small_checkpoint, monkeypatch):
    # As `make site` runs the lessons: each widget also leaves a static copy of its figure in the output.
    monkeypatch.setenv(STATIC_FIGURES_ENV, "1")
    nb = _notebook()
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell

    errors = [o for cell in nb.cells for o in cell.outputs if o.output_type == "error"]
    assert errors == []
    stderr = "".join(_text(cell, "stderr") for cell in nb.cells)
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
    # The kernel is this venv's Python, so it imports this widgetlib.
    assert _text(nb.cells[0]).strip() == sys.executable
    for cell, name in zip(nb.cells[2:4], ("StrategyPanel(", "CompareBoard("), strict=True):
        displays = [o for o in cell.outputs if o.output_type == "display_data"]
        # The live widget, then (OFFLOAD_LAB_STATIC_FIGURES=1) a static copy of its plot that plotly.js draws.
        assert len(displays) == 2, [sorted(o.data) for o in displays]
        live, static = displays
        assert "application/vnd.jupyter.widget-view+json" in live.data
        assert live.data["text/plain"].startswith(name)
        assert "Plotly.newPlot" in static.data["text/html"] and "RAM above baseline" in static.data["text/html"]
    # plotly.js (~5 MB) travels with the first static copy only.
    first, second = (next(o for o in c.outputs if "static copy" in o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells[2:4])
    assert len(first.data["text/html"]) > 1_000_000 > len(second.data["text/html"])
    assert _text(nb.cells[3]).strip() == "4"
    result = nb.cells[4].outputs[0].data
    assert result["text/plain"].startswith("<Report normal: ok, peak ") and "\n" not in result["text/plain"]
    assert 'class="offload-lab-card"' in result["text/html"]
    assert _text(nb.cells[5]).strip() == "[]"
