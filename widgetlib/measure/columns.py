"""The column catalogue: every figure a table shows of a :class:`~widgetlib.measure.report.Report`, defined once.

A :class:`Column` says what a figure is (its ``key``), what a table's head calls it (``header``, which names the
figure's basis: an absolute RSS, or RSS above the run's baseline), its ``unit``, how it is derived from a Report
and how it is printed. Every table of reports (the widgets' card and table, the text table ``offload-lab
compare`` prints, teach's Markdown tables, the lessons' tables, the benchmark's) is a choice of these columns
(:func:`widgetlib.measure.render.report_table_markdown` and its siblings write them), so one figure reads the
same everywhere.

A column reads its value from the Report attribute named by its key unless it says how to derive it; the
figures derived from several fields (``predicted_above_baseline_bytes``, ``bytes_on``) are the Report's own.

Plain strings only (no widget, plotting or torch import): this is the measure layer.

>>> from widgetlib.measure.report import Report
>>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
...            peak_rss_bytes=3 * 10**8, predicted_peak_rss_bytes=31 * 10**7, load_s=1.0)
>>> [(COLUMNS[k].header, COLUMNS[k].cell(r)) for k in ("peak_rss_bytes", "predicted_above_baseline_bytes",
...                                                     "load_s", "forward_s")]
[('peak RSS (absolute)', '300 MB'), ('predicted above baseline', '210 MB'), ('load', '1.00 s'), ('first forward', '–')]
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.sizes import format_bytes

if TYPE_CHECKING:
    from .report import Report

__all__ = ["BASES", "COLUMNS", "Column", "column", "columns", "kept_at_end"]

# What an RSS figure is measured from. Every column of RSS bytes names one in its header.
BASES = ("absolute", "above baseline", "above the load start")

MISSING = "–"  # an unknown figure (a run that stopped before it, a platform that cannot say)


@dataclass(frozen=True)
class Column:
    """One figure of a Report as tables show it.

    ``unit`` is ``"bytes"``, ``"s"``, ``"ratio"``, ``"count"`` or ``"text"``; ``basis`` (RSS figures only) is one
    of :data:`BASES`, and the header says it. ``derive`` turns a Report into the value (default: the attribute
    named ``key``); ``format`` turns a value that is not None into the cell's text.

    >>> c = Column("load_s", "load", "s", format=lambda v: f"{v:.2f} s")
    >>> c.cell(type("Run", (), {"load_s": 1.234})()), c.cell(type("Run", (), {"load_s": None})()), c.numeric
    ('1.23 s', '–', True)
    """

    key: str
    header: str
    unit: str
    basis: str | None = None
    derive: Callable[[Any], Any] | None = None
    format: Callable[[Any], str] = str

    def value(self, report: Report | Any) -> Any:
        """The figure itself (bytes, seconds, a ratio...), or None where the run does not have it."""
        return self.derive(report) if self.derive is not None else getattr(report, self.key)

    def cell(self, report: Report | Any) -> str:
        """The figure as a table prints it ("–" where unknown)."""
        value = self.value(report)
        return MISSING if value is None else self.format(value)

    @property
    def numeric(self) -> bool:
        """True for figures a table aligns right."""
        return self.unit != "text"


def _seconds(digits: int) -> Callable[[float], str]:
    return lambda v: f"{v:.{digits}f} s"


def _ratio(v: float) -> str:
    return f"{v:.2f}x"


def _offload_written(report: Any) -> tuple[int, int] | None:
    """(bytes, files) a run wrote into its offload folder; None for a strategy that has none and wrote nothing."""
    from ..core.registry import get_strategy, strategy_names  # the registry says which strategies offload

    files, written = report.offload_folder_files or 0, report.offload_folder_bytes or 0
    offloads = report.strategy in strategy_names() and get_strategy(report.strategy).accepts("offload_folder")
    return (written, files) if offloads or files or written else None


def _choose_when(report: Any) -> str:
    from ..core.registry import choose_when

    return choose_when().get(report.strategy, "")


def kept_at_end(report: Report) -> tuple[int | None, int | None]:
    """Anonymous and file-backed RSS a run holds at its last sample, above the first sample of the load (at or
    after its "ready" event): what the loaded model keeps. ``(None, None)`` where the probe has no split.

    >>> from widgetlib.measure.samples import Event, MemorySample
    >>> from widgetlib.measure.timeline import Timeline
    >>> from widgetlib.measure.report import Report
    >>> tl = Timeline(0.0, [MemorySample(-0.1, 90, 60, 30, None), MemorySample(0.0, 100, 70, 30, None),
    ...                     MemorySample(1.0, 250, 120, 130, None)], [Event(0.0, "ready", "ready")])
    >>> kept_at_end(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=100, timeline=tl))
    (50, 100)
    """
    samples = report.timeline.samples
    ready = next((e.t_s for e in report.timeline.events if e.kind == "ready"), None)
    if not samples or ready is None:
        return None, None
    start = samples[min(bisect_left([s.t_s for s in samples], ready), len(samples) - 1)]
    last = samples[-1]
    if last.rss_anon_bytes is None or start.rss_anon_bytes is None:
        return None, None
    return last.rss_anon_bytes - start.rss_anon_bytes, last.rss_file_bytes - start.rss_file_bytes


def _catalogue(*cols: Column) -> dict[str, Column]:
    return {c.key: c for c in cols}


COLUMNS: dict[str, Column] = _catalogue(
    Column("strategy", "strategy", "text"),
    Column("outcome", "outcome", "text"),
    Column("finished", "finished?", "text", derive=lambda r: r.outcome == "ok",
           format=lambda ok: "yes" if ok else "no"),
    Column("checkpoint_bytes", "checkpoint", "bytes", format=format_bytes),
    Column("baseline_rss_bytes", "baseline RSS (absolute)", "bytes", "absolute", format=format_bytes),
    Column("peak_rss_bytes", "peak RSS (absolute)", "bytes", "absolute", format=format_bytes),
    Column("peak_above_baseline_bytes", "peak above baseline", "bytes", "above baseline", format=format_bytes),
    Column("peak_ratio", "x checkpoint (peak above baseline)", "ratio", "above baseline", format=_ratio),
    Column("predicted_peak_rss_bytes", "predicted peak RSS (absolute)", "bytes", "absolute", format=format_bytes),
    Column("predicted_above_baseline_bytes", "predicted above baseline", "bytes", "above baseline",
           format=format_bytes),
    Column("anon_kept_bytes", "anonymous at the end (above the load start)", "bytes", "above the load start",
           derive=lambda r: kept_at_end(r)[0], format=format_bytes),
    Column("file_kept_bytes", "file-backed at the end (above the load start)", "bytes", "above the load start",
           derive=lambda r: kept_at_end(r)[1], format=format_bytes),
    Column("load_s", "load", "s", format=_seconds(2)),
    Column("forward_s", "first forward", "s", format=_seconds(3)),
    Column("steady_forward_s", "steady forward", "s", format=_seconds(3)),
    Column("time_to_first_forward_s", "load + first forward", "s", format=_seconds(2)),
    Column("offload_written", "offload folder written", "bytes", derive=_offload_written,
           format=lambda v: f"{format_bytes(v[0])} in {v[1]} file(s)"),
    Column("max_memory_bytes", "max_memory", "bytes", format=format_bytes),
    Column("disk_bytes", "weights on disk", "bytes", derive=lambda r: r.bytes_on("disk"), format=format_bytes),
    Column("major_faults", "major faults", "count"),
    Column("disk_read_bytes", "read from disk", "bytes", format=format_bytes),
    Column("disk_read_forward_bytes", "read from disk by the forwards", "bytes", format=format_bytes),
    Column("oom_kills", "OOM kills", "count"),
    Column("budget_bytes", "budget (absolute)", "bytes", "absolute", format=format_bytes),
    Column("budget_mode", "budget enforced by", "text"),
    Column("choose_when", "choose it when", "text", derive=_choose_when),
)
"""Every column, by key."""


def column(key: str) -> Column:
    """The catalogue's column ``key``; a key it does not hold is refused with the keys it does.

    >>> column("peak_above_baseline_bytes").basis
    'above baseline'
    >>> column("peak")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    KeyError: "no report column 'peak'; use one of strategy, outcome, finished, checkpoint_bytes, ..."
    """
    try:
        return COLUMNS[key]
    except KeyError:
        raise KeyError(f"no report column {key!r}; use one of {', '.join(COLUMNS)}.") from None


def columns(chosen: Iterable[str | Column]) -> tuple[Column, ...]:
    """A table's choice of columns: keys of the catalogue, or a :class:`Column` where a table needs a header of
    its own for a catalogued figure (``dataclasses.replace(column(key), header=...)``).

    >>> [c.header for c in columns(["outcome", "load_s"])]
    ['outcome', 'load']
    """
    return tuple(c if isinstance(c, Column) else column(c) for c in chosen)
