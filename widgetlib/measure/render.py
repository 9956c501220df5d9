"""One renderer for Report figures: computed once by :func:`report_figures`, then written as an HTML card, an HTML
table, a plain-text table or a Markdown table, and as the one line ``repr(report)`` prints. The widgets' card and
table, ``Report._repr_html_`` and the tables the lessons and the CLI print can therefore never disagree.

Plain strings only (no widget or plotting import): this is the measure layer.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.sizes import format_bytes

if TYPE_CHECKING:
    from .report import Report

__all__ = [
    "FIGURE_KEYS",
    "error_html",
    "report_card_html",
    "report_figures",
    "report_line",
    "report_table_html",
    "report_table_markdown",
    "report_table_text",
]

# The columns of every table and card, in order.
FIGURE_KEYS = ("outcome", "peak RSS", "above baseline", "x checkpoint", "predicted peak", "load",
               "forward", "offload written")


def report_figures(report: Report) -> dict[str, str]:
    """The figures of one Report as the widgets print them, keyed by column name ("–" where unknown).

    >>> from widgetlib.measure.report import Report
    >>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
    ...            peak_rss_bytes=3 * 10**8, load_s=1.0, forward_s=0.1)
    >>> figures = report_figures(r)
    >>> figures["peak RSS"], figures["x checkpoint"], figures["load"], figures["forward"]
    ('300 MB', '2.00x', '1.00 s', '0.100 s')
    """
    ratio = report.peak_ratio
    written = format_bytes(report.offload_folder_bytes)
    if report.offload_folder_files:
        written += f" in {report.offload_folder_files} file(s)"
    return {
        "outcome": report.outcome,
        "peak RSS": format_bytes(report.peak_rss_bytes),
        "above baseline": format_bytes(report.peak_above_baseline_bytes),
        "x checkpoint": f"{ratio:.2f}x" if ratio is not None else "–",
        "predicted peak": format_bytes(report.predicted_peak_rss_bytes),
        "load": f"{report.load_s:.2f} s" if report.load_s is not None else "–",
        "forward": f"{report.forward_s:.3f} s" if report.forward_s is not None else "–",
        "offload written": written,
    }


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
    """The result card of one run: peak RSS, ratio to the checkpoint, times, offload bytes, prediction.

    >>> from widgetlib.measure.report import Report
    >>> card = report_card_html(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8))
    >>> 'data-figure="peak RSS"' in card
    True
    """
    figures = report_figures(report)
    rows = "".join(
        f'<tr><th style="text-align:left;padding-right:12px">{html.escape(key)}</th>'
        f'<td data-figure="{html.escape(key)}">{html.escape(value)}</td></tr>'
        for key, value in figures.items()
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


def report_table_html(reports: list[Report]) -> str:
    """Several reports as one HTML table, one row per report (``<tr data-strategy=...>``).

    >>> from widgetlib.measure.report import Report
    >>> table = report_table_html([Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1)])
    >>> table.count('<tr data-strategy="normal">')
    1
    """
    head = "".join(f'<th style="padding:2px 8px">{html.escape(k)}</th>' for k in ("strategy", *FIGURE_KEYS))
    body = []
    for report in reports:
        figures = report_figures(report)
        cells = "".join(
            f'<td data-figure="{html.escape(k)}" style="padding:2px 8px;text-align:right">{html.escape(v)}</td>'
            for k, v in figures.items()
        )
        body.append(
            f'<tr data-strategy="{html.escape(report.strategy)}"><td style="padding:2px 8px">'
            f"{html.escape(report.strategy)}</td>{cells}</tr>"
        )
    return f'<table class="offload-lab-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _labels(reports: Sequence[Report], labels: Sequence[str] | None) -> list[str]:
    names = list(labels) if labels is not None else [r.strategy for r in reports]
    if len(names) != len(reports):
        raise ValueError(f"{len(names)} labels for {len(reports)} reports; give one label per report.")
    return names


def report_table_text(reports: Sequence[Report], labels: Sequence[str] | None = None) -> str:
    """Several reports as an aligned plain-text table, one row each (a terminal, a log).

    >>> from widgetlib.measure.report import Report
    >>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
    ...            peak_rss_bytes=3 * 10**8, load_s=1.0, forward_s=0.1)
    >>> print(report_table_text([r]).splitlines()[1].split())
    ['normal', 'ok', '300', 'MB', '200', 'MB', '2.00x', '–', '1.00', 's', '0.100', 's', '0', 'B']
    """
    names = _labels(reports, labels)
    rows = [["run", *FIGURE_KEYS]] + [[n, *report_figures(r).values()] for n, r in zip(names, reports, strict=True)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def report_table_markdown(reports: Sequence[Report], labels: Sequence[str] | None = None) -> str:
    """Several reports as a Markdown table (a lesson's text cell, a README), one row each.

    >>> from widgetlib.measure.report import Report
    >>> table = report_table_markdown([Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1)], ["A"])
    >>> table.splitlines()[2].startswith("| A | ok |")
    True
    """
    names = _labels(reports, labels)
    lines = ["| run | " + " | ".join(FIGURE_KEYS) + " |", "|---|---|" + "---:|" * (len(FIGURE_KEYS) - 1)]
    for name, report in zip(names, reports, strict=True):
        lines.append(f"| {name} | " + " | ".join(report_figures(report).values()) + " |")
    return "\n".join(lines)


def report_line(report: Report) -> str:
    """One short line: strategy, outcome, peak (above baseline, x the checkpoint), times. ``repr(report)``.

    >>> from widgetlib.measure.report import Report
    >>> report_line(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
    ...                    peak_rss_bytes=3 * 10**8, load_s=1.0, forward_s=0.1))
    '<Report normal: ok, peak 300 MB (+200 MB = 2.00x the checkpoint), load 1.00 s, forward 0.100 s>'
    """
    parts = [f"{report.strategy}: {report.outcome}"]
    if report.peak_rss_bytes is not None:
        peak = f"peak {format_bytes(report.peak_rss_bytes)}"
        if report.peak_above_baseline_bytes is not None:
            ratio = f" = {report.peak_ratio:.2f}x the checkpoint" if report.peak_ratio is not None else ""
            peak += f" (+{format_bytes(report.peak_above_baseline_bytes)}{ratio})"
        parts.append(peak)
    if report.startup_s is not None:
        parts.append(f"started in {report.startup_s:.2f} s")
    if report.load_s is not None:
        parts.append(f"load {report.load_s:.2f} s")
    if report.forward_s is not None:
        parts.append(f"forward {report.forward_s:.3f} s")
    return f"<Report {', '.join(parts)}>"
