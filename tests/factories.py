"""The one place tests build measurements by hand: memory samples, timelines, Reports and the runner's records.

Each factory returns a *valid* value (what the runner could have produced), filled with plain defaults a test
overrides by field name, so a test states only the figures it is about:

>>> r = make_report("manual_shards", baseline_rss_bytes=500 * MB, peak_rss_bytes=560 * MB)
>>> r.checkpoint_bytes, r.peak_above_baseline_bytes, r.peak_ratio
(100000000, 60000000, 0.6)
>>> make_report(outcome="error").error_kind
'load_failed'
>>> make_report(baseline_rss_bytes=10, peak_rss_bytes=5)
Traceback (most recent call last):
...
ValueError: peak_rss_bytes=5 below baseline_rss_bytes=10: no run measures that
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from widgetlib.measure.assemble import RunRecord
from widgetlib.measure.report import OUTCOMES, Report
from widgetlib.measure.samples import Event, MemorySample
from widgetlib.measure.timeline import Timeline

__all__ = ["MB", "make_record", "make_report", "sample", "timeline"]

MB = 10**6

# The error kind each outcome other than "ok" carries when a test names none (widgetlib/core/errors.py).
_KIND_OF = {"error": "load_failed", "cancelled": "cancelled", "stopped_by_budget": "budget", "killed": "killed",
            "crashed": "crashed"}


def sample(t_s: float, rss_bytes: int | float, *, anon: int | None = None, file: int | None = None,
           hwm: int | None = None, split: float | None = None, **more: Any) -> MemorySample:
    """One memory sample; ``split=0.7`` makes 70 % of the RSS anonymous and the rest file-backed (a Linux probe's
    reading), else ``anon``/``file`` are as given (None: a platform without the split).

    >>> s = sample(0.5, 100, split=0.7)
    >>> s.rss_anon_bytes, s.rss_file_bytes, s.hwm_bytes
    (70, 30, None)
    """
    rss = int(rss_bytes)
    if split is not None:
        anon, file = int(rss * split), rss - int(rss * split)
    return MemorySample(t_s=t_s, rss_bytes=rss, rss_anon_bytes=anon, rss_file_bytes=file, hwm_bytes=hwm, **more)


def timeline(samples: Iterable[MemorySample] = (), events: Iterable[Event] = (), **fields: Any) -> Timeline:
    """A Timeline already relative to its load start (``t0_s`` 0).

    >>> timeline([sample(0.1, 5)], [Event(0.0, "ready", "ready")]).sampled_peak_bytes
    5
    """
    return Timeline(t0_s=fields.pop("t0_s", 0.0), samples=list(samples), events=list(events), **fields)


def make_report(strategy: str = "normal", *, samples: Iterable[MemorySample] | None = None,
                events: Iterable[Event] | None = None, **fields: Any) -> Report:
    """A Report of ``strategy`` on a 100 MB checkpoint at ``/ck``, with ``fields`` as given; ``samples`` and
    ``events`` (when no ``timeline`` is given) make its Timeline. A run that did not end "ok" gets the error
    kind and a sentence that outcome carries unless the test gives its own."""
    fields.setdefault("checkpoint", "/ck")
    fields.setdefault("checkpoint_bytes", 100 * MB)
    outcome = fields.setdefault("outcome", "ok")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome={outcome!r} is not one of {OUTCOMES}")
    if outcome != "ok":
        fields.setdefault("error_kind", _KIND_OF[outcome])
        fields.setdefault("error", f"The run ended {outcome} (a test's run).")
    if outcome == "stopped_by_budget":
        fields.setdefault("stopped_by_budget", True)
    if "timeline" not in fields and (samples is not None or events is not None):
        fields["timeline"] = timeline(samples or (), events or ())
    report = Report(strategy=strategy, **fields)
    low = report.peak_rss_bytes is not None and report.peak_rss_bytes < (report.baseline_rss_bytes or 0)
    if low:
        raise ValueError(f"peak_rss_bytes={report.peak_rss_bytes} below baseline_rss_bytes="
                         f"{report.baseline_rss_bytes}: no run measures that")
    return report


def make_record(strategy: str = "normal", *, baseline_rss_bytes: int | None = 400 * MB,
                result: dict[str, Any] | None = None, **fields: Any) -> RunRecord:
    """What the runner saw of a run that became ready at t=10 s (``baseline_rss_bytes`` its RSS then; None: it
    never did) and, when ``result`` is given, sent that result at t=12 s. Times are on the runner's clock.

    >>> record = make_record(result={"load_s": 1.0, "forward_s": 0.1})
    >>> sorted(record.messages), record.t0_s, record.messages["result"]["t_s"]
    (['ready', 'result'], 10.0, 12.0)
    """
    messages = dict(fields.pop("messages", {}))
    if baseline_rss_bytes is not None:
        messages.setdefault("ready", {"type": "ready", "t_s": 10.0, "rss_bytes": baseline_rss_bytes})
        fields.setdefault("t0_s", 10.0)
    if result is not None:
        messages["result"] = {"type": "result", "t_s": 12.0, **result}
    fields.setdefault("checkpoint", "/ck")
    fields.setdefault("checkpoint_bytes", 100 * MB)
    fields.setdefault("request_s", 9.5)
    return RunRecord(strategy=strategy, messages=messages, **fields)
