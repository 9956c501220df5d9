"""What the lessons and their tests share: versions, the small probes the lessons run in the kernel or in a
child process, the sentences a lesson quotes from a :class:`~widgetlib.measure.report.Report`, and the exercise
checks.

Every figure a lesson shows comes from here or from a Report: the lesson text never types a number in. Each
``check_*`` function returns a :class:`Verdict` that says whether an answer is right and *why*, from the
measurements at hand. With ``OFFLOAD_LAB_STRICT_CHECKS=1`` (set by ``tests/test_lessons.py``) a wrong answer
raises instead, so a lesson whose reference answer stopped being true fails in CI.

Nothing here imports the widgets (the functions that draw, :func:`watch_this_kernel` and :func:`run_live`, are
handed a plot); torch and transformers are imported only by the functions that need them.

>>> Verdict(True, "right").ok, str(Verdict(False, "wrong"))
(True, '✘ wrong')
"""

from __future__ import annotations

import contextlib
import mmap
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from ..measure.columns import COLUMNS, Column, column, kept_at_end
from ..measure.memory import Event, MemorySample
from ..measure.render import report_table_markdown
from .checks import (
    check_copies_at_peak,
    check_empty_model,
    check_fits_prediction,
    check_low_cpu_mem_usage,
    check_manual_loader,
    check_max_memory,
    check_mmap_answer,
    check_model_bytes,
    check_myths,
    check_normal_peak,
    check_offload_writes,
    check_safe_loader,
    check_shard_of,
    check_what_a_limit_counts,
    disk_share,
)
from .probes import (
    allocator_probe,
    fill_weights,
    hostile_pickle,
    mapped_copy_probe,
    mmap_probe,
    offload_folder_probe,
    page_cache_probe,
    reserve_probe,
    run_live,
    spike_probe,
    watch_this_kernel,
    without_accelerate_probe,
)
from .quotes import SourceQuote, find_phrase, find_source, quote_lines, source_quote
from .readings import _samples, non_reclaimable_growth, same_logits, sample_at
from .sentences import (
    budget_limits,
    budget_outcomes,
    budget_room,
    disk_price,
    prediction_gap,
    prediction_lines,
    same_logits_sentence,
    sweep_peaks,
)
from .verdicts import STRICT_ENV, Verdict, _ratio, fmt, not_answered, unanswered

if TYPE_CHECKING:
    from ..measure.report import Report

__all__ = [
    "FIXED_OVERHEAD_BYTES",
    "LIMIT_OVERHEAD_BYTES",
    "REPORTS_TABLE_COLUMNS",
    "STRICT_ENV",
    "SourceQuote",
    "Verdict",
    "allocator_probe",
    "budget_between",
    "check_copies_at_peak",
    "check_empty_model",
    "check_fits_prediction",
    "check_low_cpu_mem_usage",
    "check_manual_loader",
    "check_max_memory",
    "check_mmap_answer",
    "check_model_bytes",
    "check_myths",
    "check_normal_peak",
    "check_offload_writes",
    "check_safe_loader",
    "check_shard_of",
    "check_what_a_limit_counts",
    "commit_figures",
    "decision_table",
    "disk_share",
    "embedding_table",
    "event_table",
    "fill_weights",
    "find_phrase",
    "find_source",
    "first_event",
    "fmt",
    "folder_listing",
    "growth",
    "growth_at_peak",
    "hostile_pickle",
    "kept_at_end",
    "limit_budget",
    "mapped_copy_probe",
    "mmap_probe",
    "non_reclaimable_growth",
    "offload_folder_probe",
    "one_copy_limit",
    "page_cache_probe",
    "reserve_probe",
    "peak_moment",
    "peak_is_exact",
    "peak_sentence",
    "print_versions",
    "quote_lines",
    "reports_table",
    "run_live",
    "same_logits",
    "sample_at",
    "say",
    "source_quote",
    "spike_probe",
    "not_answered",
    "unanswered",
    "versions",
    "watch_this_kernel",
    "without_accelerate_probe",
    "which_memory",
    "budget_limits",
    "budget_outcomes",
    "budget_room",
    "disk_price",
    "prediction_gap",
    "prediction_lines",
    "same_logits_sentence",
    "sweep_peaks",
]

