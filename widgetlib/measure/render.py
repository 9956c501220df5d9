"""One renderer for Report figures: the columns of :mod:`widgetlib.measure.columns`, written as an HTML card, an
HTML table, a plain-text table or a Markdown table, and as the one line ``repr(report)`` prints. Every table
takes its choice of columns (``columns=``: keys of the catalogue); the widgets' card and table,
``Report._repr_html_``, what ``offload-lab compare`` prints and the tables the lessons show therefore never
disagree on a figure.

Plain strings only (no widget or plotting import): this is the measure layer.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..core.sizes import format_bytes
from .columns import COLUMNS, Column
from .columns import columns as _choose

if TYPE_CHECKING:
    from .report import Report

__all__ = [
    "CARD_EXTRA_COLUMNS",
    "REPORT_COLUMNS",
    "card_columns",
    "error_html",
    "report_card_html",
    "report_figures",
    "report_line",
    "report_table_html",
    "report_table_markdown",
    "report_table_text",
]

# The figures of the widgets' card and table, and the default of every table here, in order.
REPORT_COLUMNS = ("outcome", "peak_rss_bytes", "peak_above_baseline_bytes", "peak_ratio", "predicted_peak_rss_bytes",
                  "load_s", "forward_s", "offload_written")


# What a card adds where its run has the figure: the ones the lessons' experiments ask the learner to read.
CARD_EXTRA_COLUMNS = ("budget_bytes", "budget_mode", "major_faults", "disk_read_bytes", "disk_bytes")
# Counts whose zero is a figure too: nothing read from disk (a warm page cache) is what a learner compares.
_ZERO_SHOWN = ("major_faults", "disk_read_bytes")


def card_columns(report: Report) -> tuple[str, ...]:
    """The card's columns for ``report``: :data:`REPORT_COLUMNS`, then each of :data:`CARD_EXTRA_COLUMNS` the run
    has (a budget, weights on disk, the major faults and bytes read from disk, 0 included: none read from disk
    is a figure too).

    >>> from widgetlib.measure.report import Report
    >>> card_columns(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1))[-1]
    'offload_written'
    >>> card_columns(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1, budget_bytes=10**9,
    ...                     budget_mode="cgroup", major_faults=0, disk_read_bytes=0))[-4:]
    ('budget_bytes', 'budget_mode', 'major_faults', 'disk_read_bytes')
    """
    def has(key: str) -> bool:
        value = COLUMNS[key].value(report)
        return value is not None and (value != 0 or key in _ZERO_SHOWN)

    return REPORT_COLUMNS + tuple(key for key in CARD_EXTRA_COLUMNS if has(key))


def report_figures(report: Report, chosen: Iterable[str | Column] = REPORT_COLUMNS) -> dict[str, str]:
    """The figures of one Report as the widgets print them, keyed by column key ("–" where unknown).

    >>> from widgetlib.measure.report import Report
    >>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
    ...            peak_rss_bytes=3 * 10**8, load_s=1.0, forward_s=0.1)
    >>> figures = report_figures(r)
    >>> figures["peak_rss_bytes"], figures["peak_ratio"], figures["load_s"], figures["forward_s"]
    ('300 MB', '2.00x', '1.00 s', '0.100 s')
    """
    return {c.key: c.cell(report) for c in _choose(chosen)}


def error_html(message: str | None) -> str:
    """One learner-facing message as a red box (empty string for no message); never a traceback.

    >>> error_html("The folder /x does not exist.")[:4], error_html(None)
    ('<div', '')
    """
    if not message:
        return ""
    return (
        '<div class="offload-lab-error" style="color:#8b0000;background:#fdecea;border:1px solid #f5c2c0;'
        f'padding:6px 10px;border-radius:4px">{html.escape(message)}</div>'
    )


def report_card_html(report: Report) -> str:
    """The result card of one run: peak RSS, ratio to the checkpoint, times, offload bytes, prediction, and the
    budget, its mode, major faults and bytes on disk where the run has them (:func:`card_columns`).

    >>> from widgetlib.measure.report import Report
    >>> card = report_card_html(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8))
    >>> 'peak RSS (absolute)</th><td data-figure="peak_rss_bytes">–</td>' in card
    True
    """
    rows = "".join(
        f'<tr><th style="text-align:left;padding-right:12px">{html.escape(c.header)}</th>'
        f'<td data-figure="{html.escape(c.key)}">{html.escape(c.cell(report))}</td></tr>'
        for c in _choose(card_columns(report))
    )
    details = [f"{report.strategy} on {report.checkpoint} ({format_bytes(report.checkpoint_bytes)})"]
    if report.baseline_rss_bytes is not None:
        details.append(f"baseline RSS {format_bytes(report.baseline_rss_bytes)} (after imports, before the load)")
    if report.prediction:
        details.append(f"prediction: {report.prediction}")
    notes = "".join(f"<div style='color:#555;font-size:90%'>{html.escape(d)}</div>" for d in details)
    return (
        f'<div class="offload-lab-card" data-strategy="{html.escape(report.strategy)}" '
        'style="border:1px solid #ddd;border-radius:4px;padding:8px 12px;margin-top:6px">'
        f"<table>{rows}</table>{notes}</div>"
    )


def _labels(reports: Sequence[Report], labels: Iterable[str] | None) -> list[str]:
    names = list(labels) if labels is not None else [r.strategy for r in reports]
    if len(names) != len(reports):
        raise ValueError(f"{len(names)} labels for {len(reports)} reports; give one label per report.")
    return names


def _grid(
    reports: Iterable[Report], labels: Iterable[str] | None, label_header: str | None,
    chosen: Iterable[str | Column],
) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, rows of cells and right-alignment of a table (the label column first, unless ``label_header`` is
    None)."""
    reports = list(reports)
    cols = _choose(chosen)
    header = [c.header for c in cols]
    rows = [[c.cell(r) for c in cols] for r in reports]
    right = [c.numeric for c in cols]
    if label_header is not None:
        header.insert(0, label_header)
        for row, name in zip(rows, _labels(reports, labels), strict=True):
            row.insert(0, name)
        right.insert(0, False)
    return header, rows, right


