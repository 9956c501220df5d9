"""How a finished run ended, in words a learner reads: the outcome, its one-sentence message, and what a budget
counted. Kept apart from the runner, which gathers the facts (the child's messages, its exit status, the budget
stop), so the wording of every ending is in one place and can be read and tested without starting a child.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import Any

from ..core.sizes import format_bytes
from .memory import MemorySample

__all__ = ["budget_details", "decide_outcome"]


def decide_outcome(
    *,
    result: dict[str, Any] | None,
    error: dict[str, Any] | None,
    ready: dict[str, Any] | None,
    cancelled: bool,
    budget_stop: dict[str, Any] | None,
    budget_bytes: int | None,
    returncode: int | None,
    last_rss_bytes: int | None,
    stderr_tail: Callable[[], str],
) -> tuple[str, str | None, str | None]:
    """(outcome, message, error kind) of a run, from what the runner saw; the first that applies wins: a result,
    a cancel, a budget stop, an error the child reported, a signal, any other exit.

    >>> decide_outcome(result=None, error=None, ready={"t_s": 0}, cancelled=False,
    ...                budget_stop={"by": "watchdog", "t_s": 1.5, "rss_bytes": 9 * 10**8, "counted_bytes": 8 * 10**8},
    ...                budget_bytes=7 * 10**8, returncode=-9, last_rss_bytes=None, stderr_tail=str)[0::2]
    ('stopped_by_budget', 'budget')
    >>> decide_outcome(result=None, error=None, ready=None, cancelled=False, budget_stop=None, budget_bytes=None,
    ...                returncode=1, last_rss_bytes=None, stderr_tail=lambda: "ImportError: no torch")[1]
    'The loading process exited with code 1 before reporting (ImportError: no torch).'
    """
    if result:
        return "ok", None, None
    if cancelled:
        return "cancelled", "The run was cancelled before it finished.", "cancelled"
    if budget_stop is not None:
        at = budget_stop.get("t_s")
        rss = budget_stop.get("rss_bytes")
        when = f"at {at:.2f} s" if at is not None else "early"
        if budget_stop["by"] == "kernel":
            crossed = (
                f"The kernel killed the load {when} (RSS {format_bytes(rss)}): the memory it could not "
                f"reclaim did not fit the budget of {format_bytes(budget_bytes)}"
            )
        else:
            crossed = (
                f"Stopped {when}: the start-up RSS plus the memory the load added that cannot be reclaimed "
                f"reached {format_bytes(budget_stop.get('counted_bytes'))} (RSS {format_bytes(rss)}), over "
                f"the budget of {format_bytes(budget_bytes)}"
            )
        if ready is None or budget_stop.get("before_load"):
            return "stopped_by_budget", crossed + " before the load began; the budget is below what Python " \
                "and torch alone need, so raise it.", "budget"
        return "stopped_by_budget", crossed + "; this strategy needs more RAM than the simulated machine has.", \
            "budget"
    if error:
        return "error", error["message"], error.get("kind", "load_failed")
    if returncode is not None and returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        last_rss = format_bytes(last_rss_bytes) if last_rss_bytes is not None else "an unknown size"
        if sig == getattr(signal, "SIGKILL", 9):
            return "killed", (
                f"The loading process was killed by the operating system ({name}) at {last_rss} RSS; usually "
                "the machine ran out of memory: try a strategy with a lower peak or a smaller checkpoint."
            ), "killed"
        return "crashed", f"The loading process crashed ({name}) at {last_rss} RSS; your kernel is fine, run " \
            "it again.", "crashed"
    tail = stderr_tail()
    code = "an unknown code" if returncode is None else f"code {returncode}"
    return "crashed", f"The loading process exited with {code} before reporting" + (
        f" ({tail})." if tail else "."
    ), "crashed"


def budget_details(budget_mode: str | None, limit: Any, samples: Sequence[MemorySample]) -> dict[str, str]:
    """What a budget counted and the mechanism that enforced it, for ``Report.details`` (empty without one).

    ``limit`` is the run's cgroup limit (``.version``, ``.path``) or None.

    >>> budget_details(None, None, [])
    {}
    >>> budget_details("watchdog", None, [MemorySample(0.1, 100, None, None, None)])["budget_counts"][:3]
    'RSS'
    """
    details: dict[str, str] = {}
    if budget_mode == "watchdog":
        details["budget_counts"] = (
            "the RSS at start-up plus the growth of RssAnon + RssShmem (memory the kernel cannot reclaim)"
            if any(s.rss_anon_bytes is not None for s in samples)
            else "RSS (this platform gives no anonymous/file split, so file-backed pages count too)"
        )
    if budget_mode == "systemd":
        details["budget_mechanism"] = "a transient systemd scope (StartTransientUnit with PIDs=, MemoryMax)" + (
            f": cgroup v2 at {limit.path}" if limit is not None else "")
    elif limit is not None:
        details["budget_mechanism"] = f"cgroup v{limit.version} at {limit.path}"
    if budget_mode in ("cgroup", "systemd"):
        limit_is = ("what the scope held at the load start plus the budget minus that RSS" if budget_mode == "systemd"
                    else "budget minus that RSS")
        details["budget_counts"] = (
            f"the RSS at start-up, plus what the kernel charged the child's memory cgroup (limit = {limit_is}): "
            "memory it allocated and page cache it brought in after it started, file pages reclaimed "
            "under pressure; pages already cached by another process are not charged (use cold_cache)"
        )
    return details