_LINUX = sys.platform.startswith("linux")
_PAGE = mmap.PAGESIZE

# ------------------------------------------------------------------------------------------- versions & text


def versions() -> dict[str, str]:
    """The versions that decide what a lesson measures: Python, the OS, and the libraries.

    >>> v = versions()
    >>> {"python", "torch", "transformers", "OFFLOAD_LAB_SIZE"} <= set(v)
    True
    """
    found = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()} ({platform.machine()})",
    }
    for package in ("offload-lab", "torch", "transformers", "accelerate", "safetensors", "psutil", "plotly",
                    "ipywidgets"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    found["OFFLOAD_LAB_SIZE"] = os.environ.get("OFFLOAD_LAB_SIZE") or "not set (demo_checkpoint() uses its default)"
    return found


def print_versions() -> dict[str, str]:
    """Print :func:`versions`, one per line (every lesson's first code cell), and return them.

    >>> print_versions()["python"] == platform.python_version()  # doctest: +ELLIPSIS
    python ...
    True
    """
    found = versions()
    width = max(map(len, found))
    for name, value in found.items():
        print(f"{name:<{width}}  {value}")
    return found


def say(text: str) -> None:
    """Show ``text`` as Markdown in a notebook; print it anywhere else.

    >>> say("**peak** 1 GB")
    **peak** 1 GB
    """
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))


# ------------------------------------------------------------------------------------------ reading Reports


def sampled_between(report: Report, start_kind: str, end_kind: str) -> int:
    """How many samples fall between the first ``start_kind`` and the first ``end_kind`` events (0 if either
    is missing): a phase shorter than the sampling interval has none, and its growth cannot be read off.

    >>> from widgetlib.measure.report import Report
    >>> sampled_between(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1), "phase", "loaded")
    0
    """
    start, end = first_event(report, start_kind), first_event(report, end_kind)
    if start is None or end is None:
        return 0
    return sum(1 for s in _samples(report) if start.t_s <= s.t_s <= end.t_s)


def first_event(report: Report, kind: str) -> Event | None:
    """The first event of ``kind`` in the report's timeline, or None."""
    return next((e for e in report.timeline.events if e.kind == kind), None)


def _load_window(report: Report) -> tuple[float, float]:
    """From the child's 'ready' event to the end of the forward pass (where the figures of a run belong)."""
    events = report.timeline.events
    ready = first_event(report, "ready")
    end = first_event(report, "forward_done") or first_event(report, "loaded")
    start_t = ready.t_s if ready else (events[0].t_s if events else 0.0)
    end_t = end.t_s if end else (_samples(report)[-1].t_s if _samples(report) else start_t)
    return start_t, end_t


def peak_moment(report: Report) -> tuple[MemorySample | None, Event | None]:
    """The highest sample during the load and forward, and the last event before it (what had just happened).

    Use it to say *when* a strategy peaks; the peak's size is ``report.peak_rss_bytes`` (the kernel's mark).
    """
    start, end = _load_window(report)
    window = [s for s in _samples(report) if start <= s.t_s <= end]
    if not window:
        return None, None
    top = max(window, key=lambda s: s.rss_bytes)
    before = [e for e in report.timeline.events if e.t_s <= top.t_s]
    return top, (before[-1] if before else None)


