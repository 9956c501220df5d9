"""The lessons as a learner sees them: JupyterLab in headless Chromium, Run All, then watch and poke the page.

What is read from the page, never from the kernel: the plotly plot's live trace lengths (``gd.data``), the
horizontal lines MemoryPlot draws (``gd.layout.shapes``, named ``"<run id>:peak"``), the result card
(``.offload-lab-card``, one ``td[data-figure=...]`` per figure), the comparison table (``.offload-lab-table``)
and the one-message box (``.offload-lab-error``). Front-end errors during a test fail it (see conftest.py).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from _screenshots import SCREENSHOTS, pictures_requested

from widgetlib import STRATEGIES

# Hard stops against a hang only, far above the usual durations (15-130 s here under load): the waits inside
# fail on their own once the page stops changing (conftest.py, LabPage.wait_with_progress).
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

# A checkpoint path that does not exist; the panel's message must name it.
MISSING_CHECKPOINT = "/tmp/offload-lab-no-such-checkpoint/llama-7b"
LESSON_01 = "01_normal_loading.ipynb"
LESSON_05 = "05_choosing_a_strategy.ipynb"
# A figure as format_bytes prints it: "1.16 GB", "513 MB", "2.0 kB", "12 B".
SIZE = re.compile(r"^\d+(\.\d+)? (B|kB|MB|GB)$")
_UNIT = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9}
# Whether a plot lies wholly inside the browser's viewport (the notebook's own scrolling included).
IN_VIEWPORT = "gd => { const r = gd.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }"


def _bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * _UNIT[unit]


def _series(state: dict[str, Any], series: str) -> list[dict[str, Any]]:
    """The traces of one series ("rss", "events") in drawing order, one per run."""
    return [t for t in state["traces"] if (t["meta"] or "").endswith(f":{series}")]


def _newest(state: dict[str, Any], series: str) -> dict[str, Any] | None:
    traces = _series(state, series)
    return traces[-1] if traces else None


def _rss_points(lab_page: Any, plot: Any) -> int:
    trace = _newest(lab_page.plot_state(plot), "rss")
    return trace["n"] if trace else 0


# Records, in the page itself, the plot's trace lengths after every change Plotly makes to its SVG (and whether
# the panel already shows its result card then). Polling from the test instead can miss a short window on a
# busy machine (each poll and screenshot takes a while there); the page's own record of every redraw cannot.
# (FigureWidget updates emit no plotly_* events; a redraw always rewrites the SVG, which a MutationObserver sees.)
RECORD_UPDATES_JS = """gd => {
    if (gd.__offloadLabRecord) return gd.__offloadLabRecord.length;
    const record = gd.__offloadLabRecord = [];
    const output = gd.closest('.jp-OutputArea-output');
    const note = () => {
        const entry = {
            traces: (gd.data || []).map(t => [t.meta === undefined || t.meta === null ? null : String(t.meta),
                                              t.x ? t.x.length : 0]),
            card: Boolean(output && output.querySelector('.offload-lab-card')),
        };
        const last = record[record.length - 1];
        if (!last || JSON.stringify(last) !== JSON.stringify(entry)) record.push(entry);
    };
    new MutationObserver(note).observe(gd, {subtree: true, childList: true, attributes: true});
    if (output) new MutationObserver(note).observe(output, {subtree: true, childList: true});
    note();
    return record.length;
}"""


def _record_updates(plot: Any) -> None:
    plot.evaluate(RECORD_UPDATES_JS)


def _recorded(plot: Any, series: str | None = None) -> list[tuple[int, bool]]:
    """(points in the newest trace of ``series`` (None: the first trace), card shown) after each redraw so far."""
    rows = []
    for entry in plot.evaluate("gd => gd.__offloadLabRecord || []"):
        traces = entry["traces"]
        if series is not None:
            traces = [t for t in traces if (t[0] or "").endswith(f":{series}")]
        n = (traces[-1][1] if series is not None else traces[0][1]) if traces else 0
        rows.append((n, entry["card"]))
    return rows


def _card(panel: Any) -> dict[str, str] | None:
    """The result card under ``panel`` as {figure: text} plus "strategy", read in one go; None when absent."""
    return panel.evaluate(
        """el => {
            const card = el.querySelector('.offload-lab-card');
            if (!card) return null;
            const figures = {strategy: card.dataset.strategy};
            card.querySelectorAll('td[data-figure]').forEach(td => {
                figures[td.dataset.figure] = td.textContent.trim();
            });
            return figures;
        }"""
    )


_ERROR_LINE = re.compile(r"^\s*\w*(Error|Exception|Interrupt)\b", re.MULTILINE)


def _assert_no_traceback(root: Any) -> None:
    """No traceback and no error output under ``root`` (a LabPage: the open notebook; or a locator)."""
    # A Playwright Locator has a .page too: only a LabPage (no inner_text of its own) means the whole notebook.
    if not hasattr(root, "inner_text"):
        root = root.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    text = root.inner_text()
    assert "Traceback" not in text, f"a traceback is on the page:\n{text[-3000:]}"
    errors = root.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    stderr = "\n".join(errors.all_inner_texts())
    assert not _ERROR_LINE.search(stderr), f"an error is on the page:\n{stderr[-3000:]}"


def _open_panel_notebook(lab_page: Any) -> Any:
    lab_page.open("panel_only.ipynb")
    lab_page.run_all()
    panel = lab_page.wait_attached(lab_page.panel(), "the panel")
    lab_page.wait_all_cells_ran()
    return panel


def _click(lab_page: Any, panel: Any, name: str) -> None:
    button = lab_page.button(panel, name)
    lab_page.wait_with_progress(button.is_enabled, f"the {name} button to be enabled")
    button.click()


def test_harness_live_plot_grows(lab_page: Any) -> None:
    """The harness itself: a FigureWidget fed by a thread grows on the page while a cell blocks the kernel.

    If this fails, the browser set-up is broken, not the widgets."""
    lab_page.open("harness_live_plot.ipynb")
    lab_page.run_all()
    plot = lab_page.wait_attached(lab_page.page.locator(".js-plotly-plot").first, "the harness's plot")
    _record_updates(plot)

    # The feeder appends 300 points over 30 s; wait for four lengths drawn, or for the feed to be complete.
    def grown() -> list[int] | None:
        counts = [n for n, _card in _recorded(plot)]
        return counts if len({n for n in counts if n > 0}) >= 4 or (counts and counts[-1] >= 300) else None

    counts = lab_page.wait_with_progress(grown, "the harness's line to grow")
    drawn = [n for n in counts if n > 0]
    assert len(set(drawn)) >= 4, f"the trace did not grow step by step: {counts}"
    assert drawn[0] < 300, f"the line only showed up complete: {counts}"
    lab_page.interrupt_kernel()
    lab_page.wait_kernel_idle()


def test_lesson_01_plot_grows_and_card_shows_peak(lab_page: Any) -> None:
    """Lesson 01, Run All: the panel's RSS line grows while the load runs; the card shows the run's peak."""
    lab_page.open(LESSON_01)
    lab_page.run_all()
    panel = lab_page.wait_attached(lab_page.panel(), "lesson 01's panel")
    plot = lab_page.wait_attached(panel.locator(".js-plotly-plot").first, "the panel's plot")
    _record_updates(plot)  # before the load: the child's start alone takes seconds

    # While the load runs, a picture for the README: the latest one taken mid-load (no card before or after it)
    # that shows event markers, taken again each time a new event appears. The checks below do not depend on
    # it: they read the page's own record of every redraw.
    shot: bytes | None = None
    shot_events = 0
    # Run All makes the last cell active and scrolls there; the panel's follow widget brings the plot back into
    # the viewport as the run starts. Recorded at every look mid-load: (points drawn, plot inside the viewport).
    in_view: list[tuple[int, bool]] = []

    def card_or_picture() -> dict[str, str] | None:
        nonlocal shot, shot_events
        card = _card(panel)
        if card is not None:
            return card
        state = lab_page.plot_state(plot)
        rss, events = _newest(state, "rss"), _newest(state, "events")
        if rss and rss["n"] > 0:
            in_view.append((rss["n"], plot.evaluate(IN_VIEWPORT)))
        if rss and rss["n"] >= 10 and events and events["n"] >= 2 and events["n"] > shot_events:
            lab_page.page.mouse.move(0, 0)  # no hover toolbar in the picture
            image = panel.screenshot(animations="disabled")
            if _card(panel) is None:
                shot, shot_events = image, events["n"]
        return None

    card = lab_page.wait_with_progress(card_or_picture, "lesson 01's result card")
    lab_page.mark("card")
    rss_live = [n for n, with_card in _recorded(plot, "rss") if not with_card]
    events_live = [n for n, with_card in _recorded(plot, "events") if not with_card]
    # An empty record with the card shown means the page's plot never received its traces (seen under a load
    # average of 11-15: gd.data stayed [] while the kernel's figure had them); the plot's state says which.
    now = [(t["meta"], t["n"]) for t in lab_page.plot_state(plot)["traces"]]
    assert len({n for n in rss_live if n > 0}) >= 3, (
        f"the RSS trace did not grow while the load ran: {rss_live}; (meta, points) on the page now: {now}"
    )
    assert max(events_live, default=0) >= 2, f"no event markers drawn before the card: {events_live}"
    # The learner watched it: after Run All, the growing plot was in the viewport (the first look may come
    # before the scroll; every later one must find it there).
    assert in_view and all(seen for _n, seen in in_view[1:]), f"(points, plot in the viewport): {in_view}"
    if shot is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / "strategy_panel_mid_load.png").write_bytes(shot)
    elif pictures_requested():
        raise AssertionError("no screenshot of the load mid-way with event markers; run `make screenshots` again")

    # The card's peak is the run's peak: the same formatted figure as the plot's peak line.
    assert card["outcome"] == "ok", card
    strategy, peak_text = card["strategy"], card["peak_rss_bytes"]
    assert SIZE.match(peak_text), f"the card's peak is not a size with a unit: {peak_text!r}"

    def peak_line() -> dict[str, Any] | None:
        shapes = lab_page.plot_state(plot)["shapes"]
        return next((s for s in shapes if (s["name"] or "").endswith(":peak")), None)

    line = lab_page.wait_with_progress(peak_line, "the peak line on the plot")
    assert line["label"].startswith(f"{strategy} peak {peak_text}"), (line, peak_text)
    # The plot draws RAM above the run's baseline (its y axis says so): the line sits at the card's
    # "peak above baseline" figure then, at the peak RSS otherwise.
    y_title = plot.evaluate("gd => ((gd.layout.yaxis || {}).title || {}).text || ''")
    drawn = card["peak_above_baseline_bytes"] if y_title.startswith("RAM above baseline") else peak_text
    assert abs(line["y0"] * 1e6 - _bytes(drawn)) <= 0.01 * _bytes(drawn), (line, drawn)
    rss = _newest(lab_page.plot_state(plot), "rss")
    assert rss["ymax"] * 1e6 <= _bytes(drawn) * 1.02, f"a sample above the peak: {rss} vs {drawn}"

    lab_page.wait_all_cells_ran()
    _assert_no_traceback(lab_page)


def test_stop_cancels_then_run_again(lab_page: Any) -> None:
    """Stop during a load: the plot stops growing, the card says cancelled; a second Run ends with a peak."""
    panel = _open_panel_notebook(lab_page)
    plot = panel.locator(".js-plotly-plot").first

    _click(lab_page, panel, "Run")
    # A few samples in: the child process is up and loading (importing torch alone takes seconds).
    lab_page.wait_with_progress(lambda: _rss_points(lab_page, plot) >= 3, "the first RSS samples")
    lab_page.mark("first samples")
    _click(lab_page, panel, "Stop")
    card = lab_page.wait_with_progress(lambda: _card(panel), "the result card after Stop")
    assert card["outcome"] == "cancelled", card
    lab_page.mark("cancelled card")
    lab_page.wait_with_progress(lab_page.button(panel, "Run").is_enabled, "Run to be enabled again")

    stopped_at = _rss_points(lab_page, plot)
    time.sleep(1.5)  # 15 redraw periods: a live plot would have grown
    assert _rss_points(lab_page, plot) == stopped_at, "the plot kept growing after Stop"

    _click(lab_page, panel, "Run")
    # The cancelled card says "cancelled": an "ok" card is the second run's.
    card = lab_page.wait_with_progress(
        lambda: (c := _card(panel)) is not None and c["outcome"] == "ok" and c, "the second run's card"
    )
    lab_page.mark("second run's card")
    peak_text = card["peak_rss_bytes"]
    assert SIZE.match(peak_text), f"the card's peak is not a size with a unit: {peak_text!r}"
    assert _rss_points(lab_page, plot) > 0
    _assert_no_traceback(lab_page)


def _table_rows(board: Any) -> list[dict[str, str]]:
    """The comparison table under ``board``, one {figure: text} per row (plus "strategy"), read in one go."""
    return board.evaluate(
        """el => [...el.querySelectorAll('.offload-lab-table tbody tr[data-strategy]')].map(tr => {
            const row = {strategy: tr.dataset.strategy};
            tr.querySelectorAll('td[data-figure]').forEach(td => { row[td.dataset.figure] = td.textContent.trim(); });
            return row;
        })"""
    )


@pytest.mark.timeout(480)
def test_lesson_05_compare_board(lab_page: Any) -> None:
    """Lesson 05, Run All: the first CompareBoard draws one coloured RSS line per strategy and fills its table.

    The lesson then runs a second board under a budget (four more loads, over a minute here); once the first
    board's table is full the test interrupts the kernel and stops that second board, so the suite stays short
    and, on a busy machine, the page can catch up with the first board's plot (each redraw of a live plot
    resends its whole arrays; with two boards drawing, a starved browser fell further behind for minutes).
    """
    lab_page.open(LESSON_05)
    lab_page.run_all()
    board = lab_page.wait_attached(lab_page.panel(0), "lesson 05's first board")
    rows = lab_page.wait_with_progress(
        lambda: len(r := _table_rows(board)) == 4 and r, "the first board's table with four rows"
    )
    lab_page.mark("four rows")
    assert [row["strategy"] for row in rows] == list(STRATEGIES), rows
    for row in rows:
        assert row["outcome"] == "ok", row
        assert SIZE.match(row["peak_rss_bytes"]), row

    # Cut the lesson short: interrupt whatever cell runs now, then Stop the budget board if it got going
    # (a run started from a cell keeps going after an interrupt; its Stop button works once the kernel idles).
    lab_page.interrupt_kernel()
    lab_page.wait_kernel_idle()
    second = lab_page.panel(1)
    if second.count():
        stop = lab_page.button(second, "Stop")
        if stop.is_enabled():
            stop.click()
        lab_page.wait_with_progress(lab_page.button(second, "Run").is_enabled, "the budget board to stop")
    lab_page.mark("second board stopped")

    plots = board.locator(".js-plotly-plot")
    seen: list[Any] = []

    def four_lines() -> tuple[Any, list[dict[str, Any]]] | None:
        seen.clear()
        for i in range(plots.count()):
            state = lab_page.plot_state(plots.nth(i))
            seen.append([(t["meta"], t["n"]) for t in state["traces"]])
            traces = [t for t in _series(state, "rss") if t["n"] > 0]
            if len(traces) == 4:
                return plots.nth(i), traces
        return None

    # The table is small HTML and arrives at once; the plot resends whole arrays and can lag on a busy machine:
    # wait while it catches up (nothing generates new updates any more).
    try:
        plot, traces = lab_page.wait_with_progress(four_lines, "four RSS lines on the board's plot")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; (meta, points) per plot: {seen}") from None
    names = [t["name"] for t in traces]
    for strategy in STRATEGIES:
        assert sum(n.split()[0] == strategy for n in names) == 1, f"not one line for {strategy}: {names}"
    colours = {t["color"] for t in traces}
    assert len(colours) == 4 and None not in colours, f"the four lines are not four colours: {traces}"
    assert len(_series(lab_page.plot_state(plot), "events")) == 4, "event markers missing for some strategy"
    _assert_no_traceback(board)
    # Now that nothing on the page moves any more (a screenshot taken while outputs are still being added can
    # be offset), the board as the README shows it.
    board.scroll_into_view_if_needed()
    lab_page.screenshot(SCREENSHOTS / "compare_board.png", board)


def test_bad_checkpoint_path_shows_one_message(lab_page: Any) -> None:
    """A wrong path typed into the checkpoint field: one readable message naming it, no traceback, no card."""
    panel = _open_panel_notebook(lab_page)
    field = panel.locator(".widget-text").filter(has_text="checkpoint").locator("input")
    field.fill(MISSING_CHECKPOINT)
    field.press("Enter")
    _click(lab_page, panel, "Run")
    message = panel.locator(".offload-lab-error")
    lab_page.wait_attached(message, "the panel's message")
    text = message.inner_text().strip()
    print(f"message: {text}")
    assert MISSING_CHECKPOINT in text, text
    assert "\n" not in text, f"not one line: {text!r}"
    assert "Traceback" not in panel.inner_text()
    assert _card(panel) is None
    lab_page.wait_with_progress(lab_page.button(panel, "Run").is_enabled, "Run to be enabled again")
    _assert_no_traceback(lab_page)
