"""The figures a result card and a comparison table show, formatted once, so both (and the tests) agree."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from ..core.sizes import format_bytes

if TYPE_CHECKING:
    from ..measure.report import Report

__all__ = ["error_html", "report_card_html", "report_figures", "report_table_html"]

# Same column meanings (and decimals) as widgetlib.measure.report.format_table, which the CLI prints.
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