def growth_at_peak(report: Report) -> tuple[int | None, int | None]:
    """How much anonymous and file-backed RSS had grown, from the load's first sample to its highest sample
    (:func:`peak_moment`): ``(anon, file)``, ``(None, None)`` where the probe does not split RSS.

    >>> from widgetlib.measure.report import Report
    >>> growth_at_peak(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1))
    (None, None)
    """
    top, _ = peak_moment(report)
    start = sample_at(report, 0.0) if report.timeline.samples else None
    if top is None or start is None or top.rss_anon_bytes is None or start.rss_anon_bytes is None:
        return None, None
    return top.rss_anon_bytes - start.rss_anon_bytes, (top.rss_file_bytes or 0) - (start.rss_file_bytes or 0)


def growth(report: Report, start_kind: str, end_kind: str | None = None) -> dict[str, int | None]:
    """How much RSS, anonymous and file-backed RSS rose between two events (highest sample in between minus
    the sample at ``start_kind``). ``end_kind=None`` means the end of the load.

    This is how a lesson says *where* a copy lives: random weights appear as anonymous memory, an mmap'd
    safetensors file as file-backed memory.
    """
    start_event = first_event(report, start_kind)
    if start_event is None:
        return {"rss": None, "anon": None, "file": None}
    end_event = first_event(report, end_kind) if end_kind else None
    end_t = end_event.t_s if end_event else _load_window(report)[1]
    first = sample_at(report, start_event.t_s)
    window = [s for s in _samples(report) if start_event.t_s <= s.t_s <= end_t] or ([first] if first else [])
    result: dict[str, int | None] = {}
    for name, attr in (("rss", "rss_bytes"), ("anon", "rss_anon_bytes"), ("file", "rss_file_bytes")):
        values = [getattr(s, attr) for s in window if getattr(s, attr) is not None]
        start_value = getattr(first, attr) if first else None
        result[name] = max(values) - start_value if values and start_value is not None else None
    return result


def which_memory(grown: Mapping[str, int | None]) -> str:
    """Say where a :func:`growth` went: anonymous (a private copy) or file-backed (mapped file pages)."""
    anon, file = grown.get("anon"), grown.get("file")
    if anon is None or file is None:
        return "memory this OS does not split into anonymous and file-backed"
    if anon >= file:
        return "anonymous memory: a private copy in the process's heap"
    return "file-backed memory: pages of the checkpoint file, mapped into the process"


def event_table(report: Report, kinds: Iterable[str] | None = None) -> str:
    """A Markdown table: each event of the run with the RSS (and its anonymous / file-backed split) just after.

    ``kinds`` keeps only events of those kinds.
    """
    keep = set(kinds) if kinds is not None else None
    base = report.baseline_rss_bytes or 0
    rows = ["| t (s) | event | RSS above baseline | anonymous | file-backed |", "|---:|---|---:|---:|---:|"]
    for event in report.timeline.events:
        if keep is not None and event.kind not in keep:
            continue
        s = sample_at(report, event.t_s)
        if s is None:
            continue
        rows.append(
            f"| {event.t_s:.2f} | {event.label} | {fmt(s.rss_bytes - base)} | {fmt(s.rss_anon_bytes)} | "
            f"{fmt(s.rss_file_bytes)} |"
        )
    return "\n".join(rows)


def peak_is_exact(report: Report) -> bool:
    """True when the run's peak is the kernel's mark for this load alone: the samples carry the anonymous /
    file-backed split, which only the Linux probe reads (``/proc``, where VmHWM is reset for the run). Under
    the portable probe (macOS, Windows, ``OFFLOAD_LAB_PROBE=portable``) the best peak an OS offers may include
    the process's start-up, so a lesson states its one-copy bounds only where this is True.

    >>> from widgetlib.measure.report import Report
    >>> peak_is_exact(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1))
    False
    """
    samples = report.timeline.samples
    return bool(samples) and all(s.rss_anon_bytes is not None for s in samples)


