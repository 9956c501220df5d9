"""MemoryPlot: a live plotly timeline of a run's RAM, fed from the runner's background threads.

Threading, as found to work on these machines (``shared/notes/browser-and-widgets.md``): the runner calls
:meth:`MemoryPlot.add_sample` / :meth:`MemoryPlot.add_event` from its sampler and reader threads; those only
append to a buffer under a lock. One redraw thread per plot, started on demand, is the only code that mutates
the ``FigureWidget``: it redraws at most ``10`` times a second inside ``fig.batch_update()`` (each update resends
whole arrays, so a faster rate makes the browser fall behind), and ends by itself once no run is live and
nothing is left to draw. Buffers stay bounded: past ``max_points`` samples a run keeps the larger-RSS sample of
each pair (so the peak survives) and from then on one sample per 2, 4, 8, ... readings.

Units on the figure: x is seconds since the run's child process was spawned, y is MB (10**6 bytes, the decimal
unit :func:`~widgetlib.core.sizes.format_bytes` prints).
"""

from __future__ import annotations

import itertools
import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from ..core.sizes import format_bytes
from ..measure.memory import Event, MemorySample

if TYPE_CHECKING:
    from ..measure.report import Report

__all__ = ["BYTES_PER_MB", "STRATEGY_COLORS", "MemoryPlot", "to_mb"]

BYTES_PER_MB = 1_000_000

# One fixed colour per strategy, so the same strategy looks the same in every plot of every lesson.
STRATEGY_COLORS = {
    "normal": "#d62728",
    "low_cpu_mem_usage": "#ff7f0e",
    "offload_folder": "#2ca02c",
    "manual_shards": "#1f77b4",
}
_OTHER_COLOR = "#7f7f7f"

# Marker symbol per event kind; kinds not listed get a plain open circle.
_EVENT_SYMBOLS = {
    "ready": "triangle-up",
    "phase": "triangle-right",
    "model_built": "square-open",
    "state_dict_read": "circle",
    "shard_read": "circle",
    "shard_assigned": "diamond",
    "weights_assigned": "diamond",
    "shard_freed": "x",
    "state_dict_freed": "x",
    "dispatch": "square",
    "loaded": "star-triangle-up",
    "forward": "star",
    "forward_done": "star-open",
}

# Secondary traces of a run: which Report/MemorySample field, and how it is drawn relative to the RSS line.
_SERIES = {
    "rss": {"dash": "solid", "width": 2.5, "what": "RSS"},
    "anon": {"dash": "dash", "width": 1.2, "what": "anonymous RSS (heap copies)"},
    "file": {"dash": "dot", "width": 1.2, "what": "file-backed RSS (mmap'd pages)"},
    "gpu": {"dash": "dashdot", "width": 1.5, "what": "GPU memory"},
}
LINE_KINDS = ("checkpoint", "budget", "peak")


def to_mb(n_bytes: int | float | None) -> float | None:
    """Bytes to the plot's y unit, MB (10**6 bytes).

    >>> to_mb(250_000_000), to_mb(None)
    (250.0, None)
    """
    return None if n_bytes is None else n_bytes / BYTES_PER_MB


def _color(strategy: str) -> str:
    return STRATEGY_COLORS.get(strategy, _OTHER_COLOR)


