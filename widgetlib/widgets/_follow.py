"""Bring a widget's live plot into view when a run starts.

JupyterLab's Run All makes the notebook's last cell the active one and scrolls there at once, so while a load
runs, its live plot is a screen or more above the viewport and the learner sees ``[*]`` prompts. No notebook
front end offers "follow the running cell", and a kernel cannot scroll the page; a widget's front-end code can.
An anywidget (already installed: plotly's FigureWidget is one) with a few lines of JavaScript scrolls the plot
into view when the kernel says a run started — only as far as needed, and not at all when it is in view (a
learner stepping with Shift+Enter sees no jump).
"""

from __future__ import annotations

import anywidget
import traitlets

__all__: list[str] = []

# The plot of the panel or board this widget sits in (its CSS classes are set by _base.py's subclasses).
_ESM = """
function render({ model, el }) {
  el.classList.add("offload-lab-follow");
  el.style.height = "0px";
  model.on("change:runs", () => {
    const box = el.closest(".offload-lab-panel, .offload-lab-board");
    const plot = box ? box.querySelector(".js-plotly-plot") : null;
    const target = plot || box;
    if (!target) return;
    const r = target.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) {
      target.scrollIntoView({ block: "nearest" });
    }
  });
}
export default { render };
"""


class FollowRuns(anywidget.AnyWidget):
    """Zero-height widget: each :meth:`run_started` scrolls its box's plot into the viewport, where it is not.

    >>> follow = FollowRuns()
    >>> follow.run_started(); follow.runs
    1
    """

    _esm = _ESM
    runs = traitlets.Int(0).tag(sync=True)

    def run_started(self) -> None:
        """Tell the page a run started (the counter is what changes; its value means nothing else)."""
        self.runs += 1
