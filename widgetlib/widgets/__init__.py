"""The JupyterLab widgets: MemoryPlot (a live RAM timeline), StrategyPanel (one strategy, Run/Stop, result
card) and CompareBoard (all four strategies overlaid, a table, a max_memory sweep).

This is the only package that imports ipywidgets and plotly's widget classes; ``widgetlib.core`` and
``widgetlib.measure`` never import it. Every widget also works without a widget front end (nbconvert,
plain ``python``): calls block and return Reports, and ``plot.static_figure().show()`` draws a static copy.

>>> from widgetlib import MemoryPlot, StrategyPanel, CompareBoard
>>> MemoryPlot.__module__
'widgetlib.widgets.plot'
"""

from __future__ import annotations

from ..measure.render import report_card_html, report_figures, report_table_html
from .board import CompareBoard, default_sweep_values
from .panel import StrategyPanel
from .plot import BYTES_PER_MB, MemoryPlot, to_mb

__all__ = [
    "BYTES_PER_MB",
    "CompareBoard",
    "MemoryPlot",
    "StrategyPanel",
    "default_sweep_values",
    "report_card_html",
    "report_figures",
    "report_table_html",
    "to_mb",
]