def report_table_html(reports: Iterable[Report], columns: Iterable[str | Column] = REPORT_COLUMNS) -> str:
    """Several reports as one HTML table, one row per report (``<tr data-strategy=...>``), each figure a
    ``<td data-figure=KEY>``.

    >>> from widgetlib.measure.report import Report
    >>> table = report_table_html([Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1)])
    >>> table.count('<tr data-strategy="normal">'), table.count("<td data-figure=")
    (1, 8)
    """
    cols = _choose(columns)
    headers = ("strategy", *(c.header for c in cols))
    head = "".join(f'<th style="padding:2px 8px">{html.escape(h)}</th>' for h in headers)
    body = []
    for report in reports:
        cells = "".join(
            f'<td data-figure="{html.escape(c.key)}" style="padding:2px 8px;text-align:right;white-space:nowrap">'
            f"{html.escape(c.cell(report))}</td>"
            for c in cols
        )
        body.append(
            f'<tr data-strategy="{html.escape(report.strategy)}"><td style="padding:2px 8px">'
            f"{html.escape(report.strategy)}</td>{cells}</tr>"
        )
    return f'<table class="offload-lab-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def report_table_text(
    reports: Iterable[Report], labels: Iterable[str] | None = None, *, columns: Iterable[str | Column] = REPORT_COLUMNS,
    label_header: str | None = "run",
) -> str:
    """Several reports as an aligned plain-text table, one row each (a terminal, a log: ``offload-lab compare``).

    >>> from widgetlib.measure.report import Report
    >>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
    ...            peak_rss_bytes=3 * 10**8, load_s=1.0, forward_s=0.1)
    >>> print(report_table_text([r], columns=["outcome", "peak_rss_bytes", "peak_ratio", "load_s"]))
    run     outcome  peak RSS (absolute)  x checkpoint (peak above baseline)    load
    normal  ok                    300 MB                               2.00x  1.00 s
    """
    header, rows, right = _grid(reports, labels, label_header, columns)
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right, strict=True)).rstrip()
        for row in table
    )


def report_table_markdown(
    reports: Iterable[Report], labels: Iterable[str] | None = None, *, columns: Iterable[str | Column] = REPORT_COLUMNS,
    label_header: str | None = "run",
) -> str:
    """Several reports as a Markdown table (a lesson's text cell, a README), one row each; ``label_header=None``
    leaves out the label column.

    >>> from widgetlib.measure.report import Report
    >>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
    ...            peak_rss_bytes=3 * 10**8, load_s=1.0)
    >>> print(report_table_markdown([r], ["A"], columns=["outcome", "peak_above_baseline_bytes", "load_s"]))
    | run | outcome | peak above baseline | load |
    |---|---|---:|---:|
    | A | ok | 200 MB | 1.00 s |
    """
    header, rows, right = _grid(reports, labels, label_header, columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "".join("---:|" if r else "---|" for r in right)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report_line(report: Report) -> str:
    """One short line: strategy, outcome, peak (above baseline, x the checkpoint), times. ``repr(report)``.

    >>> from widgetlib.measure.report import Report
    >>> report_line(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
    ...                    peak_rss_bytes=3 * 10**8, load_s=1.0, forward_s=0.1))
    '<Report normal: ok, peak 300 MB (+200 MB = 2.00x the checkpoint), load 1.00 s, forward 0.100 s>'
    """
    def cell(key: str) -> str:
        return COLUMNS[key].cell(report)

    parts = [f"{report.strategy}: {report.outcome}"]
    if report.peak_rss_bytes is not None:
        peak = f"peak {cell('peak_rss_bytes')}"
        if report.peak_above_baseline_bytes is not None:
            ratio = f" = {cell('peak_ratio')} the checkpoint" if report.peak_ratio is not None else ""
            peak += f" (+{cell('peak_above_baseline_bytes')}{ratio})"
        parts.append(peak)
    if report.startup_s is not None:
        parts.append(f"started in {report.startup_s:.2f} s")
    if report.load_s is not None:
        parts.append(f"load {cell('load_s')}")
    if report.forward_s is not None:
        parts.append(f"forward {cell('forward_s')}")
    return f"<Report {', '.join(parts)}>"
