"""MemoryPlot: a live plotly timeline of a run's RAM, fed from the runner's background threads.

Threading, as found to work with plotly's FigureWidget in JupyterLab (``tests/browser`` watches it): the runner calls
:meth:`MemoryPlot.add_sample` / :meth:`MemoryPlot.add_event` from its sampler and reader threads; those only
append to a buffer under a lock. One redraw thread per plot, started on demand, is the only code that mutates
the ``FigureWidget``: it redraws at most ``10`` times a second inside ``fig.batch_update()`` (each update resends
whole arrays, so a faster rate makes the browser fall behind), and ends by itself once no run is live and
nothing is left to draw. Buffers stay bounded: past ``max_points`` samples a run keeps the larger-RSS sample of
each pair (so the peak survives) and from then on one sample per 2, 4, 8, ... readings.

Units on the figure: x is seconds since the load started (the run's "ready" event), y is MB (10**6 bytes, the
decimal unit :func:`~widgetlib.core.sizes.format_bytes` prints), above the run's baseline by default.
"""

from __future__ import annotations

import itertools
import threading
from bisect import bisect_right
from copy import deepcopy
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from ..core.registry import strategies, strategy_color
from ..core.sizes import format_bytes, format_signed_bytes
from ..measure.memory import Event, MemorySample
from ..measure.thinning import ThinnedSamples
from ._marks import BYTES_PER_MB, EVENT_SYMBOLS, hline, legend_note, name_markers, run_shade, shared_lines
from ._readout import PlotReadout
from ._static import StaticCopy

if TYPE_CHECKING:
    from ..measure.report import Report

__all__ = ["BYTES_PER_MB", "MemoryPlot", "to_mb"]


# Secondary traces of a run: which Report/MemorySample field, and how it is drawn relative to the RSS line.
_SERIES = {
    "rss": {"dash": "solid", "width": 2.5, "what": "RSS"},
    "anon": {"dash": "dash", "width": 1.2, "what": "anonymous RSS (heap copies)"},
    "file": {"dash": "dot", "width": 1.2, "what": "file-backed RSS (mmap'd pages)"},
    "gpu": {"dash": "dashdot", "width": 1.5, "what": "GPU memory"},
}
# y="above_baseline": RAM the load added (the default); y="rss": the whole process.
Y_MODES = ("above_baseline", "rss")
# projector=True: text, lines and markers this much larger.
_PROJECTOR_SCALE = 1.6
# The legend sits under the plot, in rows: about this many characters of entries fit in one row of a plot of
# plotly's default width, and each row adds this much height, so the plotting area keeps its size.
_LEGEND_ROW_CHARS = 95
# About how wide the plotting area is: plotly's figure (700 px unless told otherwise) less its margins; the
# legend is under the plot, so it takes none of the width.
_PLOT_WIDTH_PX = 700 - 80 - 20
_LEGEND_ROW_PX = 22
# What the plotting area's height leaves of the figure's (height_px): the title margin above, the axis title,
# tick labels and the legend's first row below (measured in Chromium: a plot area 270-276 px high in a 480 px
# figure). The legend's further rows grow the figure, not this.
_NOT_PLOT_HEIGHT_PX = 210


def to_mb(n_bytes: int | float | None) -> float | None:
    """Bytes to the plot's y unit, MB (10**6 bytes).

    >>> to_mb(250_000_000), to_mb(None)
    (250.0, None)
    """
    return None if n_bytes is None else n_bytes / BYTES_PER_MB


def _colors(runs: list[_Run]) -> dict[str, str]:
    """Each run's colour: its strategy's hue (the registry's, the same in every plot of every lesson), in a
    shade of its own for the second, third, ... run of that strategy, so no two runs on one figure look alike."""
    seen: dict[str, int] = {}
    colors = {}
    for run in runs:
        k = seen.get(run.strategy, 0)
        seen[run.strategy] = k + 1
        colors[run.run_id] = run_shade(strategy_color(run.strategy), k)
    return colors


