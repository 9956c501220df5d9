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
import gc
import mmap
import os
import platform
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.sizes import format_bytes, parse_size
from .measure.memory import Event, MemorySample, Sampler, kernel_peak_bytes, now_s, read_memory, reset_kernel_peak

if TYPE_CHECKING:
    from .core.checkpoints import CheckpointInfo
    from .measure.report import Report
    from .widgets import MemoryPlot

__all__ = [
    "FIXED_OVERHEAD_BYTES",
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
    "check_strategy_choice",
    "commit_figures",
    "decision_table",
    "disk_share",
    "event_table",
    "fill_weights",
    "first_event",
    "fmt",
    "folder_listing",
    "growth",
    "hostile_pickle",
    "mmap_probe",
    "one_copy_limit",
    "page_cache_probe",
    "peak_moment",
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
    "versions",
    "watch_this_kernel",
    "which_memory",
]

STRICT_ENV = "OFFLOAD_LAB_STRICT_CHECKS"
_LINUX = sys.platform.startswith("linux")
_PAGE = mmap.PAGESIZE

fmt = format_bytes
"""Bytes as a learner reads them (decimal units): ``fmt(1_312_000_000) == '1.31 GB'``."""


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


@dataclass(frozen=True)
class Verdict:
    """The answer to an exercise: right or not, and why. Shows as one Markdown line in a notebook."""

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return f"{'✔' if self.ok else '✘'} {self.message}"

    def _repr_markdown_(self) -> str:
        return f"{'✅ **Right.**' if self.ok else '❌ **Not yet.**'} {self.message}"


def _verdict(ok: bool, message: str) -> Verdict:
    if not ok and os.environ.get(STRICT_ENV) == "1":
        raise AssertionError(f"exercise check failed: {message}")
    return Verdict(bool(ok), message)


def _ratio(n: float | None) -> str:
    return "–" if n is None else f"{n:.2f}×"


# ------------------------------------------------------------------------------------------ reading Reports


def _samples(report: Report) -> list[MemorySample]:
    return report.timeline.samples


def sample_at(report: Report, t_s: float) -> MemorySample | None:
    """The first sample taken at or after ``t_s`` (the last sample if none), or None without samples."""
    samples = _samples(report)
    if not samples:
        return None
    i = bisect_left([s.t_s for s in samples], t_s)
    return samples[min(i, len(samples) - 1)]


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
        text += f" Loading took {report.load_s:.2f} s, the first forward pass {report.forward_s:.3f} s."
    return text


