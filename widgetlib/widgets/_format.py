"""The figures a result card and a comparison table show: the one renderer lives in the measure layer
(``widgetlib.measure.render``), so ``Report``'s own HTML card, the CLI and the widgets agree; re-exported here
for the widgets.

>>> from widgetlib.widgets._format import report_figures
>>> report_figures.__module__
'widgetlib.measure.render'
"""

from __future__ import annotations

from ..measure.render import FIGURE_KEYS, error_html, report_card_html, report_figures, report_table_html

__all__ = ["FIGURE_KEYS", "error_html", "report_card_html", "report_figures", "report_table_html"]
