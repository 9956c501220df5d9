"""Static copies of the live figures, for pages built from executed notebooks (``make site``).

A plotly ``FigureWidget`` is drawn by the widget front end; in a static HTML export of a notebook it is blank,
and its live updates are not saved in the notebook (its widget state keeps the first, empty figure). With the
environment variable ``OFFLOAD_LAB_STATIC_FIGURES=1``, every widget also puts a plain copy of its figure in the cell's
output once its run ends: HTML with plotly.js embedded, which any static page draws. The first copy in a
kernel carries plotly.js (~5 MB); later ones use it. A widget shows one copy, updated in place (a display id)
when it runs again, so a cell does not fill up with stale figures.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go

__all__ = ["STATIC_FIGURES_ENV", "StaticCopy", "static_bundle", "static_figures_wanted"]

STATIC_FIGURES_ENV = "OFFLOAD_LAB_STATIC_FIGURES"

_shipped_lock = threading.Lock()
_plotlyjs_shipped = False


def static_figures_wanted() -> bool:
    """True when ``OFFLOAD_LAB_STATIC_FIGURES`` is set to something other than ``""`` or ``"0"``.

    >>> from unittest import mock
    >>> def wanted(value):
    ...     with mock.patch.dict(os.environ, {STATIC_FIGURES_ENV: value}):
    ...         return static_figures_wanted()
    >>> wanted("1"), wanted("0"), wanted("")
    (True, False, False)
    """
    return os.environ.get(STATIC_FIGURES_ENV, "") not in ("", "0")


def static_bundle(figure: go.Figure, *, include_plotlyjs: bool, what: str = "figure") -> dict[str, str]:
    """A display bundle that draws ``figure`` without a widget front end: HTML (plotly.js embedded when
    ``include_plotlyjs``, else expected on the page already) and a one-line text form.

    >>> bundle = static_bundle(go.Figure(go.Scatter(x=[0, 1], y=[2, 3])), include_plotlyjs=False)
    >>> sorted(bundle), "Plotly.newPlot" in bundle["text/html"]
    (['text/html', 'text/plain'], True)
    """
    html = figure.to_html(full_html=False, include_plotlyjs=include_plotlyjs, config={"displaylogo": False})
    return {"text/html": html, "text/plain": f"(static copy of the {what})"}


class StaticCopy:
    """One static copy of a figure in the notebook's output: shown the first time, updated in place after.

    ``display`` is IPython's ``display`` by default (tests pass their own). Does nothing unless
    :func:`static_figures_wanted`, or outside IPython.

    >>> shown = []
    >>> copy = StaticCopy(display=lambda bundle, **kw: shown.append(bundle) or None)
    >>> copy.show(go.Figure()), shown
    (False, [])
    """

    def __init__(self, display: Callable[..., Any] | None = None) -> None:
        self._display = display
        self._handle: Any = None
        self._with_plotlyjs = False

    def show(self, figure: go.Figure, *, what: str = "figure") -> bool:
        """Put (or refresh) the static copy of ``figure`` in the output; True if one was shown."""
        global _plotlyjs_shipped
        if not static_figures_wanted():
            return False
        display = self._display
        if display is None:
            try:
                from IPython import get_ipython
                from IPython.display import display
            except ImportError:
                return False
            if get_ipython() is None:
                return False
        if self._handle is None:
            with _shipped_lock:
                self._with_plotlyjs, _plotlyjs_shipped = not _plotlyjs_shipped, True
            bundle = static_bundle(figure, include_plotlyjs=self._with_plotlyjs, what=what)
            self._handle = display(bundle, raw=True, display_id=True) or True
        else:
            bundle = static_bundle(figure, include_plotlyjs=self._with_plotlyjs, what=what)
            if hasattr(self._handle, "update"):
                self._handle.update(bundle, raw=True)
            else:
                display(bundle, raw=True)
        return True