def reports_table(reports: Iterable[Report], labels: Iterable[str] | None = None) -> str:
    """A Markdown table of several runs: outcome, peak above baseline, ratio, predicted, times, offload bytes."""
    reports = list(reports)
    names = list(labels) if labels is not None else [r.strategy for r in reports]
    rows = [
        "| run | outcome | peak above baseline | × checkpoint | predicted above baseline | load s | "
        "first forward s | offload folder written |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in zip(names, reports, strict=True):
        predicted = (
            fmt(r.predicted_peak_rss_bytes - r.baseline_rss_bytes)
            if r.predicted_peak_rss_bytes is not None and r.baseline_rss_bytes is not None
            else "–"
        )
        load = f"{r.load_s:.2f}" if r.load_s is not None else "–"
        forward = f"{r.forward_s:.3f}" if r.forward_s is not None else "–"
        offloads = r.offload_folder or r.offload_folder_files or r.strategy == "offload_folder"
        written = f"{r.offload_folder_files} files, {fmt(r.offload_folder_bytes)}" if offloads else "–"
        rows.append(
            f"| {name} | {r.outcome} | {fmt(r.peak_above_baseline_bytes)} | {_ratio(r.peak_ratio)} | {predicted} | "
            f"{load} | {forward} | {written} |"
        )
    return "\n".join(rows)


def same_logits(reports: Iterable[Report]) -> bool:
    """True when every finished run produced bit-identical logits (the same weights, however loaded)."""
    sums = {r.logits_sha256 for r in reports if r.ok}
    return len(sums) == 1


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


def decision_table(reports: Iterable[Report], budget_bytes: int) -> str:
    """A Markdown decision table from measured runs: fits the budget?, peak, time to a first answer, disk use."""
    rows = [
        f"| strategy | fits {fmt(budget_bytes)}? | peak RSS | time to first answer (load + forward) | "
        "extra disk written | choose it when |",
        "|---|---|---:|---:|---:|---|",
    ]
    when = {
        "normal": "never for a big model: it holds two copies at the peak",
        "low_cpu_mem_usage": "one copy of the model fits in RAM (plain from_pretrained)",
        "offload_folder": "not even one copy fits: some weights stay on disk, every forward pays for it",
        "manual_shards": "you write your own loader (conversion, custom formats) and need one copy at most",
    }
    for r in reports:
        fits = "yes" if r.ok and (r.peak_rss_bytes or 0) <= budget_bytes else "no"
        first = f"{r.time_to_first_forward_s:.2f} s" if r.time_to_first_forward_s is not None else "–"
        rows.append(
            f"| {r.strategy} | {fits} | {fmt(r.peak_rss_bytes)} | {first} | {fmt(r.offload_folder_bytes)} | "
            f"{when.get(r.strategy, '')} |"
        )
    return "\n".join(rows)


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


# ------------------------------------------------------------------------------------------- probes (lesson 00)


def mmap_probe(path: str | os.PathLike[str], mark: Callable[[str], None] | None = None) -> dict[str, MemorySample]:
    """Memory-map ``path`` in this process, read every page, copy it, and read this process's memory at each
    step: ``start``, ``mapped``, ``touched``, ``copied``, ``copy_deleted``, ``unmapped``. ``mark(name)`` is
    called at each step too (e.g. the ``mark`` of :func:`watch_this_kernel`, to put the steps on a plot).

    Mapping costs nothing; reading pages makes them resident as *file-backed* memory (the page cache, shared
    and droppable); copying them makes *anonymous* memory (private, only freed by the program).
    """
    stages: dict[str, MemorySample] = {}

    def step(name: str) -> None:
        if mark is not None:
            mark(name)
        stages[name] = read_memory()

    step("start")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        step("mapped")
        view = memoryview(mm)
        total = 0
        for offset in range(0, len(mm), _PAGE):
            total += view[offset]  # one byte per page faults the whole page in
        step("touched")
        copy = bytearray(view)
        step("copied")
        del copy
        step("copy_deleted")
        view.release()
    step("unmapped")
    return stages


def page_cache_probe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``path`` twice, after asking the kernel to drop it from the page cache, and time both reads.

    Returns ``cold_s``, ``warm_s``, ``bytes`` and ``evicted`` (False where the OS has no ``posix_fadvise``: then
    both reads may come from the cache). Dropping clean cached pages needs no privileges. The reads go into one
    reused buffer, so what is timed is the reading, not the allocating.
    """
    buffer = memoryview(bytearray(1 << 22))
    timings = []
    n_bytes = 0
    with open(path, "rb", buffering=0) as f:
        evicted = hasattr(os, "posix_fadvise")
        if evicted:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        for _ in range(2):
            f.seek(0)
            n_bytes = 0
            start = time.perf_counter()
            while n := f.readinto(buffer):
                n_bytes += n
            timings.append(time.perf_counter() - start)
    return {"cold_s": timings[0], "warm_s": timings[1], "bytes": n_bytes, "evicted": evicted}


def spike_probe(n_bytes: int, interval_s: float = 0.1) -> dict[str, Any]:
    """Make a short memory spike of ``n_bytes`` in this process while a sampler watches at ``interval_s``.

    The spike is a fresh anonymous mapping, written page by page and unmapped at once (memory the allocator
    already holds could otherwise be reused, and no spike would show). Returns ``before`` (RSS),
    ``sampled_peak`` (what the sampler saw), ``kernel_peak`` (VmHWM), ``reset`` (whether the kernel's mark could
    be reset first, so that it measures this spike only) and ``samples``.
    """
    chunk = b"\x01" * (1 << 20)
    reset = reset_kernel_peak()
    before = read_memory().rss_bytes
    with Sampler(interval_s=interval_s) as sampler:
        time.sleep(2 * interval_s)
        with mmap.mmap(-1, n_bytes) as spike:
            for offset in range(0, n_bytes, len(chunk)):
                spike[offset : offset + len(chunk)] = chunk[: n_bytes - offset]
        time.sleep(2 * interval_s)
    return {
        "before": before,
        "sampled_peak": sampler.sampled_peak_bytes,
        "kernel_peak": kernel_peak_bytes(),
        "reset": reset,
        "samples": sampler.sample_count,
    }


_ALLOCATOR_CHILD = textwrap.dedent(
    """
    import ctypes, ctypes.util, gc, sys

    n_bytes = int(sys.argv[1])

    def stage(name):
        print(name, flush=True)
        if not sys.stdin.readline():
            sys.exit(0)

    stage("start")
    big = b"x" * n_bytes                          # one big block: glibc maps it on its own
    stage("big_allocated")
    del big
    stage("big_deleted")
    size = 1000                                   # a variable: a literal would be folded into one constant
    junk = [b"y" * size for _ in range(n_bytes // size)]   # many small blocks on the heap
    survivors = junk[::64]                        # a few stay alive, scattered among the rest
    stage("small_allocated")
    del junk
    stage("small_deleted")
    gc.collect()
    stage("gc_collected")
    big = b"z" * (n_bytes // 2)                   # a contiguous block after the heap is full of holes
    stage("big_after_holes")
    del big
    trim = None
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        pass
    if trim is not None:
        trim(0)
        stage("malloc_trimmed")
    stage("end")
    """
)


def allocator_probe(n_bytes: int = 200_000_000) -> dict[str, MemorySample]:
    """Run an allocation story in a child process and read its memory from outside at each step.

    Stages: ``start``; ``big_allocated`` / ``big_deleted`` (one block of ``n_bytes``); ``small_allocated`` /
    ``small_deleted`` / ``gc_collected`` (``n_bytes`` in small blocks, one in 64 kept alive); ``big_after_holes``
    (a contiguous half-size block while the heap is full of holes); ``malloc_trimmed`` (glibc only: the
    allocator asked to hand free pages back).
    """
    stages: dict[str, MemorySample] = {}
    process = subprocess.Popen(
        [sys.executable, "-c", _ALLOCATOR_CHILD, str(int(n_bytes))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        for line in process.stdout:
            name = line.strip()
            stages[name] = read_memory(process.pid)
            if name == "end":
                break
            process.stdin.write("\n")
            process.stdin.flush()
    finally:
        process.stdin.close()
        process.wait(timeout=30)
    stages.pop("end", None)
    return stages


@contextlib.contextmanager
def watch_this_kernel(plot: MemoryPlot, label: str = "this kernel", interval_s: float = 0.01) -> Iterator[
        Callable[[str], None]]:
    """Draw this kernel's own memory on ``plot`` while the ``with`` block runs; yields ``mark(label)`` that puts
    an event marker on the curve.

    A Report is not needed: the samples go straight to the plot, on a time axis that starts at the ``with``.
    """
    t0 = now_s()
    run_id = plot.begin_run(label)

    def shifted(sample: MemorySample) -> None:
        plot.add_sample(replace(sample, t_s=sample.t_s - t0), run_id)

    def mark(text: str) -> None:
        time.sleep(3 * interval_s)  # let the curve catch up, so the marker sits on the new level
        plot.add_event(Event(now_s() - t0, text, "phase"), run_id)

    with Sampler(interval_s=interval_s, on_sample=shifted):
        yield mark
        time.sleep(3 * interval_s)
    plot.flush()


def run_live(plot: MemoryPlot, checkpoint: str | os.PathLike[str], strategy: str, *, note: str | None = None,
             **options: Any) -> Report:
    """One measured run (``widgetlib.run`` options: ``low_cpu_mem_usage=False``, ``offload_via="accelerate"``,
    ``offload_and_reload=True``, ...) drawn live on ``plot``, next to the runs already there; returns the Report.

    For the options a :class:`~widgetlib.widgets.StrategyPanel` has no control for.
    """
    from .core.checkpoints import inspect_checkpoint
    from .measure.runner import start

    info = inspect_checkpoint(checkpoint)
    budget = options.get("budget")
    run_id = plot.begin_run(strategy, checkpoint_bytes=info.total_bytes,
                            budget_bytes=parse_size(budget, name="budget") if budget is not None else None,
                            note=note)
    try:
        handle = start(checkpoint, strategy, on_sample=lambda s: plot.add_sample(s, run_id),
                       on_event=lambda e: plot.add_event(e, run_id), **options)
    except BaseException:
        plot.discard_run(run_id)
        raise
    report = handle.wait()
    plot.end_run(report, run_id)
    return report


def fill_weights(model: Any, folder: str | os.PathLike[str]) -> Any:
    """Assign every shard of ``folder`` to an empty ``model``, one shard at a time (``assign=True``: the loaded
    tensors become the parameters, nothing is copied). Returns the model."""
    from .core.checkpoints import read_shard, shard_files

    for path in shard_files(folder):
        model.load_state_dict(read_shard(path), strict=False, assign=True)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    return model.eval()


# --------------------------------------------------------------------------------- facts from the machine (06)


def commit_figures() -> dict[str, int | None]:
    """The machine's RAM and commit figures, in bytes: ``total``, ``available``, ``swap_total`` (the paging file
    on Windows), and where the OS reports them ``commit_limit`` / ``committed`` (Linux ``/proc/meminfo``;
    on Windows psutil's swap figures are computed from the commit totals).

    >>> figures = commit_figures()
    >>> figures["total"] > 0
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
        try:
            text = Path("/proc/meminfo").read_text()
        except OSError:
            text = ""
        for key, name in (("CommitLimit", "commit_limit"), ("Committed_AS", "committed")):
            match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
            if match:
                figures[name] = int(match.group(1)) * 1024
    elif sys.platform == "win32":
        figures["commit_limit"] = int(vm.total + swap.total)
        figures["committed"] = int(vm.total - vm.available + swap.used)
    return figures


@dataclass(frozen=True)
class SourceQuote:
    """Lines of an installed library's source: the file, the first line's number, the text."""

    file: str
    line: int
    text: str

    def _repr_markdown_(self) -> str:
        return f"`{self.file}`, line {self.line}:\n\n```python\n{self.text}\n```"


def quote_lines(file: str | os.PathLike[str], line: int, *, before: int = 1, after: int = 3) -> SourceQuote:
    """Lines ``line - before`` to ``line + after`` (1-based) of ``file``, read from disk now."""
    lines = Path(file).read_text(encoding="utf-8").splitlines()
    start = max(1, int(line) - before)
    end = min(len(lines), int(line) + after)
    return SourceQuote(str(file), start, "\n".join(lines[start - 1 : end]))


def source_quote(package: str, relative_path: str, pattern: str, *, before: int = 2, after: int = 2,
                 limit: int = 3) -> list[SourceQuote]:
    """Quote the installed ``package``'s ``relative_path`` around each line matching ``pattern`` (a regex).

    Read from the file on disk (not from memory, not from the docs), so the quote is what *this* machine runs.

    >>> quotes = source_quote("transformers", "modeling_utils.py", r"def from_pretrained", before=0, after=0)
    >>> quotes[0].text.strip().startswith("def from_pretrained")
    True
    """
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    path = Path(next(iter(spec.submodule_search_locations))) / relative_path
    lines = path.read_text(encoding="utf-8").splitlines()
    regex = re.compile(pattern)
    quotes: list[SourceQuote] = []
    last_end = -1
    for number, line in enumerate(lines):
        if not regex.search(line) or number <= last_end:
            continue
        start, end = max(0, number - before), min(len(lines), number + after + 1)
        quotes.append(SourceQuote(str(path), start + 1, "\n".join(lines[start:end])))
        last_end = end - 1
        if len(quotes) >= limit:
            break
    return quotes


class _Payload:
    """Pickles to 'call pathlib.Path.touch on a marker file': harmless, and visible if it ever runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def hostile_pickle(folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``folder/pytorch_model.bin``: a real tensor plus a pickled instruction to create a marker file.

    Returns ``(bin_path, marker_path)``. If anything unpickles it without ``weights_only``, the marker appears:
    proof that loading a ``.bin`` runs whatever code its author put in it.
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "payload-ran.txt"
    marker.unlink(missing_ok=True)
    path = folder / "pytorch_model.bin"
    torch.save({"model.norm.weight": torch.ones(4), "extra": _Payload(marker)}, path)
    return path, marker


# ------------------------------------------------------------------------------------------------ predictions


def disk_share(folder: str | os.PathLike[str], max_memory: int) -> dict[str, int]:
    """Bytes accelerate's device map would place on ``cpu`` and on ``disk`` for ``max_memory`` bytes of RAM.

    Computed on an empty (meta) model in this kernel, no weights read: the same planning step that
    ``device_map="auto"`` runs before any load.
    """
    from accelerate import infer_auto_device_map

    from .core.strategies import build_empty_model, device_map_summary

    model = build_empty_model(folder)
    device_map = infer_auto_device_map(
        model, max_memory={"cpu": int(max_memory)}, no_split_module_classes=list(model._no_split_modules or [])
    )
    model.hf_device_map = device_map
    summary = device_map_summary(model)
    return {place: entry["bytes"] for place, entry in summary.items()}


# ----------------------------------------------------------------------------------------------- the checks


def check_mmap_answer(answer: str, stages: Mapping[str, MemorySample]) -> Verdict:
    """Lesson 00: which kind of RSS grew when every page of the mapped file was read, ``"anonymous"`` or
    ``"file-backed"``?"""
    before, after = stages["mapped"], stages["touched"]
    if before.rss_file_bytes is None or before.rss_anon_bytes is None:
        return _verdict(True, "This OS does not split RSS into anonymous and file-backed; on Linux, reading "
                              "mapped pages grows the file-backed part.")
    file_growth = after.rss_file_bytes - before.rss_file_bytes
    anon_growth = after.rss_anon_bytes - before.rss_anon_bytes
    measured = "file-backed" if file_growth > anon_growth else "anonymous"
    why = (f"reading the mapped pages added {fmt(file_growth)} of file-backed RSS and {fmt(anon_growth)} of "
           "anonymous RSS: the pages are the page cache's, mapped into the process, not a private copy.")
    normalized = answer.strip().lower().replace(" ", "-")
    ok = normalized in (measured, measured.split("-")[0], "file" if measured == "file-backed" else "anon")
    return _verdict(ok, f"It is {measured}: {why}")


def check_model_bytes(answer: int, info: CheckpointInfo) -> Verdict:
    """Lesson 00: how many bytes do the weights take in RAM once loaded in the checkpoint's dtype?"""
    itemsize = {"float32": 4, "bfloat16": 2, "float16": 2}.get(info.dtype, 4)
    expected = info.parameters * itemsize
    ok = abs(int(answer) - expected) <= 0.01 * expected
    why = (f"{info.parameters:,} parameters × {itemsize} bytes ({info.dtype}) = {fmt(expected)}; the checkpoint's "
           f"tensors are {fmt(info.total_bytes)} on disk: one copy of the model is one checkpoint's worth of RAM.")
    return _verdict(ok, why if ok else f"You answered {fmt(int(answer))}. {why}")


def check_normal_peak(answer: int, report: Report, tolerance: float = 0.35) -> Verdict:
    """Lesson 01: predict normal loading's peak above baseline, in bytes, before looking at the plot."""
    measured = report.peak_above_baseline_bytes
    if measured is None:
        return _verdict(False, f"The normal run has no peak to compare with ({report.outcome}); run it again.")
    ok = abs(int(answer) - measured) <= tolerance * measured
    why = (f"the run measured {fmt(measured)} above baseline ({_ratio(report.peak_ratio)} the checkpoint): a "
           "random-weight model and the whole state dict are both in RAM while load_state_dict copies one into "
           "the other.")
    return _verdict(ok, f"You predicted {fmt(int(answer))}; {why}")


def check_copies_at_peak(answer: str, report: Report) -> Verdict:
    """Lesson 01: which event kind comes right before the peak of normal loading?"""
    top, event = peak_moment(report)
    if top is None or event is None:
        return _verdict(False, "The run has no samples to find its peak in; run it again.")
    ok = answer == event.kind
    return _verdict(ok, f"The highest sample ({fmt(top.rss_bytes)} RSS at {top.t_s:.2f} s) came right after "
                        f"'{event.label}' (kind {event.kind!r}).")


def check_low_cpu_mem_usage(answer: bool, truth: Mapping[str, Any], with_flag: Report,
                            without_flag: Report) -> Verdict:
    """Lesson 02 / 06: does ``low_cpu_mem_usage`` change anything in the installed transformers?"""
    a, b = with_flag.peak_above_baseline_bytes, without_flag.peak_above_baseline_bytes
    measured_same = a is not None and b is not None and abs(a - b) <= 0.15 * max(a, b, 1)
    honoured = truth.get("honoured")
    expected = bool(honoured) if honoured is not None else not measured_same
    why = (f"{truth.get('evidence')} (`{truth.get('source_file')}`, line {truth.get('source_line')}). Measured: "
           f"{fmt(a)} above baseline with the flag, {fmt(b)} without.")
    return _verdict(bool(answer) == expected, f"The flag {'does' if expected else 'does not'} change anything "
                                              f"here: {why}")


def check_empty_model(model: Any) -> Verdict:
    """Lesson 02: is ``model`` an empty model that can be filled and run: parameters on meta, buffers real?"""
    params = {p.device.type for p in model.parameters()}
    meta_buffers = [name for name, b in model.named_buffers() if b.device.type == "meta"]
    if params != {"meta"}:
        return _verdict(False, f"Its parameters are on {sorted(params)}: they were allocated. Build it inside "
                               "`init_empty_weights()` so no weight takes RAM before the checkpoint is read.")
    if meta_buffers:
        return _verdict(False, f"Its buffers {meta_buffers[:2]} are on meta too. They are not in the checkpoint "
                               "(non-persistent), so nothing will fill them and forward will fail; "
                               "`init_empty_weights()` keeps buffers real.")
    n_buffers = sum(1 for _ in model.buffers())
    return _verdict(True, f"All parameters are on meta (no RAM used) and its {n_buffers} buffer(s) are real, so "
                          "after the weights are assigned, forward works.")


def check_max_memory(answer: int, folder: str | os.PathLike[str], low: float = 0.3, high: float = 0.7) -> Verdict:
    """Lesson 03: pick a ``max_memory`` that puts roughly half the weights on disk."""
    places = disk_share(folder, int(answer))
    total = sum(places.values()) or 1
    share = places.get("disk", 0) / total
    ok = low <= share <= high
    return _verdict(ok, f"max_memory={fmt(int(answer))} puts {fmt(places.get('disk', 0))} of {fmt(total)} "
                        f"({share:.0%}) on disk and {fmt(places.get('cpu', 0))} in RAM"
                        + ("." if ok else f"; aim for between {low:.0%} and {high:.0%} on disk."))


def check_offload_writes(answer: Mapping[str, bool], reports: Mapping[str, Report]) -> Verdict:
    """Lesson 03: for each way of offloading, does it write files into the offload folder?"""
    wrong = []
    facts = []
    for name, report in reports.items():
        wrote = report.offload_folder_files > 0
        facts.append(f"{name}: {report.offload_folder_files} file(s), {fmt(report.offload_folder_bytes)}")
        if name not in answer or bool(answer[name]) != wrote:
            wrong.append(name)
    text = "Measured — " + "; ".join(facts) + "."
    return _verdict(not wrong, text if not wrong else f"Check {', '.join(wrong)}. {text}")


def check_shard_of(answer: str, folder: str | os.PathLike[str], tensor: str) -> Verdict:
    """Lesson 04: which file holds ``tensor``, according to the index?"""
    from .core.checkpoints import weight_map

    actual = weight_map(folder)[tensor]
    return _verdict(answer == actual, f"The index maps {tensor} to {actual}; a loader that needs one tensor "
                                      "opens one file.")


def check_manual_loader(loader: Callable[[Path], Any], folder: str | os.PathLike[str], reference: Report,
                        limit: float = 1.5) -> Verdict:
    """Lesson 04: run ``loader(folder)`` in this kernel, measure it, and compare its logits with ``reference``.

    Right when no parameter is left on meta, the logits are bit-identical to the reference run's, and the
    kernel's peak grew by at most ``limit`` × the checkpoint.
    """
    from .core.checkpoints import inspect_checkpoint
    from .core.strategies import forward_checksum

    checkpoint_bytes = inspect_checkpoint(folder).total_bytes
    gc.collect()
    reset = reset_kernel_peak()
    start = read_memory().rss_bytes
    model = loader(Path(folder))
    peak = kernel_peak_bytes() if reset else None
    left = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if left:
        return _verdict(False, f"{len(left)} parameter(s) are still on meta (e.g. {left[0]}): some shard was not "
                               "assigned.")
    sha, _ = forward_checksum(model)
    grew = None if peak is None else peak - start
    del model
    gc.collect()
    same = sha == reference.logits_sha256
    light = grew is None or grew <= limit * checkpoint_bytes
    peak_text = ("" if grew is None else
                 f" While it ran, this kernel's peak grew by {fmt(grew)} ({grew / checkpoint_bytes:.2f}× the "
                 "checkpoint).")
    if not same:
        return _verdict(False, "The model runs but its logits differ from the reference run's: some tensor "
                               "was not loaded, or was loaded into the wrong place." + peak_text)
    if not light:
        return _verdict(False, "The logits match, but the load held more than one copy at a time." + peak_text)
    return _verdict(True, "Every parameter loaded and the logits are bit-identical to the reference run's."
                    + peak_text)


def check_fits_prediction(answer: Iterable[str], budget_reports: Iterable[Report]) -> Verdict:
    """Lesson 05: which strategies did you predict would fit the budget? Compared with the budgeted runs."""
    predicted = set(answer)
    fitted = {r.strategy for r in budget_reports if r.ok}
    ok = predicted == fitted
    return _verdict(ok, f"Under the budget these finished: {', '.join(sorted(fitted)) or 'none'}"
                        + ("." if ok else f"; you predicted {', '.join(sorted(predicted)) or 'none'}."))


def check_strategy_choice(answer: str, reports: Iterable[Report], budget_bytes: int) -> Verdict:
    """Lesson 05: which strategy still loads on a machine with ``budget_bytes`` of RAM? Judged from the
    measured (unbudgeted) peaks: a strategy fits when its kernel peak stayed within the budget."""
    reports = [r for r in reports if r.ok]
    fits = [r.strategy for r in reports if (r.peak_rss_bytes or 0) <= budget_bytes]
    peaks = ", ".join(f"{r.strategy} {fmt(r.peak_rss_bytes)}" for r in reports)
    ok = answer in fits
    return _verdict(ok, f"With {fmt(budget_bytes)} of RAM, {', '.join(fits) or 'nothing'} fits (measured peaks: "
                        f"{peaks}).")


def check_myths(answers: Mapping[str, bool], evidence: Mapping[str, bool]) -> Verdict:
    """Lesson 06: mark each seed-note claim True or False; ``evidence`` holds what this notebook's runs showed."""
    wrong = [claim for claim, truth in evidence.items() if _answer(answers, claim) != truth]
    if wrong:
        return _verdict(False, "Look again at: " + "; ".join(wrong) + ".")
    return _verdict(True, f"All {len(evidence)} claims judged as the measurements say.")


def _answer(answers: Mapping[str, bool], claim: str) -> bool | None:
    value = answers.get(claim)
    return None if value is None else bool(value)


def check_safe_loader(load: Callable[[Path], Any]) -> Verdict:
    """Lesson 06: does ``load(path)`` refuse a hostile ``.bin`` before any of its code runs?"""
    with tempfile.TemporaryDirectory(prefix="offload-lab-hostile-") as tmp:
        path, marker = hostile_pickle(tmp)
        try:
            load(path)
        except Exception as exc:  # a refusal is the right answer; which exception says how
            if marker.exists():
                return _verdict(False, f"It raised {type(exc).__name__}, but only after the payload had run.")
            kind = getattr(exc, "kind", None)
            return _verdict(True, f"Refused with {type(exc).__name__}" + (f" (kind {kind!r})" if kind else "")
                                  + " and the payload never ran: weights_only unpickles tensors and nothing else.")
        ran = marker.exists()
    if ran:
        return _verdict(False, "The payload ran: this loader unpickles arbitrary objects. Use "
                               "torch.load(..., weights_only=True) or a .safetensors file.")
    return _verdict(False, "It loaded the file without complaint; a hostile file must be refused.")