def peak_sentence(report: Report) -> str:
    """One Markdown sentence with a run's figures: peak, baseline, above baseline, ratio, times."""
    name = f"**{report.strategy}**"
    if not report.ok:
        return f"{name} did not finish ({report.outcome}): {report.error}"
    text = (
        f"{name} peaked at {fmt(report.peak_rss_bytes)} of RSS: {fmt(report.peak_above_baseline_bytes)} above "
        f"the baseline of {fmt(report.baseline_rss_bytes)}, that is **{_ratio(report.peak_ratio)}** the "
        f"checkpoint ({fmt(report.checkpoint_bytes)})."
    )
    if report.load_s is not None and report.forward_s is not None:
        text += (f" Loading took {COLUMNS['load_s'].cell(report)}, the first forward pass "
                 f"{COLUMNS['forward_s'].cell(report)}.")
    if not peak_is_exact(report):
        text += (" On this OS the peak is the best figure it offers for the loading process, which may include "
                 "its start-up (importing torch), so it can read higher than the load alone.")
    return text


# The runs' figures teach's Markdown tables show by default (the catalogue: widgetlib/measure/columns.py).
REPORTS_TABLE_COLUMNS = ("outcome", "peak_above_baseline_bytes", "peak_ratio", "load_s", "forward_s",
                         "offload_written")


def reports_table(reports: Iterable[Report], labels: Iterable[str] | None = None, *, predicted: bool = False,
                  columns: Iterable[str | Column] | None = None, label_header: str | None = "run") -> str:
    """A Markdown table of several runs, one row each: by default outcome, peak above baseline, ratio, times,
    offload bytes, and with ``predicted=True`` the header-based prediction (only where the lesson discusses it:
    a prediction shown beside a measurement and left unexplained reads as a contradiction). ``columns`` chooses
    others from the catalogue (:data:`widgetlib.measure.columns.COLUMNS`); ``label_header=None`` drops the label
    column (``labels``, default the strategies).

    >>> from widgetlib.measure.report import Report
    >>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=10**8,
    ...            peak_rss_bytes=3 * 10**8, predicted_peak_rss_bytes=29 * 10**7)
    >>> print(reports_table([r], predicted=True).splitlines()[2])  # predicted beside the measured peak
    | normal | ok | 200 MB | 2.00x | 190 MB | – | – | – |
    >>> print(reports_table([r], columns=["max_memory_bytes", "peak_rss_bytes"], label_header=None))
    | max_memory | peak RSS (absolute) |
    |---:|---:|
    | – | 300 MB |
    """
    chosen = list(columns if columns is not None else REPORTS_TABLE_COLUMNS)
    if predicted:
        chosen.insert(chosen.index("peak_ratio") + 1 if "peak_ratio" in chosen else len(chosen),
                      "predicted_above_baseline_bytes")
    return report_table_markdown(list(reports), labels, columns=chosen, label_header=label_header)


# What a run adds on top of the weights whatever the checkpoint's size: the forward pass's activations, the
# allocator's and Python's bookkeeping. Measured at a few tens of MB with the lessons' model; an upper bound
# may allow it, a lower bound never needs to (it can only make a peak larger).
FIXED_OVERHEAD_BYTES = 25_000_000


def one_copy_limit(checkpoint_bytes: int, copies: float = 1.2) -> int:
    """The most a strategy that holds *one* copy of the weights may add above baseline: ``copies`` times the
    checkpoint plus :data:`FIXED_OVERHEAD_BYTES` (which matters for a small checkpoint only).

    >>> one_copy_limit(1_000_000_000)
    1225000000
    """
    return int(copies * checkpoint_bytes + FIXED_OVERHEAD_BYTES)


