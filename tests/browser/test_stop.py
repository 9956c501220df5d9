"""Stop works while a cell blocks in ``panel.run()``: JupyterLab in headless Chromium, the Stop button clicked
during a blocking run, the run cancelled, the cell returning the cancelled Report, the next cell running.

Before, a busy kernel handled no widget message, so the click waited for the cell: the load finished ("ok")
and only then did Stop arrive, with nothing left to stop. A Report that says "cancelled" returned by the
blocking call is therefore the proof that the click was handled while the cell was still running.
"""

from __future__ import annotations

import time
from typing import Any

import nbformat
import pytest

# Generous limits: on a shared 2-core machine a child importing torch can take tens of seconds.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(360)]

NOTEBOOK = "stop_blocking_run.ipynb"

CELLS = [
    # The demo checkpoint at the Lab's OFFLOAD_LAB_SIZE, built (cached) by the lab fixture.
    "from widgetlib import StrategyPanel, demo_checkpoint\n"
    "from widgetlib.measure import runner\n"
    "_start = runner.start  # forwards until stopped: the run cannot end before the click, however fast it loads\n"
    "runner.start = lambda *args, **options: _start(*args, **{**options, 'forwards': 100_000})\n"
    "panel = StrategyPanel(demo_checkpoint(), 'normal')\n"
    "panel",
    "report = panel.run()  # blocks: the Stop button must still work\n"
    "print('run returned:', report.outcome)",
    "print('next cell ran:', 6 * 7)",
]


def _write_notebook(root: Any) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, root / NOTEBOOK)


def _wait(condition: Any, timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _status(panel: Any) -> str:
    return panel.locator(".offload-lab-status").first.inner_text()


def _outputs_text(lab_page: Any) -> str:
    return lab_page.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea").all_inner_texts()


def _cell_running(lab_page: Any) -> bool:
    return lab_page.page.evaluate(
        "() => [...document.querySelectorAll('.jp-InputArea-prompt')].some(p => p.textContent.includes('*'))"
    )


def test_stop_button_cancels_a_blocking_run(lab: Any, lab_page: Any) -> None:
    _write_notebook(lab.root_dir)
    lab_page.open(NOTEBOOK)
    lab_page.run_all()
    panel = lab_page.panel()
    panel.wait_for(state="attached", timeout=120_000)
    # The load is done and the forwards go on (the status line names them; they go on until Stop) while cell 2
    # still blocks in .run(). Read from the status line, not the plot: a live figure can render late.
    _wait(lambda: "running normal: forward" in _status(panel), 180, "the run's forward passes")
    assert _cell_running(lab_page), "the blocking cell ended before Stop could be pressed"
    assert "run returned" not in "\n".join(_outputs_text(lab_page))
    lab_page.mark("load running")
    stop = lab_page.button(panel, "Stop")
    _wait(stop.is_enabled, 10, "the Stop button to be enabled")
    stop.click()
    lab_page.mark("stop clicked")

    # The blocking call returns the cancelled Report; the cell after it runs: the kernel is alive and free.
    text = _wait(lambda: (t := "\n".join(_outputs_text(lab_page))) and "next cell ran: 42" in t and t, 120,
                 "the cells after the stop to run")
    lab_page.mark("next cell ran")
    assert "run returned: cancelled" in text, text
    card = panel.locator(".offload-lab-card td[data-figure='outcome']")
    assert card.inner_text().strip() == "cancelled"
    lab_page.wait_all_cells_ran()
    _wait(lab_page.button(panel, "Run").is_enabled, 10, "Run to be enabled again")
    assert "Traceback" not in "\n".join(_outputs_text(lab_page))
