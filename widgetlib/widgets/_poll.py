"""Wait for a run while the notebook's buttons keep working.

Lessons call ``panel.run()``, which blocks so that the next cell can read the Report. A kernel that is running
a cell does not handle widget messages, so without help a click on Stop would wait until the cell ended.
:func:`wait_handling_ui` blocks like ``threading.Event.wait`` and, inside a Jupyter kernel, handles the
widgets' messages (``comm_msg``: a click, a text box edited) as they arrive, while every other request (the
next cell of a Run All, a completion request) waits, in order, until the cell ends, as it would anyway.

- ipykernel 6: ``jupyter_ui_poll.ui_events()`` does exactly this through ``kernel.do_one_iteration()``.
- ipykernel 7 dropped ``do_one_iteration``; jupyter-ui-poll 1.1.0 calls it and swallows the AttributeError
  (jupyter_ui_poll/_poll.py:120), so it polls nothing: checked against ipykernel 7.4, a click sent during its
  wait was handled only after the cell ended. There the shell
  channel thread forwards each message to the main thread over an inproc socket
  (ipykernel/subshell_manager.py:80 ``_shell_channel_to_main``, read by ``set_on_recv_callback`` at :156), so this
  module reads that socket itself while it waits: widget messages go to ``kernel.dispatch_shell(...,
  concurrent=True)``, the path ipykernel 7.4 itself takes for comm messages while a cell holds the shell
  (kernelbase.py:664, in ``shell_main``); the others are handed back to the kernel's loop, in order, for after the cell.
- Anywhere else (plain Python, another kernel, a failure to hook in): a plain wait.

A Ctrl-C / Kernel → Interrupt still raises ``KeyboardInterrupt`` out of the wait.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Collection
from functools import partial
from typing import Any

__all__ = ["wait_handling_ui"]

_WIDGET_MESSAGES = {"comm_open", "comm_msg", "comm_close"}
# OFFLOAD_LAB_UI_POLL=0: a plain wait (Stop then works once the cell ends; Interrupt always does).
POLL_ENV = "OFFLOAD_LAB_UI_POLL"
_POLL_INTERVAL_S = 0.02
_polling = threading.local()


def _kernel() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None)


def wait_handling_ui(done: threading.Event, timeout_s: float | None = None, *,
                     comm_ids: Collection[str] | None = None) -> bool:
    """Block until ``done`` is set (True) or ``timeout_s`` passes (False), handling widget clicks meanwhile
    when called from a Jupyter kernel's main thread.

    ``comm_ids`` (ipykernel 7): handle messages of these widgets only (a panel's buttons and boxes), and leave
    the others, like every other request, for after the cell. The live plotly figure is among the others on
    purpose: its browser side answers each redraw, and handling those answers on the main thread while the
    redraw thread mutates the figure is the cross-thread use plotly's widget state is not made for; left for
    after the cell, like in any cell that does not wait, they do not stop the plot drawing live.

    >>> event = threading.Event(); event.set()
    >>> wait_handling_ui(event), wait_handling_ui(threading.Event(), 0.05)
    (True, False)
    """
    kernel = _kernel() if os.environ.get(POLL_ENV, "1") != "0" else None
    if (kernel is None or threading.current_thread() is not threading.main_thread()
            or getattr(_polling, "active", False)):  # a click handled here that waits again: plain wait
        return done.wait(timeout_s)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    _polling.active = True
    try:
        if hasattr(kernel, "do_one_iteration"):
            return _wait_ui_poll(done, deadline)
        if getattr(kernel, "shell_channel_thread", None) is not None:
            return _wait_ipykernel7(kernel, done, deadline, None if comm_ids is None else set(comm_ids))
        return done.wait(timeout_s)
    finally:
        _polling.active = False


def _left(deadline: float | None) -> float:
    return _POLL_INTERVAL_S if deadline is None else max(0.0, min(_POLL_INTERVAL_S, deadline - time.monotonic()))


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _wait_ui_poll(done: threading.Event, deadline: float | None) -> bool:
    """ipykernel 6: jupyter-ui-poll's ``ui_events`` (process up to 10 queued UI events per tick)."""
    try:
        from jupyter_ui_poll import ui_events
    except ImportError:
        return done.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
    with ui_events() as poll:
        while not done.wait(_left(deadline)):
            if _expired(deadline):
                return False
            poll(10)
    return True


def _wait_ipykernel7(kernel: Any, done: threading.Event, deadline: float | None, comm_ids: set[str] | None) -> bool:
    try:
        import zmq

        pair = kernel.shell_channel_thread.manager.get_shell_channel_to_subshell_pair(None)
        socket = pair.to_socket
        session = kernel.session
    except Exception:  # an ipykernel whose insides differ: a plain wait, Stop works once the cell ends
        return done.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
    deferred: list[Any] = []
    try:
        while not done.wait(_left(deadline)):
            if _expired(deadline):
                return False
            while True:
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                if _is_widget_message(session, frames, comm_ids):
                    _dispatch_now(kernel, frames)
                else:
                    deferred.append(frames)
        return True
    finally:
        # Everything else, in arrival order, to the kernel's own handler, once the running cell lets it.
        for frames in deferred:
            kernel.io_loop.add_callback(partial(kernel.shell_main, None, frames))


def _is_widget_message(session: Any, frames: list[Any], comm_ids: set[str] | None) -> bool:
    """True for a comm message (of one of ``comm_ids``, when given): one to handle now."""
    try:
        # Header and content only, unsigned-checked: a full deserialize records the signature, and the kernel's
        # own deserialize of the same message would then refuse it as a replay (ipykernel reads comm ids the
        # same way, kernelbase.py:615).
        _idents, body = session.feed_identities(list(frames), copy=False)
        message = session.deserialize(body, content=False, copy=False)
        if message["header"].get("msg_type") not in _WIDGET_MESSAGES:
            return False
        return comm_ids is None or session.unpack(message["content"]).get("comm_id") in comm_ids
    except Exception:
        return False


def _dispatch_now(kernel: Any, frames: list[Any]) -> None:
    """Handle one widget message now, as ipykernel does for comm messages that arrive while a cell runs."""
    ident = kernel._get_shell_context_var(kernel._shell_parent_ident)
    parent = kernel.get_parent("shell")
    coroutine = kernel.dispatch_shell(frames, subshell_id=None, concurrent=True)
    try:
        # A comm handler is synchronous: the coroutine finishes in one step, without waiting on the loop.
        coroutine.send(None)
    except StopIteration:
        pass
    else:  # it wanted the event loop, which this cell is holding: give up on this message rather than hang
        coroutine.close()
    finally:
        kernel.set_parent(ident, parent, channel="shell")  # the cell's output stays in the cell