def budget_between(fits: Iterable[Report], too_big: Report) -> int:
    """A simulated machine's RAM: ``too_big``'s baseline plus halfway between the largest peak (above
    baseline) among ``fits`` and ``too_big``'s peak. By construction, as measured, those fit and that does not,
    with the same margin on both sides, whatever the checkpoint's size.
    """
    fitting = [r.peak_above_baseline_bytes for r in fits if r.peak_above_baseline_bytes is not None]
    if too_big.baseline_rss_bytes is None or too_big.peak_above_baseline_bytes is None or not fitting:
        raise ValueError("budget_between needs finished runs with a baseline and a peak; run them again.")
    return int(too_big.baseline_rss_bytes + (max(fitting) + too_big.peak_above_baseline_bytes) / 2)


# What a memory cgroup charges a load forked from the zygote beyond its RSS growth: copies of the zygote's pages
# it writes to (copy-on-write: already in its RSS, newly charged), page tables, kernel memory. Measured with the
# 40MB checkpoint, low_cpu_mem_usage under a room too large to press: memory.max_usage_in_bytes 66.9 MB against
# an RSS peak 54.3 MB above baseline. At that size a room that leaves this out is on the edge of an OOM kill.
LIMIT_OVERHEAD_BYTES = 16 * 2**20


