"""CompareBoard: the four strategies on one checkpoint, one after another, overlaid on one plot, plus a
table; and a sweep of offload_folder over max_memory (peak RAM above baseline and forward latency against
max_memory)."""

from __future__ import annotations

import html
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..core.errors import OptionError
from ..core.options import RUN_DEFAULTS
from ..core.registry import check_strategy, get_strategy, strategy_color, strategy_names
from ..core.sizes import format_bytes, parse_size
from ..measure.render import report_table_html
from ..measure.report import Report
from ._base import _budget_text, _LabWidget, _max_memory_text, _text_or_none
from ._static import StaticCopy
from .plot import BYTES_PER_MB

__all__ = ["CompareBoard", "default_sweep_values", "write_html"]

SWEEP_POINTS = 4


def default_sweep_values(largest_tensor_bytes: int, total_bytes: int, points: int = SWEEP_POINTS) -> list[int]:
    """``points`` max_memory values evenly spaced from the largest tensor (the least that can work) to the
    whole model (nothing offloaded), smallest first.

    >>> default_sweep_values(10, 100)
    [10, 40, 70, 100]
    """
    if points < 2 or total_bytes <= largest_tensor_bytes:
        return [max(largest_tensor_bytes, total_bytes)]
    step = (total_bytes - largest_tensor_bytes) / (points - 1)
    return [round(largest_tensor_bytes + i * step) for i in range(points)]


