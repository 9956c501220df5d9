"""What a MemoryPlot draws, read back from its figure: the accessors the tests, the lessons' checks and the
browser tests' page reads rely on. A mixin, so that plot.py holds the drawing and this the reading."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["LINE_KINDS", "PlotReadout"]

LINE_KINDS = ("checkpoint", "budget", "peak")


class PlotReadout:
    """Read-only views of a MemoryPlot's figure (mixed into :class:`~widgetlib.widgets.MemoryPlot`).

    >>> from widgetlib.widgets import MemoryPlot
    >>> issubclass(MemoryPlot, PlotReadout)
    True
    """

    figure: Any
    _lock: threading.Condition
    _runs: dict[str, Any]
    _current: str | None


    @property
    def run_ids(self) -> list[str]:
        """Ids of the runs on the plot, oldest first.

        >>> from widgetlib.widgets import MemoryPlot
        >>> plot = MemoryPlot(); _ = plot.begin_run("normal"); _ = plot.begin_run("offload_folder")
        >>> plot.run_ids
        ['run-1', 'run-2']
        """
        with self._lock:
            return list(self._runs)

    @property
    def latest_run_id(self) -> str | None:
        """The run that :meth:`add_sample` feeds by default.

        >>> from widgetlib.widgets import MemoryPlot
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

        >>> from widgetlib.widgets import MemoryPlot
        >>> MemoryPlot().point_count()
        0
        """
        trace = self._trace(run_id, series)
        return 0 if trace is None or trace.x is None else len(trace.x)

    def event_count(self, run_id: str | None = None) -> int:
        """How many event markers the figure shows for ``run_id`` (default: the latest run).

        >>> from widgetlib.widgets import MemoryPlot
        >>> MemoryPlot().event_count()
        0
        """
        return self.point_count(run_id, "events")

    def event_labels(self, run_id: str | None = None) -> list[str]:
        """The hover labels of a run's event markers, as drawn.

        >>> from widgetlib.widgets import MemoryPlot
        >>> MemoryPlot().event_labels()
        []
        """
        trace = self._trace(run_id, "events")
        return [] if trace is None or trace.hovertext is None else list(trace.hovertext)

    def event_texts(self, run_id: str | None = None) -> list[str]:
        """The names written next to a run's event markers ("" where a name would overlap another).

        >>> from widgetlib.widgets import MemoryPlot
        >>> MemoryPlot().event_texts()
        []
        """
        trace = self._trace(run_id, "events")
        return [] if trace is None or trace.text is None else list(trace.text)

    def line_y(self, kind: str, run_id: str | None = None) -> float | None:
        """The y (MB) of a horizontal line as drawn: ``kind`` is ``"checkpoint"``, ``"budget"`` or ``"peak"``.

        >>> from widgetlib.widgets import MemoryPlot
        >>> MemoryPlot().line_y("peak") is None
        True
        """
        if kind not in LINE_KINDS:
            raise ValueError(f"kind={kind!r}; use one of {', '.join(LINE_KINDS)}")
        wanted = run_id or self._current
        # A line several runs share is named after all of them: "run-1+run-2:checkpoint".
        shape = next((s for s in self.figure.layout.shapes
                      if s.name and s.name.endswith(f":{kind}") and wanted in s.name.rsplit(":", 1)[0].split("+")),
                     None)
        return None if shape is None else shape.y0

    def legend_names(self) -> list[str]:
        """Names of the traces shown in the legend (one per run: the strategy, plus its note if any).

        >>> from widgetlib.widgets import MemoryPlot
        >>> plot = MemoryPlot(); _ = plot.begin_run("normal"); plot.flush(); plot.legend_names()
        ['normal']
        """
        return [t.name for t in self.figure.data if t.showlegend is not False]