@dataclass
class _Run:
    """One run's buffered data; guarded by MemoryPlot._lock."""

    run_id: str
    strategy: str
    note: str | None
    checkpoint_bytes: int | None
    budget_bytes: int | None
    max_points: int
    samples: list[MemorySample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    gpu: list[tuple[float, int]] = field(default_factory=list)
    baseline_rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    live: bool = True
    received: int = 0
    # Decimation state (see the module docstring).
    stride: int = 1
    pending: MemorySample | None = None
    pending_n: int = 0
    ready_t_s: float | None = None

    def keep(self, sample: MemorySample) -> None:
        self.received += 1
        if self.pending is None or sample.rss_bytes > self.pending.rss_bytes:
            self.pending = sample
        self.pending_n += 1
        if self.pending_n < self.stride:
            return
        self.samples.append(self.pending)
        self.pending, self.pending_n = None, 0
        if len(self.samples) >= self.max_points:
            pairs = zip(self.samples[0::2], self.samples[1::2], strict=False)
            halved = [a if a.rss_bytes >= b.rss_bytes else b for a, b in pairs]
            if len(self.samples) % 2:
                halved.append(self.samples[-1])
            self.samples = halved
            self.stride *= 2

    def all_samples(self) -> list[MemorySample]:
        return self.samples + ([self.pending] if self.pending is not None else [])

    def baseline_guess(self, samples: list[MemorySample]) -> int | None:
        """The baseline: the Report's when known, else the RSS sampled right after the "ready" event."""
        if self.baseline_rss_bytes is not None:
            return self.baseline_rss_bytes
        if self.ready_t_s is None or not samples:
            return None
        times = [s.t_s for s in samples]
        i = bisect_right(times, self.ready_t_s)
        return samples[min(i, len(samples) - 1)].rss_bytes if i < len(samples) else None

    def label(self) -> str:
        return f"{self.strategy} · {self.note}" if self.note else self.strategy


class MemoryPlot:
    """A live RAM timeline: one solid RSS line per run, coloured by strategy, with event markers and lines.

    Feed it from any thread: :meth:`begin_run`, then :meth:`add_sample` / :meth:`add_event` as the run goes,
    :meth:`end_run` with the Report (adds the kernel-peak line); or :meth:`add_report` for a finished Report.
    Where the platform reports them, anonymous and file-backed RSS are drawn dashed / dotted in the same
    colour; GPU memory dash-dotted. Horizontal lines: baseline + checkpoint size (dotted), the budget (black,
    dashed) and the kernel peak (dash-dot). ``.figure`` is the ``FigureWidget`` to display.

    >>> from widgetlib.measure.memory import Event, MemorySample
    >>> plot = MemoryPlot()
    >>> run_id = plot.begin_run("normal", checkpoint_bytes=20_000_000, budget_bytes=300_000_000)
    >>> for i in range(5):
    ...     plot.add_sample(MemorySample(0.1 * i, (100 + 10 * i) * 10**6, None, None, None))
    >>> plot.add_event(Event(0.25, "state dict read", "state_dict_read"))
    >>> plot.flush()
    >>> plot.point_count(run_id), plot.event_count(run_id), plot.line_y("budget", run_id)
    (5, 1, 300.0)
    """

    def __init__(self, *, title: str = "RAM while loading", max_points: int = 3000, redraw_hz: float = 10.0,
                 height_px: int = 420) -> None:
        self.max_points = int(max_points)
        self.redraw_interval_s = 1.0 / float(redraw_hz)
        self._lock = threading.Condition()
        self._runs: dict[str, _Run] = {}
        self._dirty: set[str] = set()
        self._structure_changed = False
        self._current: str | None = None
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._flush_requested = 0
        self._flush_done = 0
        self.redraw_count = 0
        self.redraw_error: BaseException | None = None
        self.figure = go.FigureWidget(layout=self._base_layout(title, height_px))

    # ------------------------------------------------------------------------------------ feeding data

    def begin_run(self, strategy: str, *, checkpoint_bytes: int | None = None, budget_bytes: int | None = None,
                  note: str | None = None, replace: bool = False) -> str:
        """Start a new live run and return its id; later samples and events go to it.

        ``note`` is appended to the legend entry (e.g. ``"max_memory 12 MB"``); ``replace=True`` first removes
        earlier runs of the same strategy (a panel shows the latest run of each strategy).

        >>> plot = MemoryPlot()
        >>> plot.begin_run("manual_shards", checkpoint_bytes=10**7)
        'run-1'
        """
        with self._lock:
            if replace:
                for old in [r for r in self._runs.values() if r.strategy == strategy]:
                    del self._runs[old.run_id]
                    self._structure_changed = True
            run_id = f"run-{next(self._ids)}"
            self._runs[run_id] = _Run(run_id, strategy, note, checkpoint_bytes, budget_bytes, self.max_points)
            self._current = run_id
            self._dirty.add(run_id)
            self._structure_changed = True
            self._ensure_thread()
        return run_id

    def add_sample(self, sample: MemorySample, run_id: str | None = None) -> None:
        """Buffer one sample (``t_s`` relative to the run start) for ``run_id`` (default: the latest run).

        Cheap and thread-safe: the redraw thread draws it within ~0.1 s.

        >>> plot = MemoryPlot(); run_id = plot.begin_run("normal")
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

        >>> plot = MemoryPlot(); run_id = plot.begin_run("manual_shards")
        >>> plot.add_event(Event(0.2, "shard 1/3 read", "shard_read")); plot.flush(); plot.event_labels()
        ['manual_shards: shard 1/3 read (0.20 s)']
        """
        with self._lock:
            run = self._runs.get(run_id or self._current or "")
            if run is None:
                return
            run.events.append(event)
            if event.kind == "ready" and run.ready_t_s is None:
                run.ready_t_s = event.t_s
            self._dirty.add(run.run_id)

    def end_run(self, report: Report, run_id: str | None = None, *, timeout_s: float = 10.0) -> None:
        """Finish a live run with its Report: exact baseline, the kernel-peak line, GPU samples; then flush.

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

    def add_report(self, report: Report, *, note: str | None = None, replace: bool = False) -> str:
        """Draw a finished Report's timeline in one go and return its run id.

        >>> from widgetlib.measure.memory import MemorySample, Timeline
        >>> from widgetlib.measure.report import Report
        >>> tl = Timeline(0.0, [MemorySample(0.1, 2 * 10**8, None, None, None)], [], baseline_rss_bytes=10**8)
        >>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
        ...            peak_rss_bytes=21 * 10**7, timeline=tl)
        >>> plot = MemoryPlot(); run_id = plot.add_report(r)
        >>> plot.line_y("peak", run_id), plot.line_y("checkpoint", run_id)
        (210.0, 200.0)
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
        if not run.samples and run.pending is None:
            for sample in timeline.samples:
                run.keep(sample)
        if not run.events:
            run.events = list(timeline.events)
        run.gpu = list(timeline.gpu_samples)
        run.baseline_rss_bytes = report.baseline_rss_bytes
        run.peak_rss_bytes = report.peak_rss_bytes
        if report.budget_bytes is not None:
            run.budget_bytes = report.budget_bytes
        run.checkpoint_bytes = report.checkpoint_bytes
        run.live = False
        self._dirty.add(run.run_id)
        self._ensure_thread()

    # ------------------------------------------------------------------------------------ redraw thread

    def flush(self, timeout_s: float = 10.0) -> None:
        """Block until everything buffered so far is on the figure (at most ``timeout_s``).

        >>> MemoryPlot().flush()
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

        >>> MemoryPlot().join()
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
        """Copy what changed (called with the lock held); drawing then happens without the lock."""
        runs = []
        for run in self._runs.values():
            samples = run.all_samples()
            runs.append({
                "run": run,
                "dirty": run.run_id in self._dirty,
                "samples": samples,
                "events": list(run.events),
                "gpu": list(run.gpu),
                "baseline": run.baseline_guess(samples),
                "peak": run.peak_rss_bytes,
                "budget": run.budget_bytes,
                "checkpoint": run.checkpoint_bytes,
            })
        structure = self._structure_changed
        self._dirty.clear()
        self._structure_changed = False
        return runs, structure

    def _draw(self, runs: list[dict[str, Any]], structure_changed: bool) -> None:
        fig = self.figure
        wanted_uids = set()
        for item in runs:
            run: _Run = item["run"]
            wanted_uids.update(self._uids(run, item))
        if structure_changed:
            # Removing traces is a structural change that batch_update does not allow; do it first.
            kept = [t for t in fig.data if t.meta in wanted_uids]
            if len(kept) != len(fig.data):
                fig.data = kept
        existing = {t.meta for t in fig.data}
        for item in runs:
            for uid in self._uids(item["run"], item):
                if uid not in existing:
                    fig.add_trace(self._new_trace(item["run"], uid))
                    existing.add(uid)
        traces = {t.meta: t for t in fig.data}
        with fig.batch_update():
            for item in runs:
                if item["dirty"] or structure_changed:
                    self._update_run(traces, item)
            fig.layout.shapes = [shape for item in runs for shape in self._shapes(item)]

    # --------------------------------------------------------------------------------- figure content

    @staticmethod
    def _base_layout(title: str, height_px: int) -> dict[str, Any]:
        return {
            "title": {"text": title + "<br><sup>solid: RSS · dashed: anonymous (heap) · dotted: file-backed "
                                      "(mmap) · markers: loader events</sup>"},
            "xaxis": {"title": {"text": "seconds since the run started"}, "rangemode": "tozero"},
            "yaxis": {"title": {"text": "RAM (MB)"}, "rangemode": "tozero"},
            "legend": {"title": {"text": "strategy"}},
            "template": "plotly_white",
            "height": height_px,
            "hovermode": "closest",
            "uirevision": "offload-lab",  # keeps a learner's zoom while the data updates
            "margin": {"t": 70, "r": 20},
        }

    @staticmethod
    def _uids(run: _Run, item: dict[str, Any]) -> list[str]:
        uids = [f"{run.run_id}:rss", f"{run.run_id}:events"]
        samples = item["samples"]
        if any(s.rss_anon_bytes is not None for s in samples):
            uids.append(f"{run.run_id}:anon")
        if any(s.rss_file_bytes is not None for s in samples):
            uids.append(f"{run.run_id}:file")
        if item["gpu"]:
            uids.append(f"{run.run_id}:gpu")
        return uids

    @staticmethod
    def _new_trace(run: _Run, uid: str) -> go.Scatter:
        series = uid.rsplit(":", 1)[1]
        color = _color(run.strategy)
        if series == "events":
            return go.Scatter(
                x=[], y=[], meta=uid, mode="markers", name=f"{run.label()} events", legendgroup=run.run_id,
                showlegend=False, marker={"color": color, "size": 9, "line": {"width": 1, "color": "white"}},
                hovertemplate="%{hovertext}<extra></extra>",
            )
        style = _SERIES[series]
        return go.Scatter(
            x=[], y=[], meta=uid, mode="lines", legendgroup=run.run_id,
            name=run.label() if series == "rss" else f"{run.label()} {style['what']}",
            showlegend=series == "rss",
            line={"color": color, "dash": style["dash"], "width": style["width"]},
            hovertemplate=f"{run.label()} {style['what']}: %{{y:.1f}} MB at %{{x:.2f}} s<extra></extra>",
        )

    @staticmethod
    def _update_run(traces: dict[str, Any], item: dict[str, Any]) -> None:
        run: _Run = item["run"]
        samples: list[MemorySample] = item["samples"]
        xs = [s.t_s for s in samples]
        columns = {
            "rss": [s.rss_bytes / BYTES_PER_MB for s in samples],
            "anon": [None if s.rss_anon_bytes is None else s.rss_anon_bytes / BYTES_PER_MB for s in samples],
            "file": [None if s.rss_file_bytes is None else s.rss_file_bytes / BYTES_PER_MB for s in samples],
        }
        for series, ys in columns.items():
            trace = traces.get(f"{run.run_id}:{series}")
            if trace is not None:
                trace.x, trace.y = xs, ys
        gpu = traces.get(f"{run.run_id}:gpu")
        if gpu is not None:
            gpu.x = [t for t, _ in item["gpu"]]
            gpu.y = [n / BYTES_PER_MB for _, n in item["gpu"]]
        markers = traces.get(f"{run.run_id}:events")
        if markers is not None:
            events: list[Event] = item["events"]
            ys_mb = columns["rss"]
            # An event sits on the RSS line at its time (the last sample at or before it).
            at = [max(bisect_right(xs, e.t_s) - 1, 0) for e in events]
            markers.x = [e.t_s for e in events]
            markers.y = [ys_mb[i] if ys_mb else 0.0 for i in at]
            markers.hovertext = [f"{run.strategy}: {e.label} ({e.t_s:.2f} s)" for e in events]
            markers.marker.symbol = [_EVENT_SYMBOLS.get(e.kind, "circle-open") for e in events]

    @staticmethod
    def _shapes(item: dict[str, Any]) -> list[dict[str, Any]]:
        run: _Run = item["run"]
        color = _color(run.strategy)
        shapes = []

        def hline(kind: str, y_bytes: int, text: str, line: dict[str, Any]) -> None:
            shapes.append({
                "type": "line", "name": f"{run.run_id}:{kind}", "xref": "x domain", "x0": 0, "x1": 1,
                "yref": "y", "y0": y_bytes / BYTES_PER_MB, "y1": y_bytes / BYTES_PER_MB, "line": line,
                "label": {"text": text, "textposition": "end", "font": {"size": 10, "color": line["color"]}},
            })

        if item["checkpoint"] is not None and item["baseline"] is not None:
            hline("checkpoint", item["baseline"] + item["checkpoint"],
                  f"{run.strategy}: baseline + checkpoint ({format_bytes(item['checkpoint'])})",
                  {"color": color, "dash": "dot", "width": 1})
        if item["budget"] is not None:
            hline("budget", item["budget"], f"budget {format_bytes(item['budget'])}",
                  {"color": "black", "dash": "dash", "width": 1.5})
        if item["peak"] is not None:
            hline("peak", item["peak"], f"{run.strategy} peak {format_bytes(item['peak'])}",
                  {"color": color, "dash": "dashdot", "width": 1.5})
        return shapes

    # ------------------------------------------------------------------------------- state for tests

    @property
    def run_ids(self) -> list[str]:
        """Ids of the runs on the plot, oldest first.

        >>> plot = MemoryPlot(); _ = plot.begin_run("normal"); _ = plot.begin_run("offload_folder")
        >>> plot.run_ids
        ['run-1', 'run-2']
        """
        with self._lock:
            return list(self._runs)

    def strategy_of(self, run_id: str) -> str:
        """The strategy a run id belongs to.

        >>> plot = MemoryPlot(); plot.strategy_of(plot.begin_run("offload_folder"))
        'offload_folder'
        """
        with self._lock:
            return self._runs[run_id].strategy

    @property
    def latest_run_id(self) -> str | None:
        """The run that :meth:`add_sample` feeds by default.

        >>> plot = MemoryPlot(); plot.begin_run("normal") == plot.latest_run_id
        True
        """
        return self._current

    def _trace(self, run_id: str | None, series: str) -> Any:
        uid = f"{run_id or self._current}:{series}"
        return next((t for t in self.figure.data if t.meta == uid), None)

    def point_count(self, run_id: str | None = None, series: str = "rss") -> int:
        """How many points the figure shows for ``series`` (``"rss"``, ``"anon"``, ``"file"``, ``"gpu"``) of
        ``run_id`` (default: the latest run); 0 when that trace does not exist.

        >>> MemoryPlot().point_count()
        0
        """
        trace = self._trace(run_id, series)
        return 0 if trace is None or trace.x is None else len(trace.x)

    def point_counts(self) -> dict[str, int]:
        """Points per trace as drawn, keyed ``"<run id>:<series>"`` (series: rss, anon, file, gpu, events).

        >>> plot = MemoryPlot(); _ = plot.begin_run("normal"); plot.flush(); plot.point_counts()
        {'run-1:rss': 0, 'run-1:events': 0}
        """
        return {t.meta: 0 if t.x is None else len(t.x) for t in self.figure.data}

    def event_count(self, run_id: str | None = None) -> int:
        """How many event markers the figure shows for ``run_id`` (default: the latest run).

        >>> MemoryPlot().event_count()
        0
        """
        return self.point_count(run_id, "events")

    def event_labels(self, run_id: str | None = None) -> list[str]:
        """The hover labels of a run's event markers, as drawn.

        >>> MemoryPlot().event_labels()
        []
        """
        trace = self._trace(run_id, "events")
        return [] if trace is None or trace.hovertext is None else list(trace.hovertext)

    def line_y(self, kind: str, run_id: str | None = None) -> float | None:
        """The y (MB) of a horizontal line as drawn: ``kind`` is ``"checkpoint"``, ``"budget"`` or ``"peak"``.

        >>> MemoryPlot().line_y("peak") is None
        True
        """
        if kind not in LINE_KINDS:
            raise ValueError(f"kind={kind!r}; use one of {', '.join(LINE_KINDS)}")
        name = f"{run_id or self._current}:{kind}"
        shape = next((s for s in self.figure.layout.shapes if s.name == name), None)
        return None if shape is None else shape.y0

    def legend_names(self) -> list[str]:
        """Names of the traces shown in the legend (one per run: the strategy, plus its note if any).

        >>> plot = MemoryPlot(); _ = plot.begin_run("normal"); plot.flush(); plot.legend_names()
        ['normal']
        """
        return [t.name for t in self.figure.data if t.showlegend is not False]

    # ----------------------------------------------------------------------------------- static output

    def static_figure(self) -> go.Figure:
        """A plain ``go.Figure`` copy of the current plot, for places without a widget front end.

        ``plot.static_figure().show()`` renders in nbconvert's HTML or opens a browser from plain Python.

        >>> type(MemoryPlot().static_figure()).__name__
        'Figure'
        """
        self.flush()
        return go.Figure(self.figure)

    def __repr__(self) -> str:
        with self._lock:
            runs = ", ".join(f"{r.label()} ({len(r.all_samples())} samples)" for r in self._runs.values())
        return f"MemoryPlot({runs or 'no runs'})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.figure._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = repr(self)
        return bundle