class CompareBoard(_LabWidget):
    """Run several strategies (default: every registered strategy) on one checkpoint, one after another, each in a fresh
    process; overlay their RAM timelines on ``.plot`` and show their figures in one table.

    :meth:`run` blocks and returns the Reports (also in ``.reports``); the Run button does the same in the
    background. :meth:`sweep` runs offload_folder at several ``max_memory`` values and plots peak RAM above
    baseline and forward latency against max_memory on ``.sweep_figure``. ``max_memory`` and ``budget`` apply as in
    :class:`~widgetlib.widgets.StrategyPanel`; ``projector=True`` draws everything larger, for a classroom
    screen. The plot shows each strategy's peak in its legend entry (and the table below it), so the four
    figures never print on top of each other.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> board = CompareBoard(make_checkpoint(size="8MB", shards=2), strategies=("normal", "manual_shards"))
    >>> [r.outcome for r in board.run()], len(board.plot.legend_names())
    (['ok', 'ok'], 2)
    """

    _noun = "board"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        *,
        size: str | int | None = None,
        max_memory: str | int | None = RUN_DEFAULTS.max_memory,
        budget: str | int | None = RUN_DEFAULTS.budget,
        strategies: Sequence[str] | None = None,
        projector: bool = False,
    ) -> None:
        # None: every registered strategy, in registry order.
        self.strategies = tuple(check_strategy(s) for s in (strategy_names() if strategies is None else strategies))
        super().__init__(checkpoint, size, projector=projector)
        self._sweep_static = StaticCopy()
        self.reports: list[Report] = []
        self.sweep_reports: list[Report] = []
        self.max_memory_text = _max_memory_text(max_memory)
        self.budget_text = _budget_text(budget)
        self.sweep_button = w.Button(description="Sweep max_memory", icon="sliders",
                                     tooltip="offload_folder at several max_memory values")
        self.sweep_button.on_click(lambda _button: self.start_sweep())
        self.table = w.HTML("")
        self.sweep_figure = self._new_sweep_figure(self.projector)
        self._sweep_box = w.Box([self.sweep_figure], layout=w.Layout(display="none"))
        self._sweep_values: list[str | int] | None = None
        self._results_lock = threading.Lock()
        self.widget = w.VBox([
            w.HBox([self.checkpoint_text, self.size_text]),
            w.HBox([self.max_memory_text, self.budget_text]),
            w.HBox([self.run_button, self.stop_button, self.sweep_button, self.build_progress]),
            self.status,
            self.follow,
            self.plot.figure,
            self.message_box,
            self.table,
            self._sweep_box,
        ])
        self.widget.add_class("offload-lab-board")

    # ------------------------------------------------------------------------------------------- API

    def start(self) -> bool:
        """Start the comparison in the background (what the Run button does); False if already busy.

        >>> board = CompareBoard("/no/such/folder")
        >>> board.start(), board.wait(30), "/no/such/folder" in board.message
        (True, True, True)
        """
        return self._launch(self._compare_job)

    def run(self, timeout_s: float | None = None) -> list[Report]:
        """Run every strategy in turn and block until done; return their Reports (also ``.reports``).

        If a run cannot start (another run active, a wrong path) the message shows in the widget and the
        Reports gathered so far are returned; after Stop, the cancelled run's Report is the last one.

        >>> CompareBoard("/no/such/folder").run()
        []
        """
        if self.start():
            self.wait(timeout_s)
            self._show_static_copies()
        return list(self.reports)

    def start_sweep(self, max_memory_values: Sequence[str | int] | None = None) -> bool:
        """Start :meth:`sweep` in the background (what the Sweep button does); False if already busy.

        >>> board = CompareBoard("/no/such/folder")
        >>> board.start_sweep(["50MB"]), board.wait(30), board.sweep_reports
        (True, True, [])
        """
        self._sweep_values = None if max_memory_values is None else list(max_memory_values)
        return self._launch(self._sweep_job)

    def sweep(self, max_memory_values: Sequence[str | int] | None = None,
              timeout_s: float | None = None) -> list[Report]:
        """Run offload_folder at each ``max_memory`` value, smallest first, and return the Reports.

        Default values: 4 from the largest tensor to the full model size. Each run draws on ``.plot`` as it
        goes; its peak above baseline and forward latency are added to ``.sweep_figure`` when it ends.

        >>> board = CompareBoard("/no/such/folder")
        >>> board.sweep(["lots"]), board.message
        ([], "max_memory='lots' is not a size; write it like 300MB, 1.5GiB or 4096 (bytes).")
        """
        if self.start_sweep(max_memory_values):
            self.wait(timeout_s)
            self._show_static_copies()
            self._sweep_static.show(go.Figure(self.sweep_figure), what="max_memory sweep")
        return list(self.sweep_reports)

    def sweep_points(self) -> dict[str, int]:
        """How many points each sweep trace shows (``"peak above baseline"``, ``"forward latency"``).

        >>> CompareBoard().sweep_points()
        {'peak above baseline': 0, 'forward latency': 0}
        """
        return {t.name: 0 if t.x is None else len(t.x) for t in self.sweep_figure.data}

    # ------------------------------------------------------------------------------------ internals

    def _common(self) -> tuple[dict[str, Any], int | None, str | None]:
        budget = _text_or_none(self.budget_text.value)
        budget_bytes = parse_size(budget, name="budget") if budget is not None else None
        max_memory = _text_or_none(self.max_memory_text.value)
        if max_memory is not None:
            parse_size(max_memory, name="max_memory")
        return {"budget": budget}, budget_bytes, max_memory

    def _run_one(self, folder: Path, strategy: str, options: dict[str, Any], *, checkpoint_bytes: int,
                 budget_bytes: int | None, note: str | None = None) -> Report | None:
        finished: list[Report] = []
        ended = threading.Event()

        def on_done(report: Report) -> None:
            finished.append(report)
            ended.set()

        # on_done comes after the plot drew the run's end (peak line): waiting for it, not for handle.wait(),
        # means the next run never starts under a half-finished figure.
        if self._start_run(folder, strategy, options, checkpoint_bytes=checkpoint_bytes,
                           budget_bytes=budget_bytes, note=note, on_done=on_done) is None:
            return None
        ended.wait()
        report = finished[0]
        if not report.ok:
            self._show_message(f"{strategy}: {report.error or report.outcome}")
        return report

    def _compare_job(self) -> None:
        from ..core.hf_folder import inspect_checkpoint

        base, budget_bytes, max_memory = self._common()
        folder = self._resolve_checkpoint()
        info = inspect_checkpoint(folder)
        with self._results_lock:
            self.reports = []
        self.table.value = ""
        self.plot.clear()
        for k, strategy in enumerate(self.strategies, 1):
            self._set_status(f"{k}/{len(self.strategies)}: starting {strategy}…")
            options = dict(base)
            if get_strategy(strategy).accepts("max_memory"):
                options["max_memory"] = max_memory
            report = self._run_one(folder, strategy, options, checkpoint_bytes=info.total_bytes,
                                   budget_bytes=budget_bytes)
            if report is None:
                break
            with self._results_lock:
                self.reports.append(report)
                self.table.value = self._sized(report_table_html(self.reports))
            if self._stop_requested.is_set():
                break
        done = len(self.reports)
        self._set_status(
            f"compared {done} of {len(self.strategies)} strategies on {folder.name} "
            f"({format_bytes(info.total_bytes)})"
        )

    def _sweep_job(self) -> None:
        from ..core.hf_folder import inspect_checkpoint

        base, budget_bytes, _max_memory = self._common()
        values: list[int] | None = None
        if self._sweep_values is not None:  # typos fail before a checkpoint is built or inspected
            if not self._sweep_values:
                raise OptionError("max_memory_values is empty; give at least one size, like ['50MB', '100MB'].",
                                  kind="bad_option")
            values = sorted(parse_size(v, name="max_memory") for v in self._sweep_values)
        folder = self._resolve_checkpoint()
        info = inspect_checkpoint(folder)
        if values is None:
            values = default_sweep_values(info.largest_tensor_bytes, info.total_bytes)
        with self._results_lock:
            self.sweep_reports = []
        self.plot.clear()
        self._reset_sweep_figure()
        self._sweep_box.layout.display = None
        for k, value in enumerate(values, 1):
            note = f"max_memory {format_bytes(value)}"
            self._set_status(f"sweep {k}/{len(values)}: offload_folder with {note}…")
            options = {**base, "max_memory": value}
            report = self._run_one(folder, "offload_folder", options, checkpoint_bytes=info.total_bytes,
                                   budget_bytes=budget_bytes, note=note)
            if report is None:
                break
            with self._results_lock:
                self.sweep_reports.append(report)
            self._draw_sweep()
            if self._stop_requested.is_set():
                break
        self._set_status(f"sweep done: {len(self.sweep_reports)} of {len(values)} max_memory values")

    # ---------------------------------------------------------------------------------- sweep figure

    @staticmethod
    def _new_sweep_figure(projector: bool = False) -> go.FigureWidget:
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        color = strategy_color("offload_folder")
        # Above baseline, as the table under it and the load plot read: what the load added at its peak.
        fig.add_trace(go.Scatter(x=[], y=[], name="peak above baseline", mode="lines+markers",
                                 line={"color": color}, hovertemplate="max_memory %{x:.1f} MB: peak +%{y:.1f} MB "
                                 "above baseline<extra></extra>"), secondary_y=False)
        fig.add_trace(go.Scatter(x=[], y=[], name="forward latency", mode="lines+markers",
                                 line={"color": "#9467bd", "dash": "dash"},
                                 hovertemplate="max_memory %{x:.1f} MB: forward %{y:.3f} s<extra></extra>"),
                      secondary_y=True)
        fig.update_layout(title={"text": "offload_folder: peak RAM above baseline and forward latency against "
                                         "max_memory"},
                          template="plotly_white", height=520 if projector else 380,
                          font={"size": 19 if projector else 12}, legend={"orientation": "h", "y": -0.2})
        if projector:
            fig.update_traces(line_width=3.5, marker_size=11)
        fig.update_xaxes(title_text="max_memory (MB)")
        fig.update_yaxes(title_text="peak RAM above baseline (MB)", secondary_y=False, rangemode="tozero")
        fig.update_yaxes(title_text="forward latency (s)", secondary_y=True, rangemode="tozero")
        return go.FigureWidget(fig)

    def _reset_sweep_figure(self) -> None:
        with self.sweep_figure.batch_update():
            for trace in self.sweep_figure.data:
                trace.x, trace.y = [], []

    def _draw_sweep(self) -> None:
        # Only the board's worker thread calls this (once per run), so the sweep figure has one mutator.
        with self._results_lock:
            done = [r for r in self.sweep_reports
                    if r.ok and r.max_memory_bytes is not None and r.peak_above_baseline_bytes is not None]
        xs = [r.max_memory_bytes / BYTES_PER_MB for r in done]
        with self.sweep_figure.batch_update():
            peak, forward = self.sweep_figure.data
            peak.x, peak.y = xs, [r.peak_above_baseline_bytes / BYTES_PER_MB for r in done]
            forward.x, forward.y = xs, [r.forward_s for r in done]

    # --------------------------------------------------------------------------------------- display

    def _html_parts(self) -> list[w.HTML]:
        return [self.status, self.message_box, self.table]

    def __repr__(self) -> str:
        checkpoint = _text_or_none(self.checkpoint_text.value) or "(built on Run)"
        done = ", ".join(f"{r.strategy}: {r.outcome} {format_bytes(r.peak_rss_bytes)}" for r in self.reports)
        return f"CompareBoard(strategies={list(self.strategies)}, checkpoint={checkpoint!r}; {done or 'not run'})"


def write_html(reports: Sequence[Report], path: str | Path, *, title: str = "Offload Lab: four ways to load",
               projector: bool = False) -> Path:
    """Write the reports' timelines, overlaid, and their table as one self-contained HTML page.

    plotly.js is embedded, so the page opens offline on a classroom screen (``offload-lab compare --html``);
    ``projector=True`` draws the figure and the table larger for that screen.

    >>> import tempfile
    >>> from widgetlib.measure.report import Report
    >>> out = write_html([Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1)],
    ...                  tempfile.mkdtemp() + "/compare.html")
    >>> "plotly" in out.read_text()[:200000]
    True
    """
    from .plot import MemoryPlot

    plot = MemoryPlot(title=title, projector=projector)
    for report in reports:
        plot.add_report(report)
    figure_html = plot.static_figure().to_html(include_plotlyjs=True, full_html=False)
    plot.join()
    checkpoints = sorted({r.checkpoint for r in reports})
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif{';font-size:150%' if projector else ''}'><h1>{html.escape(title)}</h1>"
        f"<p>Checkpoint: {html.escape(', '.join(checkpoints))}</p>{figure_html}{report_table_html(list(reports))}"
        "</body></html>"
    )
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out
