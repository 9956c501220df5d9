"""StrategyPanel: pick a checkpoint and a strategy, press Run, watch RAM move live, read the result card."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import ipywidgets as w

from ..core.options import CHECKPOINT_DEFAULTS, DTYPE_CHOICES, FORMATS, RUN_DEFAULTS
from ..core.registry import check_strategy, get_strategy, strategy_names
from ..core.sizes import format_bytes, parse_size
from ..measure.render import report_card_html
from ..measure.report import Report
from ._base import _budget_text, _LabWidget, _max_memory_text, _text_or_none

__all__ = ["StrategyPanel"]


def _options_note(options: dict[str, Any]) -> str | None:
    """What sets a panel's run apart from the defaults, as its legend note: the options not at their default
    (sizes in bytes read back as sizes, an offload folder by its name); None when every option is a default.

    >>> _options_note({"dtype": "bfloat16", "max_memory": "30MB", "budget": None})
    'dtype=bfloat16, max_memory=30 MB'
    >>> _options_note({"dtype": "keep", "offload_folder": "/tmp/runs/offload"}), _options_note({"dtype": "keep"})
    ('offload_folder=offload', None)
    """
    parts = []
    for name, value in options.items():
        if value is None or value == getattr(RUN_DEFAULTS, name, None):
            continue
        if name == "offload_folder":
            value = Path(value).name
        elif name in ("max_memory", "budget"):
            value = format_bytes(parse_size(value, name=name))
        parts.append(f"{name}={value}")
    return ", ".join(parts) or None


class StrategyPanel(_LabWidget):
    """One strategy, one checkpoint, one measured run in a fresh process, drawn live on ``.plot``.

    ``checkpoint`` is a folder to load; without one, pressing Run first builds (and caches) a checkpoint from
    ``size`` / ``shards`` / ``format`` with a progress bar. ``dtype`` is the dtype the model is loaded in
    (``"keep"``: as stored). ``max_memory`` and ``offload_folder`` apply to the ``offload_folder`` strategy only.
    ``budget`` simulates a smaller machine: the run is stopped the moment its RSS crosses it.
    ``projector=True`` draws everything larger, for a classroom screen.

    The Run button never blocks the kernel; :meth:`run` does the same from code and blocks until the Report is
    in (``None`` if the run could not start: the reason is in ``.message`` and shown in the widget).
    Each run is added to the plot, named by the options that differ from the defaults, so a change can be
    compared with the run before it; the Clear button (or :meth:`clear`) empties the plot.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> panel = StrategyPanel(make_checkpoint(size="8MB", shards=2), "manual_shards")
    >>> report = panel.run()
    >>> report.outcome, panel.report is report, panel.plot.point_count() > 0
    ('ok', True, True)
    """

    _noun = "panel"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        strategy: str = "normal",
        *,
        size: str | int | None = None,
        shards: int | None = None,
        format: str = CHECKPOINT_DEFAULTS.format,
        dtype: str = RUN_DEFAULTS.dtype,
        max_memory: str | int | None = RUN_DEFAULTS.max_memory,
        budget: str | int | None = RUN_DEFAULTS.budget,
        offload_folder: str | Path | None = RUN_DEFAULTS.offload_folder,
        projector: bool = False,
    ) -> None:
        check_strategy(strategy)
        super().__init__(checkpoint, size, projector=projector)
        self.report: Report | None = None
        self._run_done = threading.Event()
        # The registry's strategies at construction time: a registered fifth strategy is offered here too.
        self.strategy_dropdown = w.Dropdown(options=strategy_names(), value=strategy, description="strategy")
        self.dtype_dropdown = w.Dropdown(options=DTYPE_CHOICES, value=dtype, description="dtype",
                                         layout=w.Layout(width="200px"))
        self.shards_text = w.BoundedIntText(value=shards or 0, min=0, max=1000, description="shards",
                                            tooltip="0 = the default for the size", layout=w.Layout(width="160px"))
        self.format_dropdown = w.Dropdown(options=FORMATS, value=format, description="format",
                                          layout=w.Layout(width="220px"))
        self.max_memory_text = _max_memory_text(max_memory)
        self.offload_folder_text = w.Text(
            value="" if offload_folder is None else str(offload_folder), description="offload_folder",
            placeholder="offload_folder only; empty = a temporary folder",
            style={"description_width": "initial"}, layout=w.Layout(width="340px"),
        )
        self.budget_text = _budget_text(budget)
        self.result = w.HTML("")
        self.clear_button = w.Button(description="Clear", icon="trash", tooltip="Remove every run from the plot")
        self.clear_button.add_class("offload-lab-clear")
        self.clear_button.on_click(lambda _button: self.clear())
        self.strategy_dropdown.observe(lambda _change: self._sync_enabled(), names="value")
        self._sync_enabled()
        self.widget = w.VBox([
            self.checkpoint_text,
            w.HBox([w.HTML("<b>build a checkpoint:</b>"), self.size_text, self.shards_text, self.format_dropdown]),
            w.HBox([self.strategy_dropdown, self.dtype_dropdown, self.budget_text]),
            w.HBox([self.max_memory_text, self.offload_folder_text]),
            w.HBox([self.run_button, self.stop_button, self.clear_button, self.build_progress]),
            self.status,
            self.follow,
            self.plot.figure,
            self.message_box,
            self.result,
        ])
        self.widget.add_class("offload-lab-panel")

    # ------------------------------------------------------------------------------------------ API

    @property
    def strategy(self) -> str:
        """The strategy the next run uses (the dropdown's value).

        >>> panel = StrategyPanel(); panel.strategy = "offload_folder"; panel.max_memory_text.disabled
        False
        """
        return self.strategy_dropdown.value

    @strategy.setter
    def strategy(self, value: str) -> None:
        self.strategy_dropdown.value = check_strategy(value)

    def start(self) -> bool:
        """Start a run in the background (what the Run button does); False if this panel is already busy.

        Errors (a missing folder, a bad size, another run in progress) show in the widget as one message.

        >>> panel = StrategyPanel("/no/such/folder")
        >>> panel.start(), panel.wait(30), panel.message.startswith("The checkpoint folder /no/such/folder")
        (True, True, True)
        """
        return self._launch(self._job)

    def run(self, timeout_s: float | None = None) -> Report | None:
        """Run with the current settings and block until done; return the Report (also in ``.report``).

        Returns ``None`` when the run could not start (a wrong path, a bad size, another run active): the
        reason is in ``.message`` and in the widget. The Stop button works while this blocks; the Report of
        a stopped run says ``outcome="cancelled"``.

        >>> panel = StrategyPanel("/no/such/folder")
        >>> panel.run() is None, "/no/such/folder" in panel.message
        (True, True)
        """
        if not self.start():
            return None
        self.wait(timeout_s)
        self._show_static_copies()
        return self.report if self._run_done.is_set() else None

    def clear(self) -> bool:
        """Remove every run from the plot and the result card (what the Clear button does); False, with a
        message, while a run is in progress (its curve would have nowhere to go).

        >>> panel = StrategyPanel()
        >>> panel.clear(), panel.plot.run_ids
        (True, [])
        """
        if self.busy:
            self._show_message("A run is in progress; press Stop or wait for it to finish, then Clear.")
            return False
        self.plot.clear()
        self.report = None
        self.result.value = ""
        self._show_message(None)
        self._set_status("ready")
        return True

    # ------------------------------------------------------------------------------------ internals

    def _sync_enabled(self) -> None:
        # A box is live only for a strategy that uses its option (the registry says which).
        accepts = get_strategy(self.strategy_dropdown.value).accepts
        self.max_memory_text.disabled = not accepts("max_memory")
        self.offload_folder_text.disabled = not accepts("offload_folder")

    def _options(self, strategy: str) -> tuple[dict[str, Any], int | None]:
        budget = _text_or_none(self.budget_text.value)
        budget_bytes = parse_size(budget, name="budget") if budget is not None else None
        options: dict[str, Any] = {"dtype": self.dtype_dropdown.value, "budget": budget}
        accepts = get_strategy(strategy).accepts
        if accepts("max_memory"):
            options["max_memory"] = _text_or_none(self.max_memory_text.value)
        if accepts("offload_folder"):
            options["offload_folder"] = _text_or_none(self.offload_folder_text.value)
        return options, budget_bytes

    def _job(self) -> None:
        from ..core.hf_folder import inspect_checkpoint

        self._run_done.clear()
        strategy = self.strategy
        options, budget_bytes = self._options(strategy)  # option typos fail before a checkpoint is built
        folder = self._resolve_checkpoint(shards=self.shards_text.value or None, format=self.format_dropdown.value)
        info = inspect_checkpoint(folder)
        self.result.value = ""
        handle = self._start_run(folder, strategy, options, checkpoint_bytes=info.total_bytes,
                                 budget_bytes=budget_bytes, note=_options_note(options), on_done=self._on_done)
        if handle is None:
            self._set_status("stopped before the run started")
            return
        # Keep this worker (and .busy) alive until on_done has drawn the result, so run() returns a full state.
        self._run_done.wait()

    def _on_done(self, report: Report) -> None:
        # Called on the runner's reader thread once the child has exited.
        try:
            self.report = report
            self.result.value = self._sized(report_card_html(report))
            if report.ok:
                self._set_status(
                    f"{report.strategy} done: peak RSS {format_bytes(report.peak_rss_bytes)}, "
                    f"load {report.load_s:.2f} s"
                )
            else:
                self._set_status(f"{report.strategy}: {report.outcome}")
                self._show_message(report.error or f"The run ended with outcome {report.outcome}.")
        finally:
            self._run_done.set()

    def _html_parts(self) -> list[w.HTML]:
        return [self.status, self.message_box, self.result]

    def __repr__(self) -> str:
        checkpoint = _text_or_none(self.checkpoint_text.value) or "(built on Run)"
        last = f"; last run: {self.report.summary().splitlines()[0]}" if self.report else ""
        message = f"; message: {self.message}" if self.message else ""
        return f"StrategyPanel(strategy={self.strategy!r}, checkpoint={checkpoint!r}{last}{message})"