@dataclass
class _Run:
    """One run's buffered data; guarded by MemoryPlot._lock."""

    run_id: str
    strategy: str
    note: str | None
    checkpoint_bytes: int | None
    budget_bytes: int | None
    max_points: int
    zero_at_ready: bool
    events: list[Event] = field(default_factory=list)
    gpu: list[tuple[float, int]] = field(default_factory=list)
    baseline_rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    startup_s: float | None = None
    live: bool = True
    ready_t_s: float | None = None
    budget_mode: str | None = None
    color: str = ""

    def __post_init__(self) -> None:
        # Bounded as the module docstring says, by the Sampler's own rule.
        self.thinned = ThinnedSamples(self.max_points)

    def keep(self, sample: MemorySample) -> None:
        self.thinned.add(sample)

    def all_samples(self) -> list[MemorySample]:
        return self.thinned.samples()

    def t_zero(self) -> float | None:
        """The x origin on the run's own clock: the "ready" event (the load starts), 0 for a run that has no
        such event (this kernel watched by ``teach.watch_this_kernel``, or a run that failed before its load);
        None while a run's load has not started yet (nothing of it is drawn then)."""
        if self.ready_t_s is not None:
            return self.ready_t_s
        if not self.zero_at_ready or not self.live:
            return 0.0
        return None

    def load_samples(self, t_zero: float) -> list[MemorySample]:
        """The samples from the load start on (start-up is not part of the load), on the run's own clock: the
        shift to the load's time axis is made when the columns are drawn, outside the lock."""
        return [s for s in self.all_samples() if s.t_s >= t_zero]

    def baseline_sample(self, samples: list[MemorySample], baseline: int | None) -> MemorySample | None:
        """The sample where the anon/file split is read at the baseline: the load's first one, or (a run drawn
        from a Report without a "ready" event) the first that reached the baseline."""
        if self.ready_t_s is not None or baseline is None:
            return samples[0] if samples and self.ready_t_s is not None else None
        return next((s for s in samples if s.rss_bytes >= baseline), None)

    def started_in_s(self, t_zero: float) -> float | None:
        """How long the child took from the request to the load start (shown as a note, never as a line)."""
        if self.startup_s is not None:
            return self.startup_s
        if self.ready_t_s is not None and self.ready_t_s > 0:
            return self.ready_t_s  # the runner counts t_s from the request
        before = [s.t_s for s in self.all_samples() if s.t_s < t_zero]
        return t_zero - min(before) if before and self.ready_t_s is not None else None

    def label(self) -> str:
        """The run's full name, as its hover text gives it."""
        return f"{self.strategy} · {self.note}" if self.note else self.strategy

    def short_label(self) -> str:
        """The run's name in the legend: the note cut short (:func:`~._marks.legend_note`)."""
        note = legend_note(self.note)
        return f"{self.strategy} · {note}" if note else self.strategy


