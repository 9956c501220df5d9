"""From what the runner saw of one run to its :class:`~widgetlib.measure.report.Report`, as a pure function.

The runner (:mod:`widgetlib.measure.runner`) gathers the facts while the child runs: its messages, the samples,
the events, the exit status, the budget stop, the cgroup's counters. :class:`RunRecord` holds them as they
were seen; :func:`assemble_report` derives every figure of the Report from them, reading nothing else (no
clock, no file, no process), so a test can hand it any run, a kernel OOM kill or a child that never said
ready, without starting one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .outcome import budget_details, decide_outcome
from .peaks import best_peak
from .protocol import MSG_ERROR, MSG_READY, MSG_RESULT
from .report import Report
from .samples import Event, MemorySample, non_reclaimable_bytes
from .timeline import Timeline

__all__ = ["RunRecord", "assemble_report", "base_report"]


@dataclass
class RunRecord:
    """What the runner saw of one run, nothing derived yet. Times are on the :func:`~widgetlib.measure.samples.now_s`
    clock; ``t0_s`` is the child's "ready" (the load start), None if it never came.

    ``budget_mode`` is the mechanism as used: ``"cgroup"``, ``"systemd"`` (a transient scope systemd made),
    ``"watchdog"`` or None; ``limit`` the cgroup the runner made (``.version``, ``.path``) or None.
    ``offload_written`` is (files, bytes) that appeared in the offload folder during the run.
    """

    strategy: str
    checkpoint: str
    checkpoint_bytes: int
    request_s: float
    checkpoint_format: str | None = None
    prediction: str | None = None
    predicted_above_baseline_bytes: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    max_memory_bytes: int | None = None
    offload_folder: str | None = None  # the learner's folder; None when the run used its own
    budget_bytes: int | None = None
    budget_mode: str | None = None
    limit: Any = None
    limit_events: dict[str, Any] | None = None
    t0_s: float | None = None
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # the last message of each type
    samples: list[MemorySample] = field(default_factory=list)  # the sampler's, from outside
    event_samples: list[MemorySample] = field(default_factory=list)  # the child's own reading at each event
    events: list[Event] = field(default_factory=list)
    gpu_samples: list[tuple[float, int]] = field(default_factory=list)
    cancelled: bool = False
    budget_stop: dict[str, Any] | None = None  # the watchdog's (or the runner's before the load), if it stopped it
    returncode: int | None = None
    stderr_tail: str = ""
    offload_written: tuple[int, int] = (0, 0)
    cold_cache: dict[str, Any] | None = None
    callback_error: str | None = None


def base_report(record: RunRecord, **fields: Any) -> Report:
    """The Report fields every run has, whatever happened to it, plus ``fields`` (a crash of the runner itself
    gets only these).

    >>> record = RunRecord("normal", "/ck", 100, request_s=5.0, budget_mode="systemd")
    >>> base_report(record, outcome="crashed").budget_mode  # a systemd scope is a cgroup too
    'cgroup'
    """
    ready = record.messages.get(MSG_READY)
    return Report(
        strategy=record.strategy,
        checkpoint=record.checkpoint,
        checkpoint_bytes=record.checkpoint_bytes,
        checkpoint_format=record.checkpoint_format,
        prediction=record.prediction,
        offload_folder=record.offload_folder,
        budget_bytes=record.budget_bytes,
        # Published as "cgroup" | "watchdog" | None; a systemd scope is a cgroup too (details say which).
        budget_mode="cgroup" if record.budget_mode == "systemd" else record.budget_mode,
        max_memory_bytes=record.max_memory_bytes,
        options=record.options,
        startup_s=(ready["t_s"] - record.request_s) if ready else None,
        limit_events=record.limit_events,
        **fields,
    )


def _kernel_stop(record: RunRecord, samples: list[MemorySample], rel: float) -> dict[str, Any] | None:
    """The budget stop the kernel made (an OOM kill in the run's cgroup) when nothing else stopped the run."""
    oom_kills = (record.limit_events or {}).get("oom_kill") or 0
    if record.budget_mode == "systemd" and record.returncode == -9 and not record.cancelled:
        oom_kills = 1  # systemd removes the scope's folder as the kill empties it: a SIGKILL in it is its OOM kill
    if record.messages.get(MSG_RESULT) or record.cancelled or record.budget_stop is not None or oom_kills <= 0:
        return record.budget_stop
    last = samples[-1] if samples else None
    return {"by": "kernel", "t_s": last.t_s - rel if last else None, "rss_bytes": last.rss_bytes if last else None}


def assemble_report(record: RunRecord) -> Report:
    """The Report of a finished run: its outcome and message, the peak (the best source the platform gave), the
    Timeline relative to the load start, the offload folder's bytes, the budget's story and the prediction set
    against the baseline.

    >>> ready = {"type": "ready", "t_s": 10.0, "rss_bytes": 400}
    >>> done = {"type": "result", "t_s": 12.0, "load_s": 1.5, "forward_s": 0.25, "kernel_peak_bytes": 900}
    >>> report = assemble_report(RunRecord(
    ...     "normal", "/ck", 250, request_s=9.5, predicted_above_baseline_bytes=500, t0_s=10.0,
    ...     messages={"ready": ready, "result": done},
    ...     samples=[MemorySample(9.8, 300, None, None, None), MemorySample(11.0, 850, None, None, None),
    ...              MemorySample(12.5, 200, None, None, None)]))  # the last one: the child exiting
    >>> report.outcome, report.peak_rss_bytes, report.peak_ratio, report.predicted_peak_rss_bytes, report.startup_s
    ('ok', 900, 2.0, 900, 0.5)
    >>> [round(s.t_s, 3) for s in report.timeline.samples]  # from the load start; start-up kept, exit dropped
    [-0.2, 1.0]
    """
    ready = record.messages.get(MSG_READY)
    result = record.messages.get(MSG_RESULT)
    error = record.messages.get(MSG_ERROR)
    # The run ends with the child's last message; what follows is the process exiting, not the load.
    end_t = (result or error or {}).get("t_s")
    samples = sorted((s for s in [*record.samples, *record.event_samples] if end_t is None or s.t_s <= end_t),
                     key=lambda s: s.t_s)
    baseline = ready["rss_bytes"] if ready else None
    ready_t = ready["t_s"] if ready else None
    after_ready = [s for s in samples if ready_t is None or s.t_s >= ready_t]
    origin = record.t0_s if record.t0_s is not None else record.request_s

    peak, source, sampled_peak = best_peak(result or error or {}, after_ready)
    budget_stop = _kernel_stop(record, samples, origin)
    outcome, message, error_kind = decide_outcome(
        result=result, error=error, ready=ready, cancelled=record.cancelled, budget_stop=budget_stop,
        budget_bytes=record.budget_bytes, returncode=record.returncode,
        last_rss_bytes=samples[-1].rss_bytes if samples else None, stderr_tail=lambda: record.stderr_tail,
    )

    timeline = Timeline.from_absolute(
        origin, samples, record.events, baseline_rss_bytes=baseline, kernel_peak_bytes=peak,
        gpu_samples=record.gpu_samples,
    )
    if budget_stop is not None and budget_stop.get("t_s") is not None:
        label = "stopped by the kernel (OOM kill)" if budget_stop["by"] == "kernel" else "stopped by the watchdog"
        timeline.events.append(Event(float(budget_stop["t_s"]), label, "budget_stop"))
        timeline.events.sort(key=lambda e: e.t_s)
    details: dict[str, Any] = (
        dict(result.get("details", {}))
        if result
        else ({"traceback": error["traceback"]} if error and error.get("traceback") else {})
    )
    if result and result.get("forward_times_s"):
        details["forward_times_s"] = result["forward_times_s"]
    if record.cold_cache is not None:
        details["cold_cache"] = record.cold_cache
    details.update(budget_details(record.budget_mode, record.limit, samples))
    if record.callback_error:
        details["callback_error"] = record.callback_error
    offload_files, offload_bytes = record.offload_written
    found = result or {}
    return base_report(
        record,
        outcome=outcome,
        error=message,
        error_kind=error_kind,
        baseline_rss_bytes=baseline,
        peak_rss_bytes=peak,
        peak_source=source,
        sampled_peak_rss_bytes=sampled_peak,
        non_reclaimable_peak_bytes=max(
            (non_reclaimable_bytes(s) for s in after_ready if s.rss_anon_bytes is not None), default=None
        ),
        predicted_peak_rss_bytes=(
            baseline + record.predicted_above_baseline_bytes
            if baseline is not None and record.predicted_above_baseline_bytes is not None else None
        ),
        load_s=found.get("load_s"),
        forward_s=found.get("forward_s"),
        steady_forward_s=found.get("steady_forward_s"),
        major_faults=found.get("major_faults"),
        disk_read_bytes=found.get("disk_read_bytes"),
        disk_read_forward_bytes=found.get("disk_read_forward_bytes"),
        offload_folder_files=offload_files,
        offload_folder_bytes=offload_bytes,
        device_map=found.get("device_map", {}),
        logits_sha256=found.get("logits_sha256"),
        logits_sample=found.get("logits_sample"),
        stopped_by_budget=budget_stop is not None and not result,
        budget_stop=budget_stop if not result else None,
        gpu_peak_bytes=found.get("gpu_peak_bytes"),
        details=details,
        versions=ready.get("versions", {}) if ready else {},
        timeline=timeline,
    )