def limit_budget(fits: Iterable[Report], too_big: Report) -> tuple[int, str]:
    """A simulated machine's RAM for a *real* limit, from unbudgeted runs: ``too_big``'s baseline plus a room
    between a floor and a ceiling. The ceiling is the smaller of (the largest total growth among ``fits``,
    ``too_big``'s non-reclaimable growth); the floor is the largest non-reclaimable growth among ``fits`` plus
    what a cgroup charges beyond RSS (``LIMIT_OVERHEAD_BYTES``), at most halfway to the ceiling; the room is
    halfway between the two. So the room holds what ``fits`` cannot give back, is smaller than the heaviest of
    them grew in all (its file-backed pages must be dropped and re-read), and cannot hold what ``too_big``
    cannot give back. Returns ``(budget_bytes, "non-reclaimable")``.

    Where the probe gives no anonymous/file split (:func:`non_reclaimable_growth` is None) it falls back to
    :func:`budget_between` on total peaks and returns ``(budget_bytes, "total")``.

    >>> from widgetlib.measure.report import Report
    >>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=100, baseline_rss_bytes=50,
    ...            peak_rss_bytes=260)
    >>> limit_budget([Report(strategy="manual_shards", checkpoint="/ck", checkpoint_bytes=100,
    ...                      baseline_rss_bytes=50, peak_rss_bytes=160)], r)
    (210, 'total')
    """
    fits = list(fits)
    growths = [non_reclaimable_growth(r) for r in fits]
    too_big_growth = non_reclaimable_growth(too_big)
    totals = [r.peak_above_baseline_bytes for r in fits if r.peak_above_baseline_bytes is not None]
    if too_big.baseline_rss_bytes is None or too_big_growth is None or None in growths or not totals:
        return budget_between(fits, too_big), "total"
    held = max(g for g in growths if g is not None)
    ceiling = min(max(totals), too_big_growth)
    floor = min(held + LIMIT_OVERHEAD_BYTES, (held + ceiling) // 2)
    room = (floor + ceiling) // 2
    return int(too_big.baseline_rss_bytes + room), "non-reclaimable"


def decision_table(reports: Iterable[Report], budget_bytes: int) -> str:
    """A Markdown decision table from runs made *under* ``budget_bytes``: finished?, how the budget was
    enforced, peak RSS, major faults (pages read from disk), time to a first answer, disk written, and each
    strategy's advice from the registry.

    >>> from widgetlib.measure.report import Report
    >>> "| normal | no |" in decision_table([Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1,
    ...                                              outcome="stopped_by_budget")], 10)
    True
    """
    finished = replace(column("finished"), header=f"finished under {fmt(budget_bytes)}?")
    return report_table_markdown(
        list(reports), columns=[finished, "budget_mode", "peak_rss_bytes", "major_faults", "time_to_first_forward_s",
                                "offload_written", "choose_when"], label_header="strategy")


def folder_listing(folder: str | os.PathLike[str] | None, limit: int = 8) -> str:
    """What a folder holds, as Markdown: file count, total bytes, and the first ``limit`` names with sizes."""
    if folder is None:
        return "(no folder)"
    path = Path(folder)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    total = sum(p.stat().st_size for p in files)
    lines = [f"`{path}`: {len(files)} file(s), {fmt(total)}"]
    lines += [f"- `{p.relative_to(path)}` ({fmt(p.stat().st_size)})" for p in files[:limit]]
    if len(files) > limit:
        lines.append(f"- … and {len(files) - limit} more")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- facts from the machine (06)


def commit_figures() -> dict[str, int | None]:
    """The machine's RAM and commit figures, in bytes: ``total``, ``available``, ``swap_total`` (the paging file
    on Windows), and where the OS reports them ``commit_limit`` / ``committed`` (Linux ``/proc/meminfo``;
    on Windows ``GlobalMemoryStatusEx``: the commit limit is its "total page file" and the commit charge is total
    minus available page file; psutil's ``swap.used`` is a page-file counter, not the charge). On Linux also
    ``overcommit_mode`` (``vm.overcommit_memory``; with 0, the default, the commit limit is not enforced).

    >>> figures = commit_figures()
    >>> 0 < figures["available"] <= figures["total"]
    True
    """
    import psutil

    vm = psutil.virtual_memory()
    swap = psutil.swap_memory()
    figures: dict[str, int | None] = {
        "total": int(vm.total),
        "available": int(vm.available),
        "swap_total": int(swap.total),
        "commit_limit": None,
        "committed": None,
    }
    if _LINUX:
        figures["overcommit_mode"] = None
        try:
            text = Path("/proc/meminfo").read_text()
        except OSError:
            text = ""
        for key, name in (("CommitLimit", "commit_limit"), ("Committed_AS", "committed")):
            match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
            if match:
                figures[name] = int(match.group(1)) * 1024
        # 0 (the default) = heuristic overcommit: CommitLimit is printed but not enforced (only mode 2 does).
        with contextlib.suppress(OSError, ValueError):
            figures["overcommit_mode"] = int(Path("/proc/sys/vm/overcommit_memory").read_text())
    elif sys.platform == "win32":
        figures.update(_windows_commit())
    return figures


def _windows_commit() -> dict[str, int]:
    """Commit limit and charge from ``GlobalMemoryStatusEx`` (Windows only): ``ullTotalPageFile`` is the commit
    limit, ``ullTotalPageFile - ullAvailPageFile`` the commit charge, in bytes."""
    import ctypes
    from ctypes import wintypes

    class MEMORYSTATUSEX(ctypes.Structure):
        _fields_ = [("dwLength", wintypes.DWORD), ("dwMemoryLoad", wintypes.DWORD),
                    ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                    ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                    ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                    ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

    status = MEMORYSTATUSEX()
    status.dwLength = ctypes.sizeof(MEMORYSTATUSEX)
    if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
        return {}
    return {"commit_limit": int(status.ullTotalPageFile),
            "committed": int(status.ullTotalPageFile - status.ullAvailPageFile)}


def embedding_table(folder: str | os.PathLike[str]) -> tuple[str, int]:
    """The input embedding's tensor name and bytes in ``folder``, read from the shards' headers.

    A forward pass of N tokens reads N rows of this table (an embedding is a row lookup), not all of it.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> name, n_bytes = embedding_table(make_checkpoint(size="5MB"))
    >>> name.endswith("embed_tokens.weight"), n_bytes > 0
    (True, True)
    """
    from ..core.hf_folder import tensor_bytes

    for name, n_bytes in tensor_bytes(folder).items():
        if name.endswith(("embed_tokens.weight", "wte.weight", "word_embeddings.weight")):
            return name, n_bytes
    raise ValueError(f"{folder} holds no input embedding table that Offload Lab recognises.")


