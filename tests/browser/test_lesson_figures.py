"""The lessons' figures with several runs, as Chromium draws them: every run told apart, the plot wider than
its legend, no label printed over another.

Lessons 00, 03 and 04 put two or three runs on one plot, often of one strategy (two dtypes, three offload
budgets, three staircases). Their solved executions (the session's ``executions`` fixture, ``lesson_runs.py``,
at the lessons' test size) leave a static copy of each figure's final state; those copies are drawn here in a
page as wide as a laptop's notebook column and measured from what plotly rendered (``gd._fullLayout``, the
SVG's bounding boxes), not from the figure's Python object. Each multi-run plot is also saved as a picture
(``lesson_NN_plot_K.png``; ``make screenshots`` refreshes the README's).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import nbformat
import pytest
from _screenshots import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

LESSONS = ("00_memory_you_can_see", "03_offload_folder", "04_manual_shards")
# A notebook column in JupyterLab on a laptop screen with the file browser open.
COLUMN_PX = 820
# The plotting area's share of the figure's width that the legend may not eat into.
MIN_PLOT_SHARE = 0.7

# Per drawn figure: its runs (one RSS trace each, meta "<run id>:rss") with their colour and dash, the peak
# lines' colours per run, the plot area's and legend's boxes, and every marker label's box.
FIGURE_JS = """gd => {
    const L = gd._fullLayout;
    const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
                        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
    const runs = (gd.data || []).filter(t => String(t.meta || '').endsWith(':rss')).map(t => ({
        run: String(t.meta).slice(0, -4), color: (t.line || {}).color, dash: (t.line || {}).dash || 'solid',
        points: t.x ? t.x.length : 0}));
    const peaks = (L.shapes || []).filter(s => (s.name || '').endsWith(':peak'))
        .map(s => ({run: s.name.slice(0, -5), color: (s.line || {}).color}));
    const labels = [...gd.querySelectorAll('.scatterlayer .textpoint text')]
        .filter(t => (t.textContent || '').trim() && t.getBBox().width > 0)
        .map(t => Object.assign({text: t.textContent}, box(t)));
    return {title: ((L.title || {}).text || ''), width: L.width, plot_w: L._size.w, runs, peaks, labels,
            plot: box(gd.querySelector('.draglayer .nsewdrag')), legend: box(gd.querySelector('g.legend'))};
}"""


def _static_figures(executed: Path) -> list[str]:
    """The static copies (HTML with plotly.js) a solved execution left, in cell order."""
    notebook = nbformat.read(executed, as_version=4)
    return [
        output["data"]["text/html"]
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs
        if "Plotly.newPlot" in output.get("data", {}).get("text/html", "")
    ]


def _overlaps(a: dict[str, float], b: dict[str, float], slack_px: float = 1.0) -> bool:
    return (min(a["right"], b["right"]) - max(a["left"], b["left"]) > slack_px
            and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > slack_px)


@pytest.fixture(scope="module")
def drawn(executions: dict[tuple[str, str], Any], browser_context: Any,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Per lesson: each of its figures with two or more runs, as measured in the page (pictures saved)."""
    out = tmp_path_factory.mktemp("lesson-figures")
    result: dict[str, list[dict[str, Any]]] = {}
    for stem in LESSONS:
        execution = executions[(stem, "solved")]
        assert execution.returncode == 0, f"{stem} did not run to the end:\n{execution.stderr[-3000:]}"
        figures = _static_figures(execution.executed)
        assert figures, f"{stem} left no static figure (OFFLOAD_LAB_STATIC_FIGURES=1 was set for its run)"
        page_file = out / f"{stem}.html"
        page_file.write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(stem)}</title></head>"
            f"<body style='width:{COLUMN_PX}px;margin:0 auto'>"
            + "".join(f"<div class='figure'>{figure}</div>" for figure in figures) + "</body></html>",
            encoding="utf-8",
        )
        page = browser_context.new_page()
        try:
            page.set_viewport_size({"width": COLUMN_PX + 100, "height": 900})
            page.goto(page_file.as_uri())
            page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=30_000)
            plots = page.locator(".js-plotly-plot")
            result[stem] = []
            for k in range(plots.count()):
                state = plots.nth(k).evaluate(FIGURE_JS)
                if len(state["runs"]) < 2:
                    continue
                result[stem].append(state)
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                plots.nth(k).screenshot(path=str(SCREENSHOTS / f"lesson_{stem[:2]}_plot_{len(result[stem])}.png"))
        finally:
            page.close()
    return result


@pytest.mark.parametrize("stem", LESSONS)
def test_every_run_on_a_lessons_figure_is_told_apart(drawn: dict[str, list[dict[str, Any]]], stem: str) -> None:
    assert drawn[stem], f"{stem}: no figure with two or more runs was drawn"
    for figure in drawn[stem]:
        runs = figure["runs"]
        styles = [(r["color"], r["dash"]) for r in runs]
        assert len(set(styles)) == len(runs), f"{stem} {figure['title']!r}: runs share a colour and dash: {runs}"
        assert all(r["points"] > 1 for r in runs), f"{stem} {figure['title']!r}: a run drew no curve: {runs}"
        colors = {r["run"]: r["color"] for r in runs}
        for peak in figure["peaks"]:  # a run's peak line in its own colour, so it can be matched to its curve
            assert peak["color"] == colors.get(peak["run"]), (stem, figure["title"], peak, colors)


@pytest.mark.parametrize("stem", LESSONS)
def test_a_lessons_plot_is_wider_than_its_legend_and_no_label_covers_another(
        drawn: dict[str, list[dict[str, Any]]], stem: str) -> None:
    for figure in drawn[stem]:
        where = f"{stem} {figure['title']!r}"
        assert figure["plot_w"] >= MIN_PLOT_SHARE * figure["width"], (
            f"{where}: the plot is {figure['plot_w']:.0f} of {figure['width']:.0f} px wide")
        plot, legend = figure["plot"], figure["legend"]
        assert legend is not None and legend["top"] >= plot["bottom"], f"{where}: legend {legend}, plot {plot}"
        labels = figure["labels"]
        covered = [(a["text"], b["text"]) for i, a in enumerate(labels) for b in labels[i + 1:] if _overlaps(a, b)]
        assert not covered, f"{where}: marker labels printed over each other: {covered}"


def test_the_readme_shows_a_same_strategy_comparison(drawn: dict[str, list[dict[str, Any]]]) -> None:
    """Lesson 04's staircases (three runs of manual_shards) are the README's picture of runs of one strategy."""
    taken = SCREENSHOTS / "lesson_04_plot_1.png"
    assert taken.is_file() and taken.stat().st_size > 10_000, f"no picture of lesson 04's runs at {taken}"
    repo = Path(__file__).resolve().parents[2]
    shown = "docs/screenshots/lesson_04_plot_1.png"
    assert f"]({shown})" in (repo / "README.md").read_text(encoding="utf-8"), f"the README does not show {shown}"
    assert (repo / shown).is_file(), f"{shown} is missing: run `make screenshots`"