class MemoryPlot(PlotReadout):
    """A live RAM timeline: one solid RSS line per run, coloured by strategy, with named event markers and lines.

    A second, third, ... run of one strategy is drawn in a darker or lighter shade of its colour, so that two
    runs of one strategy (two dtypes, two budgets) are told apart; the legend, under the plot, names each run
    with its note cut short (the hover text gives it in full).

    Feed it from any thread: :meth:`begin_run`, then :meth:`add_sample` / :meth:`add_event` as the run goes,
    :meth:`end_run` with the Report (adds the kernel-peak line); or :meth:`add_report` for a finished Report.

    Time zero is the moment the load begins: the run's ``"ready"`` event (the child has imported torch and
    transformers and taken its baseline). What comes before, the child starting, is not drawn; the subtitle
    says how long it took. With ``y="above_baseline"`` (the default) the y axis is RAM above that baseline,
    stated in the subtitle, so a 150 MB load is a 150 MB rise and not a small step on top of ~800 MB of
    libraries; ``y="rss"`` draws the whole process's RSS. A plot where some run has no baseline (a run that
    failed before its load, or this kernel watched with ``teach.watch_this_kernel``) draws RSS.

    Where the platform reports them, anonymous and file-backed RSS are drawn dashed / dotted in the same
    colour; GPU memory dash-dotted. Horizontal lines: the checkpoint size (dotted, one line for runs on the
    same checkpoint), the budget (black, dashed) and each run's kernel peak (dash-dot; its figure is in the
    legend, and on the line when only one run is drawn). Event markers are named ("shard 3/6",
    "load_state_dict", "forward") where the name overlaps no other; hover any marker for its full label.
    ``projector=True`` draws larger text, lines and markers for a classroom screen.

    >>> from widgetlib.measure.memory import Event, MemorySample
    >>> plot = MemoryPlot()
    >>> run_id = plot.begin_run("normal", checkpoint_bytes=20_000_000, budget_bytes=300_000_000)
    >>> plot.add_event(Event(0.2, "imports done: baseline 100 MB", "ready"))
    >>> for i in range(5):
    ...     plot.add_sample(MemorySample(0.2 + 0.1 * i, (100 + 10 * i) * 10**6, None, None, None))
    >>> plot.add_event(Event(0.45, "state dict read", "state_dict_read"))
    >>> plot.flush()
    >>> plot.point_count(run_id), plot.event_count(run_id), plot.y_mode, plot.line_y("budget", run_id)
    (5, 2, 'above_baseline', 200.0)
    """

    def __init__(self, *, title: str = "RAM while loading", max_points: int = 3000, redraw_hz: float = 10.0,
                 height_px: int | None = None, y: str = "above_baseline", projector: bool = False) -> None:
        if y not in Y_MODES:
            raise ValueError(f"y={y!r}; use one of {', '.join(Y_MODES)}")
        self.max_points = int(max_points)
        self.redraw_interval_s = 1.0 / float(redraw_hz)
        self.y = y
        self.projector = bool(projector)
        self.title = title
        self._scale = _PROJECTOR_SCALE if projector else 1.0
        self.height_px = int(height_px or (600 if projector else 480))
        self._lock = threading.Condition()
        self._runs: dict[str, _Run] = {}
        self._dirty: set[str] = set()
        self._structure_changed = False
        self._current: str | None = None
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._flush_requested = 0
        self._flush_done = 0
        self._static: StaticCopy | None = None
        self.redraw_count = 0
        self._draws_since_snapshot = 0
        self.redraw_error: BaseException | None = None
        self.y_mode = y
        self.figure = go.FigureWidget(layout=self._base_layout())

    # ------------------------------------------------------------------------------------ feeding data

    def begin_run(self, strategy: str, *, checkpoint_bytes: int | None = None, budget_bytes: int | None = None,
                  note: str | None = None, replace: bool = False, zero_at_ready: bool | None = None) -> str:
        """Start a new live run and return its id; later samples and events go to it.

        ``note`` is appended to the legend entry (e.g. ``"max_memory 12 MB"``); ``replace=True`` first removes
        earlier runs of the same strategy (a panel shows the latest run of each strategy). ``zero_at_ready``
        (default: True for a registered strategy, which the runner measures) holds the run's samples back until
        its ``"ready"`` event, which becomes time zero; False draws samples at their own ``t_s`` at once.

        >>> plot = MemoryPlot()
        >>> plot.begin_run("manual_shards", checkpoint_bytes=10**7)
        'run-1'
        """
        if zero_at_ready is None:
            zero_at_ready = any(s.name == strategy for s in strategies(unlisted=True))
        with self._lock:
            if replace:
                for old in [r for r in self._runs.values() if r.strategy == strategy]:
                    del self._runs[old.run_id]
                    self._structure_changed = True
            run_id = f"run-{next(self._ids)}"
            self._runs[run_id] = _Run(run_id, strategy, note, checkpoint_bytes, budget_bytes, self.max_points,
                                      zero_at_ready)
            self._current = run_id
            self._dirty.add(run_id)
            self._structure_changed = True
            self._ensure_thread()
        return run_id

    def add_sample(self, sample: MemorySample, run_id: str | None = None) -> None:
        """Buffer one sample (``t_s`` on the run's clock) for ``run_id`` (default: the latest run).

        Cheap and thread-safe: the redraw thread draws it within ~0.1 s.

        >>> plot = MemoryPlot(); run_id = plot.begin_run("this kernel")
        >>> plot.add_sample(MemorySample(0.5, 3 * 10**8, None, None, None)); plot.flush(); plot.point_count()
        1
        """
        with self._lock:
            run = self._runs.get(run_id or self._current or "")
            if run is None:
                return  # a sample for a run that was cleared: nothing to draw it on
            run.keep(sample)
            self._dirty.add(run.run_id)

    def add_event(self, event: Event, run_id: str | None = None) -> None:
        """Buffer one loader event (a marker with a hover label) for ``run_id`` (default: the latest run).

        The first ``"ready"`` event is the load start: time zero for this run.

        >>> plot = MemoryPlot(); run_id = plot.begin_run("manual_shards")
        >>> plot.add_event(Event(1.0, "imports done", "ready"))
        >>> plot.add_event(Event(1.2, "shard 1/3 read", "shard_read")); plot.flush(); plot.event_labels()[1]
        'manual_shards: shard 1/3 read (0.20 s)'
        """
        with self._lock:
            run = self._runs.get(run_id or self._current or "")
            if run is None:
                return
            run.events.append(event)
            if event.kind == "ready" and run.ready_t_s is None:
                run.ready_t_s = event.t_s
                self._structure_changed = True  # the subtitle (start-up, baseline) changes
            self._dirty.add(run.run_id)

    def end_run(self, report: Report, run_id: str | None = None, *, timeout_s: float = 10.0) -> None:
        """Finish a live run with its Report: exact baseline, the kernel-peak line, GPU samples, a budget stop;
        then flush.

        If no sample arrived live (the run failed at once), the Report's timeline is drawn instead. Blocks
        until the figure shows the final state (at most ``timeout_s``).

        >>> from widgetlib.measure.report import Report
        >>> plot = MemoryPlot(); run_id = plot.begin_run("normal")
        >>> plot.end_run(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1, peak_rss_bytes=5 * 10**8))
        >>> plot.line_y("peak")
        500.0
        """
        with self._lock:
            run = self._runs.get(run_id or self._current or "")
            if run is None:
                return
            self._finish(run, report)
        self.flush(timeout_s=timeout_s)
        if threading.current_thread() is threading.main_thread():
            self.show_static_copy()

    def add_report(self, report: Report, *, note: str | None = None, replace: bool = False) -> str:
        """Draw a finished Report's timeline in one go and return its run id.

        >>> from widgetlib.measure.memory import MemorySample, Timeline
        >>> from widgetlib.measure.report import Report
        >>> tl = Timeline(0.0, [MemorySample(0.1, 2 * 10**8, None, None, None)], [], baseline_rss_bytes=10**8)
        >>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
        ...            peak_rss_bytes=21 * 10**7, timeline=tl)
        >>> plot = MemoryPlot(); run_id = plot.add_report(r)
        >>> plot.line_y("peak", run_id), plot.line_y("checkpoint", run_id)
        (110.0, 100.0)
        """
        run_id = self.begin_run(report.strategy, checkpoint_bytes=report.checkpoint_bytes,
                                budget_bytes=report.budget_bytes, note=note, replace=replace)
        with self._lock:
            self._finish(self._runs[run_id], report)
        self.flush()
        return run_id

    def discard_run(self, run_id: str) -> None:
        """Remove one run (e.g. one whose start was refused) from the plot.

        >>> plot = MemoryPlot(); plot.discard_run(plot.begin_run("normal")); plot.run_ids
        []
        """
        with self._lock:
            if self._runs.pop(run_id, None) is not None:
                self._structure_changed = True
                self._ensure_thread()
        self.flush()

    def clear(self) -> None:
        """Remove every run, trace and line.

        >>> plot = MemoryPlot(); _ = plot.begin_run("normal"); plot.clear(); plot.run_ids
        []
        """
        with self._lock:
            self._runs.clear()
            self._current = None
            self._structure_changed = True
            self._ensure_thread()
        self.flush()

    def _finish(self, run: _Run, report: Report) -> None:
        timeline = report.timeline
        if not run.thinned:
            for sample in timeline.samples:
                run.keep(sample)
        if not run.events:
            run.events = list(timeline.events)
            ready = next((e for e in run.events if e.kind == "ready"), None)
            run.ready_t_s = ready.t_s if ready is not None else None
        if report.budget_stop and not any(e.kind == "budget_stop" for e in run.events):
            # The runner's watchdog (or a kernel OOM kill it recorded) stopped the run: mark where.
            stop = report.budget_stop
            run.events.append(Event(float(stop["t_s"]), f"stopped by the budget at {format_bytes(stop['rss_bytes'])}"
                                    " RSS", "budget_stop"))
        run.gpu = list(timeline.gpu_samples)
        run.baseline_rss_bytes = report.baseline_rss_bytes
        run.peak_rss_bytes = report.peak_rss_bytes
        run.startup_s = report.startup_s
        if report.budget_bytes is not None:
            run.budget_bytes = report.budget_bytes
        run.checkpoint_bytes = report.checkpoint_bytes
        run.budget_mode = report.budget_mode
        run.live = False
        self._dirty.add(run.run_id)
        self._structure_changed = True  # legend names (peaks) and the subtitle change
        self._ensure_thread()

    # ------------------------------------------------------------------------------------ redraw thread

    def flush(self, timeout_s: float = 10.0) -> None:
        """Block until everything buffered so far is on the figure (at most ``timeout_s``).

        >>> from widgetlib.measure.memory import MemorySample
        >>> plot = MemoryPlot(y="rss")
        >>> run_id = plot.begin_run("this kernel")
        >>> plot.add_sample(MemorySample(0.0, 5 * 10**6, None, None, None), run_id)
        >>> plot.flush(); plot.point_count(run_id)  # buffered by add_sample, on the figure after flush
        1
        """
        with self._lock:
            self._flush_requested += 1
            wanted = self._flush_requested
            self._ensure_thread()
            self._lock.notify_all()
            self._lock.wait_for(lambda: self._flush_done >= wanted, timeout=timeout_s)

    def join(self, timeout_s: float = 10.0) -> None:
        """Wait for the redraw thread to end (it ends once no run is live and everything is drawn).

        Call before a notebook ends so no thread of ours outlives the cell.

        >>> plot = MemoryPlot()
        >>> plot.flush(); plot.join()
        >>> plot._thread is None  # flush started it; with nothing live it ended, and let go of itself
        True
        """
        with self._lock:
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _ensure_thread(self) -> None:
        # Called with the lock held.
        if self._thread is None:
            self._thread = threading.Thread(target=self._redraw_loop, name="offload-lab-redraw", daemon=True)
            self._thread.start()

    def _redraw_loop(self) -> None:
        while True:
            with self._lock:
                wanted = self._flush_requested
                if not self._dirty and not self._structure_changed:
                    self._flush_done = max(self._flush_done, wanted)
                    self._lock.notify_all()
                    if not any(run.live for run in self._runs.values()):
                        self._thread = None
                        return
                    todo = None
                else:
                    todo = self._snapshot()
            if todo is not None:
                try:
                    self._draw(*todo)
                    self.redraw_count += 1
                except Exception as exc:  # keep the thread alive: a failed redraw must not freeze the run
                    self.redraw_error = exc
                with self._lock:
                    self._flush_done = max(self._flush_done, wanted)
                    self._lock.notify_all()
            with self._lock:
                # Throttle: at most one redraw per interval, unless someone waits in flush().
                self._lock.wait_for(lambda: self._flush_requested > self._flush_done,
                                    timeout=self.redraw_interval_s)

    def _snapshot(self) -> tuple[list[dict[str, Any]], bool]:
        """Copy what changed, events on the load's time axis (called with the lock held; the samples, thousands,
        are shifted in :meth:`_columns`, without it); drawing happens without it."""
        runs = []
        colors = _colors(list(self._runs.values()))
        for run in self._runs.values():
            t_zero = run.t_zero()
            samples = run.load_samples(t_zero) if t_zero is not None else []
            events = [_replace(e, t_s=e.t_s - t_zero) for e in run.events if e.t_s >= t_zero] if t_zero is not None \
                else []
            baseline = run.baseline_rss_bytes
            first = run.baseline_sample(samples, baseline)
            if baseline is None and first is not None:
                baseline = first.rss_bytes  # until the Report gives the child's own reading
            runs.append({
                "run": run,
                "dirty": run.run_id in self._dirty,
                "samples": samples,
                "t_zero": t_zero,
                "events": events,
                "gpu": [(t - t_zero, n) for t, n in run.gpu if t >= t_zero] if t_zero is not None else [],
                "baseline": baseline,
                "baseline_sample": first,
                "started_in_s": run.started_in_s(t_zero) if t_zero is not None else None,
                "peak": run.peak_rss_bytes,
                "budget": run.budget_bytes,
                "budget_mode": run.budget_mode,
                "checkpoint": run.checkpoint_bytes,
                "color": colors[run.run_id],
                "live": run.live,
            })
        structure = self._structure_changed
        self._dirty.clear()
        self._structure_changed = False
        return runs, structure

    def _draw(self, runs: list[dict[str, Any]], structure_changed: bool) -> None:
        fig = self.figure
        # Above baseline only where every run shown has one; an empty plot keeps the default's axis title.
        shown = [item for item in runs if item["samples"] or not item["live"]]
        above = self.y != "rss" and all(item["baseline"] is not None for item in shown)
        if above != (self.y_mode == "above_baseline"):
            structure_changed = True
        self.y_mode = "above_baseline" if above else "rss"
        wanted_uids = set()
        for item in runs:
            wanted_uids.update(self._uids(item))
        if structure_changed:
            # Removing traces is a structural change that batch_update does not allow; do it first.
            kept = [t for t in fig.data if t.meta in wanted_uids]
            if len(kept) != len(fig.data):
                fig.data = kept
        existing = {t.meta for t in fig.data}
        for item in runs:
            for uid in self._uids(item):
                if uid not in existing:
                    fig.add_trace(self._new_trace(item["run"], uid, item["color"]))
                    existing.add(uid)
        traces = {t.meta: t for t in fig.data}
        for item in runs:
            self._columns(item)
        with fig.batch_update():
            for item in runs:
                if item["dirty"] or structure_changed:
                    self._update_run(traces, item)
            shapes = self._shapes(runs)
            name_markers(traces, runs, plot_width_px=_PLOT_WIDTH_PX,
                         plot_height_px=self.height_px - _NOT_PLOT_HEIGHT_PX * self._scale,
                         font_px=10 * self._scale, shapes=shapes)
            fig.layout.shapes = shapes
            self._update_titles(runs)
            self._update_height()
        # A view that renders late (the first FigureWidget takes seconds on a busy machine, or the learner
        # scrolls to it) draws plotly's _widget_data/_widget_layout, which plotly refreshes only when the figure
        # itself is displayed (plotly/basewidget.py:736), not as a panel's child: refresh them on structural
        # changes, at the end, and every ~2 s, so such a view starts from the current figure, not an empty one.
        self._draws_since_snapshot += 1
        if structure_changed or not any(item["live"] for item in runs) or self._draws_since_snapshot >= 20:
            fig._widget_data = deepcopy(fig._data)
            fig._widget_layout = deepcopy(fig._layout_obj._props)
            self._draws_since_snapshot = 0

    # --------------------------------------------------------------------------------- figure content

    def _base_layout(self) -> dict[str, Any]:
        font_px = round(12 * self._scale)
        return {
            "title": {"text": self._title_text("", "")},
            "font": {"size": font_px},
            "xaxis": {"title": {"text": "seconds since the load started"}, "rangemode": "tozero"},
            "yaxis": {"title": {"text": "RAM above baseline (MB)"}, "rangemode": "tozero", "zeroline": True},
            # Under the plot, in rows, so the plotting area keeps the figure's width however many runs it shows.
            "legend": {"title": {"text": "strategy · kernel peak", "side": "top"}, "orientation": "h",
                       "x": 0, "xanchor": "left", "y": -0.16, "yanchor": "top"},
            "template": "plotly_white",
            "height": self.height_px,
            "hovermode": "closest",
            "uirevision": "offload-lab",  # keeps a learner's zoom while the data updates
            "margin": {"t": round(100 * self._scale), "r": 20},
        }

    def _title_text(self, baseline_note: str, startup_note: str) -> str:
        notes = " · ".join(n for n in (baseline_note, startup_note) if n)
        key = "solid: RSS · dashed: anonymous (heap) · dotted: file-backed (mmap) · markers: loader events"
        return f"{self.title}<br><sup>{notes or '&nbsp;'}</sup><br><sup>{key}</sup>"

    def _update_titles(self, runs: list[dict[str, Any]]) -> None:
        drawn = [item for item in runs if item["samples"]]
        baselines = [item["baseline"] for item in drawn if item["baseline"] is not None]
        baseline_note = ""
        if self.y_mode == "above_baseline" and baselines:
            low, high = min(baselines), max(baselines)
            what = format_bytes(low) if format_bytes(low) == format_bytes(high) else \
                f"{format_bytes(low)}–{format_bytes(high)}"
            baseline_note = f"0 = baseline (Python + torch + transformers, before the load): {what}"
        started = [item["started_in_s"] for item in drawn if item["started_in_s"] is not None]
        startup_note = ""
        if started:
            low_s, high_s = min(started), max(started)
            span = f"{low_s:.1f} s" if f"{low_s:.1f}" == f"{high_s:.1f}" else f"{low_s:.1f}–{high_s:.1f} s"
            startup_note = f"process started in {span} (not drawn)"
        above = self.y_mode == "above_baseline"
        wanted = {
            ("title", "text"): self._title_text(baseline_note, startup_note),
            ("yaxis", "title", "text"): "RAM above baseline (MB)" if above else "RAM, RSS (MB)",
            ("xaxis", "title", "text"): "seconds since the load started"
            if any(i["run"].zero_at_ready for i in runs) else "seconds",
            ("legend", "title", "text"): "strategy · peak above baseline" if above else "strategy · peak RSS",
        }
        layout = self.figure.layout
        for path, text in wanted.items():
            if layout[path] != text:  # each assignment is a message to the browser: only what changed
                layout[path] = text

    @staticmethod
    def _uids(item: dict[str, Any]) -> list[str]:
        run_id = item["run"].run_id
        uids = [f"{run_id}:rss", f"{run_id}:events"]
        samples = item["samples"]
        if any(s.rss_anon_bytes is not None for s in samples):
            uids.append(f"{run_id}:anon")
        if any(s.rss_file_bytes is not None for s in samples):
            uids.append(f"{run_id}:file")
        if item["gpu"]:
            uids.append(f"{run_id}:gpu")
        return uids

    def _update_height(self) -> None:
        """Grow the figure by the legend's rows (estimated from the entries' length), so the plot keeps
        ``height_px`` of room however many runs the legend lists."""
        names = [t.name or "" for t in self.figure.data if t.showlegend is not False]
        chars = sum(len(n) + 6 for n in names)  # an entry is its text and its line sample
        rows = -(-chars // _LEGEND_ROW_CHARS) if names else 0
        height = self.height_px + round(max(rows - 1, 0) * _LEGEND_ROW_PX * self._scale)
        if self.figure.layout.height != height:
            self.figure.layout.height = height

    def _new_trace(self, run: _Run, uid: str, color: str) -> go.Scatter:
        series = uid.rsplit(":", 1)[1]
        run.color = color
        if series == "events":
            return go.Scatter(
                x=[], y=[], meta=uid, mode="markers+text", name=f"{run.short_label()} events", legendgroup=run.run_id,
                showlegend=False, cliponaxis=False,
                marker={"color": color, "size": 9 * self._scale, "line": {"width": 1, "color": "white"}},
                textfont={"size": round(10 * self._scale), "color": color},
                hovertemplate="%{hovertext}<extra></extra>",
            )
        style = _SERIES[series]
        return go.Scatter(
            x=[], y=[], meta=uid, mode="lines", legendgroup=run.run_id,
            name=run.short_label() if series == "rss" else f"{run.short_label()} {style['what']}",
            showlegend=series == "rss",
            line={"color": color, "dash": style["dash"], "width": style["width"] * self._scale},
            hovertemplate=f"{run.label()} {style['what']}: %{{y:.1f}} MB at %{{x:.2f}} s<extra></extra>",
        )

    def _offsets(self, item: dict[str, Any]) -> tuple[int, int, int]:
        """What is subtracted from rss, anon and file bytes: the baseline's, in the above-baseline view."""
        if self.y_mode != "above_baseline" or item["baseline"] is None:
            return 0, 0, 0
        first = item["baseline_sample"]
        anon = first.rss_anon_bytes if first is not None and first.rss_anon_bytes is not None else 0
        file = first.rss_file_bytes if first is not None and first.rss_file_bytes is not None else 0
        return item["baseline"], anon, file

    def _columns(self, item: dict[str, Any]) -> None:
        """The arrays to draw, in MB on the plot's y axis, and where each event marker sits (on the RSS line at
        its time: the last sample at or before it); stored in ``item``."""
        samples: list[MemorySample] = item["samples"]
        rss_off, anon_off, file_off = self._offsets(item)
        t_zero = item["t_zero"] or 0.0
        xs = [s.t_s - t_zero for s in samples]
        item["xs"] = xs
        item["columns"] = columns = {
            "rss": [(s.rss_bytes - rss_off) / BYTES_PER_MB for s in samples],
            "anon": [None if s.rss_anon_bytes is None else (s.rss_anon_bytes - anon_off) / BYTES_PER_MB
                     for s in samples],
            "file": [None if s.rss_file_bytes is None else (s.rss_file_bytes - file_off) / BYTES_PER_MB
                     for s in samples],
        }
        at = [max(bisect_right(xs, e.t_s) - 1, 0) for e in item["events"]]
        item["marker_x"] = [e.t_s for e in item["events"]]
        item["marker_y"] = [columns["rss"][i] if columns["rss"] else 0.0 for i in at]

    def _update_run(self, traces: dict[str, Any], item: dict[str, Any]) -> None:
        run: _Run = item["run"]
        xs, columns = item["xs"], item["columns"]
        if run.color != item["color"]:  # an earlier run of its strategy was removed: its shade moved up
            run.color = color = item["color"]
            for series in (*columns, "gpu"):
                trace = traces.get(f"{run.run_id}:{series}")
                if trace is not None:
                    trace.line.color = color
            markers = traces.get(f"{run.run_id}:events")
            if markers is not None:
                markers.marker.color = color
                markers.textfont.color = color
        for series, ys in columns.items():
            trace = traces.get(f"{run.run_id}:{series}")
            if trace is not None:
                trace.x, trace.y = xs, ys
        rss = traces.get(f"{run.run_id}:rss")
        if rss is not None:
            rss.name = self._legend_name(item)
        gpu = traces.get(f"{run.run_id}:gpu")
        if gpu is not None:
            gpu.x = [t for t, _ in item["gpu"]]
            gpu.y = [n / BYTES_PER_MB for _, n in item["gpu"]]
        markers = traces.get(f"{run.run_id}:events")
        if markers is not None:
            events: list[Event] = item["events"]
            markers.x, markers.y = item["marker_x"], item["marker_y"]
            markers.hovertext = [f"{run.strategy}: {e.label} ({e.t_s:.2f} s)" for e in events]
            markers.marker.symbol = [EVENT_SYMBOLS.get(e.kind, "circle-open") for e in events]
            big = 16 * self._scale
            markers.marker.size = [big if e.kind == "budget_stop" else 9 * self._scale for e in events]

    def _legend_name(self, item: dict[str, Any]) -> str:
        """The run's legend entry: its label, and once it ended its kernel peak (above baseline, x checkpoint)."""
        run: _Run = item["run"]
        peak = item["peak"]
        if peak is None:
            return run.short_label()
        if self.y_mode == "above_baseline" and item["baseline"] is not None:
            above = peak - item["baseline"]
            ratio = f" = {above / item['checkpoint']:.2f}x" if item["checkpoint"] else ""
            return f"{run.short_label()} · {format_signed_bytes(above)}{ratio}"
        return f"{run.short_label()} · {format_bytes(peak)}"

    def _shapes(self, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        above = self.y_mode == "above_baseline"
        font_px = round(10 * self._scale)
        drawn = [item for item in runs if item["samples"] or not item["live"]]
        shapes = shared_lines(drawn, above_baseline=above, font_px=font_px, width_scale=self._scale)
        for item in drawn:
            if item["peak"] is None or (above and item["baseline"] is None):
                continue
            run: _Run = item["run"]
            y = item["peak"] - (item["baseline"] if above else 0)
            # One run: its peak is written on the line. Several: in the legend, where labels cannot collide.
            text = ""
            if len(drawn) == 1:
                text = f"{run.strategy} peak {format_bytes(item['peak'])}"
                if above:
                    text += f" ({format_signed_bytes(y)})"
            shapes.append(hline(f"{run.run_id}:peak", y / BYTES_PER_MB, text,
                                {"color": item["color"], "dash": "dashdot", "width": 1.5 * self._scale}, "end",
                                font_px))
        return shapes

    # ----------------------------------------------------------------------------------- static output

    def static_figure(self) -> go.Figure:
        """A plain ``go.Figure`` copy of the current plot, for places without a widget front end.

        ``plot.static_figure().show()`` renders in nbconvert's HTML or opens a browser from plain Python.

        >>> type(MemoryPlot().static_figure()).__name__
        'Figure'
        """
        self.flush()
        return go.Figure(self.figure)

    def show_static_copy(self) -> bool:
        """With ``OFFLOAD_LAB_STATIC_FIGURES=1`` (``make site``), put a static copy of the figure in the cell's
        output, or refresh the one shown before, so an exported page draws it; True if one was shown.

        >>> MemoryPlot().show_static_copy()  # the variable is not set here
        False
        """
        if self._static is None:
            self._static = StaticCopy()
        return self._static.show(self.static_figure(), what=f"plot {self.title!r}")

    def __repr__(self) -> str:
        with self._lock:
            runs = ", ".join(f"{r.label()} ({len(r.all_samples())} samples)" for r in self._runs.values())
        return f"MemoryPlot({runs or 'no runs'})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.figure._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = repr(self)
        return bundle
