"""What StrategyPanel and CompareBoard share: one worker thread, checkpoint building with a progress bar,
Stop, the one-message error box, and display with or without a widget front end."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import plotly.graph_objects as go

from ..core.errors import OffloadLabError
from ..core.options import CHECKPOINT_DEFAULTS
from ..core.sizes import format_bytes, parse_size
from ..measure import runner
from ..measure.memory import Event
from ..measure.render import error_html
from ..measure.report import Report
from ._follow import FollowRuns
from ._poll import wait_handling_ui
from .plot import MemoryPlot

__all__: list[str] = []

_WIDE = w.Layout(width="100%")


class _Stopped(Exception):
    """Stop was pressed while the checkpoint was being built (raised from make_checkpoint's progress)."""


def _text_or_none(value: Any) -> str | None:
    """A text box's value, or None when it is empty (empty means "not set", e.g. no budget)."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _max_memory_text(max_memory: str | int | None) -> w.Text:
    """The max_memory box (offload_folder's RAM for weights), the same on the panel and the board."""
    return w.Text(
        value="" if max_memory is None else str(max_memory), description="max_memory",
        placeholder="offload_folder only; empty = half the model",
        style={"description_width": "initial"}, layout=w.Layout(width="340px"),
    )


def _budget_text(budget: str | int | None) -> w.Text:
    """The RAM budget box ("simulate a smaller machine"), the same on the panel and the board."""
    return w.Text(
        value="" if budget is None else str(budget), description="budget",
        placeholder="simulate a smaller machine, e.g. 1.5GB; empty = none", layout=w.Layout(width="340px"),
    )


def _status_html(text: str, projector: bool = False) -> str:
    size = ";font-size:150%" if projector else ""
    return f'<span class="offload-lab-status" style="color:#333{size}">{html.escape(text)}</span>'


class _LabWidget:
    """Base of the panels: owns ``.plot``, a status line, a progress bar, a message box and Run/Stop."""

    _noun = "panel"

    def __init__(self, checkpoint: str | Path | None, size: str | int | None, *, projector: bool = False) -> None:
        self.projector = bool(projector)
        self.plot = MemoryPlot(projector=self.projector)
        # In the widget's box next to the plot: scrolls the plot into view as a run starts (Run All leaves the
        # viewport at the notebook's last cell otherwise).
        self.follow = FollowRuns()
        self.checkpoint_text = w.Text(
            value="" if checkpoint is None else str(checkpoint), description="checkpoint",
            placeholder="path to a Hugging Face checkpoint folder; empty = build one with the settings below",
            layout=_WIDE, style={"description_width": "initial"},
        )
        self.size_text = w.Text(
            value="" if size is None else str(size), description="size",
            placeholder="e.g. 250MB; empty = demo size", layout=w.Layout(width="220px"),
        )
        self.build_progress = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, description="building", layout=w.Layout(display="none")
        )
        self.status = w.HTML(_status_html("ready", self.projector))
        self.message_box = w.HTML("")
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        # Works while a cell blocks in .run() too: wait() handles widget clicks as they come (see _poll.py).
        self.stop_button = w.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True, tooltip="Stop the run",
        )
        # Stable hooks for the browser tests and for anyone styling the widgets.
        self.run_button.add_class("offload-lab-run")
        self.stop_button.add_class("offload-lab-stop")
        self.checkpoint_text.add_class("offload-lab-checkpoint")
        self.run_button.on_click(lambda _button: self.start())
        self.stop_button.on_click(lambda _button: self.stop())
        self.message: str | None = None
        self._state_lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._finished = threading.Event()
        self._finished.set()
        self._worker: threading.Thread | None = None
        self._handle: runner.RunHandle | None = None
        self.widget: w.Widget = w.VBox()
        if self.projector:  # a classroom screen: the buttons and the figures' text larger too
            for button in (self.run_button, self.stop_button):
                button.style.font_size = "18px"
                button.layout.height = "40px"
        # A learner reads the cell before pressing Run: time enough for a spare child to import torch.
        runner.prewarm()

    # ------------------------------------------------------------------------------ running and stopping

    @property
    def busy(self) -> bool:
        """True while this widget is building a checkpoint or has a run in progress.

        >>> from widgetlib.widgets import StrategyPanel
        >>> StrategyPanel().busy
        False
        """
        return not self._finished.is_set()

    def _launch(self, job: Callable[[], None]) -> bool:
        """Run ``job`` in a worker thread so a button click never blocks the kernel; False if already busy."""
        with self._state_lock:
            if self.busy:
                self._show_message(
                    f"This {self._noun} is already running; wait for it to finish or press Stop first."
                )
                return False
            self._finished.clear()
            self._stop_requested.clear()
            self._handle = None
            self._show_message(None)
            self.run_button.disabled = True
            self.stop_button.disabled = False
            self._worker = threading.Thread(target=self._guarded, args=(job,), name="offload-lab-worker",
                                            daemon=True)
            self._worker.start()
        return True

    def _guarded(self, job: Callable[[], None]) -> None:
        try:
            job()
        except _Stopped:
            self._show_message("Stopped while building the checkpoint; nothing was run.")
            self._set_status("stopped")
        except OffloadLabError as exc:
            self._show_message(exc.message)
            self._set_status("not run: see the message below")
        except Exception as exc:  # a bug in Offload Lab: say so in one line, keep the widget usable
            self._show_message(
                f"Offload Lab hit an internal error ({type(exc).__name__}: {exc}); your kernel is fine, "
                "please report this."
            )
            self._set_status("internal error")
        finally:
            self._release()

    def _release(self) -> None:
        with self._state_lock:
            self.run_button.disabled = False
            self.stop_button.disabled = True
            self._finished.set()

    def start(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:
        """Stop what is running: the current load is cancelled (its Report says ``"cancelled"``), a checkpoint
        build is abandoned, a comparison or sweep does not go on to the next run.

        >>> from widgetlib.widgets import StrategyPanel
        >>> panel = StrategyPanel()
        >>> panel.stop()  # nothing running: nothing happens
        >>> panel.busy, panel.message, panel.run_button.disabled
        (False, None, False)
        """
        self._stop_requested.set()
        handle = self._handle
        if handle is not None and not handle.done:
            handle.cancel()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the current job ends (a run, a comparison, a sweep); False on timeout.

        In a notebook, the widget's buttons keep working meanwhile: Stop stops the run that this cell waits
        for. The kernel's Interrupt stops it too (and then interrupts the cell).

        >>> from widgetlib.widgets import StrategyPanel
        >>> StrategyPanel().wait(1.0)
        True
        """
        try:
            done = wait_handling_ui(self._finished, timeout_s, comm_ids=self._control_ids())
        except KeyboardInterrupt:
            # The learner interrupted the kernel during .run(): stop the load too (it runs in another
            # process and would otherwise go on drawing), then let the interrupt through.
            self.stop()
            self._finished.wait(30)
            raise
        worker = self._worker
        if done and worker is not None and worker is not threading.current_thread():
            worker.join(timeout_s)
        if done:
            self.plot.join()
        return done

    def _control_ids(self) -> set[str]:
        """The comm ids of this widget's controls (buttons, boxes): everything but its plotly figures, whose
        messages must wait for the cell (see _poll.py)."""
        ids: set[str] = set()
        todo: list[Any] = [self.widget]
        while todo:
            widget = todo.pop()
            if isinstance(widget, go.FigureWidget):
                continue
            if getattr(widget, "model_id", None):
                ids.add(widget.model_id)
            todo.extend(getattr(widget, "children", ()) or ())
        return ids

    # -------------------------------------------------------------------------------- checkpoint

    def _resolve_checkpoint(self, *, shards: int | None = None, format: str = CHECKPOINT_DEFAULTS.format) -> Path:
        """The folder to load: the path typed in, or one built (cached) from the size settings."""
        typed = _text_or_none(self.checkpoint_text.value)
        if typed is not None:
            return Path(typed).expanduser()
        from ..core.checkpoints import demo_checkpoint

        size = _text_or_none(self.size_text.value)
        if size is not None:
            parse_size(size, name="size")  # a typo fails with the size message, before anything is built
        self._set_status("building the checkpoint…")
        self.build_progress.value = 0.0
        self.build_progress.layout.display = None
        try:
            folder = demo_checkpoint(size, shards=shards, format=format, progress=self._build_progress_cb)
        finally:
            self.build_progress.layout.display = "none"
        self.checkpoint_text.value = str(folder)  # the learner sees (and can reuse) the folder that was built
        return folder

    def _build_progress_cb(self, done_bytes: int, total_bytes: int, label: str) -> None:
        if self._stop_requested.is_set():
            raise _Stopped()
        self.build_progress.value = done_bytes / total_bytes if total_bytes else 1.0
        self._set_status(
            f"building the checkpoint: {format_bytes(done_bytes)} of {format_bytes(total_bytes)} ({label})"
        )

    # ------------------------------------------------------------------------------------- one run

    def _start_run(
        self, folder: Path, strategy: str, options: dict[str, Any], *, checkpoint_bytes: int,
        budget_bytes: int | None, note: str | None = None, replace: bool = False,
        on_done: Callable[[Report], None] | None = None,
    ) -> runner.RunHandle | None:
        """Begin a run on the plot and start it without queueing; None if Stop was pressed before."""
        if self._stop_requested.is_set():
            return None
        run_id = self.plot.begin_run(strategy, checkpoint_bytes=checkpoint_bytes, budget_bytes=budget_bytes,
                                     note=note, replace=replace)
        label = f"{strategy} · {note}" if note else strategy
        self.follow.run_started()

        def on_event(event: Event) -> None:
            self.plot.add_event(event, run_id)
            self._set_status(f"running {label}: {event.label} ({event.t_s:.2f} s)")

        def done(report: Report) -> None:
            try:
                self.plot.end_run(report, run_id)
            finally:  # whatever the plot did, whoever waits for this run must hear that it ended
                if on_done is not None:
                    on_done(report)

        try:
            handle = runner.start(
                folder, strategy, **options, queue=False,
                on_sample=lambda sample: self.plot.add_sample(sample, run_id),
                on_event=on_event, on_done=done,
            )
        except BaseException:
            self.plot.discard_run(run_id)  # a refused run (busy, bad option) leaves nothing on the plot
            raise
        self._handle = handle
        self._set_status(f"running {label}: starting a fresh Python process…")
        if self._stop_requested.is_set():  # Stop pressed while the child was being spawned
            handle.cancel()
        return handle

    # ------------------------------------------------------------------------------------- display

    def _set_status(self, text: str) -> None:
        self.status.value = _status_html(text, self.projector)

    def _sized(self, html_text: str) -> str:
        """HTML of a card or table, in projector size when asked for."""
        return f'<div style="font-size:150%">{html_text}</div>' if self.projector and html_text else html_text

    def _show_static_copies(self) -> None:
        # Called in the cell's own thread once a blocking call ends (see _static.py).
        self.plot.show_static_copy()

    def _show_message(self, message: str | None) -> None:
        self.message = message
        self.message_box.value = error_html(message)

    def html_text(self) -> str:
        """All the HTML this widget shows right now (status, message, results), e.g. to check in a test.

        >>> from widgetlib.widgets import StrategyPanel
        >>> "ready" in StrategyPanel().html_text()
        True
        """
        return "\n".join(part.value for part in self._html_parts())

    def _html_parts(self) -> list[w.HTML]:
        return [self.status, self.message_box]

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The live widget where a front end renders widgets; readable text and HTML everywhere else.
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self.html_text()
        return bundle
