"""Run one strategy in a fresh child process, sample its memory from outside, and return a :class:`Report`.

Why a child process: the learner's kernel holds none of the memory being measured (so the figure is not
distorted by what the notebook already holds), and an exception, an out-of-memory kill, a segfault or a budget
stop ends the child, never the kernel.

Data path: :func:`start` validates the options (so a typo fails in a second, not after a fork), creates a
private temporary folder and returns; a run thread then gets a child (forked from the pre-imported zygote, or
spawned: :mod:`widgetlib.measure.processes`), puts it in its memory cgroup when there is a budget
(:mod:`widgetlib.measure.limits`), sends it the job (:mod:`widgetlib.measure.protocol`), and watches it with a
:class:`~widgetlib.measure.memory.Sampler` at ``interval_s`` while it reads the child's events.

Time zero is the load start: the child's ``ready`` message (imports and warm-up done, baseline taken). Samples
and events are passed to ``on_sample`` / ``on_event`` with that origin; samples taken before it (the start-up,
a few hundredths of a second once forked) are held back from the callbacks and kept in the Timeline with
negative times. ``Report.startup_s`` is the time from the request to that moment.

A forked child's RSS includes the pages it shares with the zygote (Python, torch, transformers: its baseline);
see :mod:`widgetlib.measure.zygote`. A budget is enforced by the kernel where a memory cgroup can be made
(``budget_mode="cgroup"``), else by a watchdog that counts only the memory the kernel could not reclaim
(``budget_mode="watchdog"``).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ..core.calls import parse_call
from ..core.errors import OptionError, RunnerBusyError
from ..core.estimates import estimate_peak
from ..core.hf_folder import CheckpointInfo, inspect_checkpoint
from ..core.options import RUN_DEFAULTS, LoadOptions
from ..core.registry import check_options
from ..core.sizes import format_bytes, parse_size
from . import limits, processes
from .assemble import RunRecord, assemble_report, base_report
from .folders import check_offload_folder as _check_offload_folder
from .folders import snapshot as _snapshot
from .folders import written_since as _written_since
from .memory import Event, MemorySample, Sampler, non_reclaimable_bytes, now_s, portable_probe
from .processes import Child, ForkedChild, SpawnedChild, prewarm, refill_spare, start_method
from .protocol import MSG_EVENT, MSG_GPU, MSG_READY, encode_job
from .report import Report

__all__ = ["RunHandle", "default_max_memory_bytes", "prewarm", "run", "start"]

# One measured run at a time per kernel: two loads at once would measure each other (they share the machine's
# RAM) and would interleave into one plot. A second run queues behind the first, or is refused (queue=False).
_RUN_LOCK = threading.Lock()
_active: RunHandle | None = None

# How long a cancelled child gets to exit on SIGTERM before SIGKILL.
_TERMINATE_GRACE_S = 2.0


def default_max_memory_bytes(info: CheckpointInfo) -> int:
    """The RAM the offload_folder strategy may fill with weights when no ``max_memory`` is given.

    Half the checkpoint, and never less than its largest tensor: accelerate keeps room for the largest layer
    inside ``max_memory``, so a smaller default would send every layer to disk and hide the split.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> info = inspect_checkpoint(make_checkpoint(size="8MB"))
    >>> default_max_memory_bytes(info) >= info.largest_tensor_bytes
    True
    """
    return max(info.total_bytes // 2, info.largest_tensor_bytes)


def _start_method(load_options: LoadOptions) -> str:
    """``"fork"`` from the zygote, except for a run that asks for the GPU: that one starts a fresh process.

    A child forked from a process in which the CUDA driver was initialised cannot use CUDA ("CUDA error:
    initialization error", seen on an H100 with torch 2.11), and the zygote's imports and warm-up may initialise it
    (``torch.cuda.is_available()`` does). A GPU run pays the import; every CPU run keeps the fast fork.

    >>> _start_method(LoadOptions(gpu_max_memory_bytes=2**30))
    'spawn'
    """
    return "spawn" if load_options.gpu_max_memory_bytes else start_method()


class RunHandle:
    """A run in progress: :meth:`wait` for its Report, :meth:`cancel` to stop it.

    Obtained from :func:`start`; :func:`run` is ``start(...).wait()``.
    """

    def __init__(
        self,
        *,
        info: CheckpointInfo,
        strategy: str,
        job: dict[str, Any],
        load_options: LoadOptions,
        options: dict[str, Any],
        run_dir: Path,
        offload_folder: Path | None,
        budget_bytes: int | None,
        budget_mode: str | None,
        interval_s: float,
        on_sample: Callable[[MemorySample], None] | None,
        on_event: Callable[[Event], None] | None,
        on_done: Callable[[Report], None] | None,
        cold_cache_done: dict[str, Any] | None = None,
    ) -> None:
        self.strategy = strategy
        self.checkpoint = str(info.folder)
        self._info = info
        self._job = job
        self._load_options = load_options
        self._options = options
        self._run_dir = run_dir
        self._offload_folder = offload_folder
        self._offload_before = _snapshot(offload_folder) if offload_folder else {}
        self._budget_bytes = budget_bytes
        self._budget_mode = budget_mode
        self._cold_cache = cold_cache_done
        # Predicted from the index alone, before anything runs; the report puts it next to the measurement.
        self._estimate = estimate_peak(
            info, strategy, dtype=load_options.dtype, max_memory_bytes=load_options.max_memory_bytes
        )
        self._interval_s = interval_s
        self._on_sample = on_sample
        self._on_event = on_event
        self._on_done = on_done
        self._events: list[Event] = []
        self._gpu_samples: list[tuple[float, int]] = []
        self._event_samples: list[MemorySample] = []  # the child's own reading at each of its events
        self._messages: dict[str, dict[str, Any]] = {}
        self._cancelled = False
        self._budget_stop: dict[str, Any] | None = None
        self._done = threading.Event()
        self._kill_lock = threading.Lock()
        self._origin_lock = threading.Lock()
        self._child: Child | None = None
        self._limit: limits.MemoryLimit | None = None
        self._limit_events: dict[str, Any] | None = None
        self._watch_offset = 0  # the file-backed pages the child held at the load start (see _set_room)
        self._returncode: int | None = None
        self._start_error: str | None = None
        self._sampler: Sampler | None = None
        self.report: Report | None = None
        self.callback_error: str | None = None
        self._request_s = now_s()
        self._t0_s: float | None = None  # the load start (the child's "ready"); None until then
        self._thread = threading.Thread(target=self._run, name="offload-lab-run", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------ public

    @property
    def done(self) -> bool:
        """True once the child has exited and the Report is ready."""
        return self._done.is_set()

    @property
    def pid(self) -> int | None:
        """The child process's PID (None until it exists)."""
        return self._child.pid if self._child is not None else None

    def cancel(self) -> None:
        """Stop the run: the child is terminated, temporary folders it used are removed, the Report says
        ``outcome="cancelled"``. A folder the learner named (``offload_folder``) is left as it is."""
        self._cancelled = True
        self._kill(signal.SIGTERM if os.name == "posix" else None)

        def escalate() -> None:
            if not self._done.wait(_TERMINATE_GRACE_S):
                self._kill(None)

        threading.Thread(target=escalate, daemon=True).start()

    def wait(self, timeout: float | None = None) -> Report:
        """Block until the run ends and return its Report (``TimeoutError`` after ``timeout`` seconds)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the {self.strategy} run did not finish within {timeout} s")
        assert self.report is not None
        return self.report

    # ---------------------------------------------------------------------------- internals

    def _kill(self, sig: int | None) -> None:
        with self._kill_lock:
            if self._child is not None and self._returncode is None:
                self._child.kill(sig)

    def _get_child(self) -> Child:
        if _start_method(self._load_options) == "fork":
            return ForkedChild(self._run_dir)
        return SpawnedChild()

    def _enter_limit(self, child: Child) -> None:
        """Put the child in its own memory cgroup before it has its job (so before it loads anything): a folder
        the runner makes (``cgroup``), or a transient scope systemd makes around it (``systemd``).

        The limit is provisional (the budget minus the RSS at hello) until :meth:`_set_room` sets it from the
        baseline at ``ready``; the child waits for the runner's "go" in between.
        """
        if self._budget_mode not in ("cgroup", "systemd") or self._budget_bytes is None:
            return
        try:
            room = self._room(child.hello.get("rss_bytes"))
            if self._budget_mode == "systemd":
                self._limit = limits.MemoryLimit.start_scope(child.pid, room)
            else:
                self._limit = limits.MemoryLimit.create(room)
                self._limit.add(child.pid)
        except OSError as exc:  # the tree changed under us, or systemd said no: fall back to the watchdog, say so
            if self._limit is not None:
                self._limit.remove()
                self._limit = None
            self._budget_mode = "watchdog"
            self._options["budget_note"] = f"no memory cgroup could be made ({exc}); the watchdog was used"

    def _room(self, held_bytes: int | None) -> int:
        """The cgroup limit for a child holding ``held_bytes``: the budget less them (16 MiB at the least)."""
        assert self._budget_bytes is not None
        return max(self._budget_bytes - int(held_bytes or 0), 16 * 2**20)

    def _set_room(self, child: Child, ready: dict[str, Any]) -> None:
        """At the load start, give the load the room a machine of ``budget`` has left, then say "go".

        One rule for both modes: the budget is a machine's RAM, and the child's RSS at the load start (Python,
        torch, transformers, the code pages it runs) is in use. The room is ``budget - baseline``. Under a
        cgroup the kernel enforces it on what the child brings in from here (pages it already holds stay
        charged where they were: the zygote's, or its own imports), reclaiming file-backed pages and killing
        only when what it cannot reclaim does not fit. The watchdog counts the same thing from outside: the
        baseline plus the growth of RssAnon + RssShmem.
        """
        if self._budget_bytes is None:
            return
        held = int(ready.get("rss_bytes") or 0)
        held_anon = int(ready.get("non_reclaimable_bytes") or held)
        self._watch_offset = max(held - held_anon, 0)  # the baseline's file pages count as in use
        if held > self._budget_bytes:
            # Python and torch alone do not fit: a machine this small could not even start. Under a cgroup the
            # kernel would never see it (those pages are the zygote's), so the runner stops it here.
            self._budget_stop = {
                "by": "watchdog", "t_s": 0.0, "rss_bytes": held, "counted_bytes": held, "before_load": True
            }
            child.kill(None)  # None = the hardest kill the OS has (SIGKILL; TerminateProcess on Windows)
            return
        if self._limit is not None:
            # A scope is systemd's to limit, and may not go below what it already holds (the kernel would
            # reclaim or kill at once): the room comes on top of its charge. A folder of our own keeps the room.
            charged = (self._limit.charge() or 0) if self._limit.scope is not None else 0
            try:
                self._limit.set_limit(charged + self._room(held))
            except OSError:
                pass  # already charged above the new room, or systemd refused: the provisional limit stays, reported
        child.send("go")

    def _run(self) -> None:
        processes.run_started()
        try:
            self._run_measured()
        finally:
            processes.run_ended()

    def _run_measured(self) -> None:
        global _active
        try:
            try:
                child = self._get_child()
            except Exception as exc:  # no child at all: a crashed report, nothing to clean up but the folder
                self._start_error = f"{type(exc).__name__}: {exc}"
                raise
            with self._kill_lock:
                self._child = child
            if self._cancelled:
                child.kill(None)
            self._enter_limit(child)
            self._sampler = Sampler(child.pid, interval_s=self._interval_s, on_sample=self._sample)
            try:
                self._sampler.start()
            except ProcessLookupError:
                pass
            child.send(json.dumps(self._job))
            self._read(child)
            self._returncode = child.wait(30)
            try:
                self._sampler.stop()
            except Exception as exc:  # the sampler re-raises errors of its own thread here; samples are kept
                self.callback_error = self.callback_error or f"{type(exc).__name__}: {exc}"
            if self._limit is not None:
                self._limit_events = self._limit.events()
            self.report = assemble_report(self._record())
        except BaseException as exc:  # never leave a waiter hanging: any failure here becomes a crashed report
            self._kill(None)
            if self._sampler is not None:
                try:
                    self._sampler.stop()
                except Exception:
                    pass
            self.report = base_report(
                self._record(finished=False), outcome="crashed", error_kind="crashed",
                error=f"Offload Lab's runner failed: {exc!r}",
            )
        finally:
            if self._child is not None:
                self._child.close()
            if self._limit is not None:
                self._limit.remove()
            shutil.rmtree(self._run_dir, ignore_errors=True)
            # on_done runs before the run counts as finished: wait() returns, and a queued run starts, only
            # after the caller has seen the report.
            self._call(self._on_done, self.report)
            if _active is self:
                _active = None
            _RUN_LOCK.release()
            self._done.set()
        refill_spare()

    def _rel(self, t_s: float) -> float:
        return t_s - (self._t0_s if self._t0_s is not None else self._request_s)

    def _sample(self, sample: MemorySample) -> None:
        # Runs in the sampler thread at interval_s: the watchdog lives here so it reacts within one tick.
        limit = self._limit
        if limit is not None and not limit.owned:
            limit.snapshot()  # a systemd scope's folder is gone once the child exits: keep its counters
        if self._budget_mode == "watchdog" and self._budget_bytes is not None and self._budget_stop is None:
            counted = non_reclaimable_bytes(sample) + self._watch_offset
            if counted > self._budget_bytes:
                self._budget_stop = {
                    "by": "watchdog",
                    "t_s": self._rel(sample.t_s),
                    "rss_bytes": sample.rss_bytes,
                    "counted_bytes": counted,
                }
                self._kill(None)
        with self._origin_lock:
            # Start-up is kept in the Timeline (negative times), not streamed: that includes a sample the
            # sampler took just before the load start but delivered after it was set.
            if self._t0_s is None or sample.t_s < self._t0_s:
                return
            shifted = replace(sample, t_s=sample.t_s - self._t0_s)
        self._call(self._on_sample, shifted)

    def _call(self, callback: Callable[[Any], None] | None, value: Any) -> None:
        """Call a caller's callback; a bug in a plot must not turn a good load into a failed one."""
        if callback is None:
            return
        try:
            callback(value)
        except Exception as exc:  # kept, and shown in the Report's details
            if self.callback_error is None:
                self.callback_error = f"{type(exc).__name__}: {exc}"

    def _add_event(self, t_s: float, label: str, kind: str) -> None:
        event = Event(t_s=t_s, label=label, kind=kind)  # absolute; shifted when the Timeline is built
        self._events.append(event)
        self._call(self._on_event, replace(event, t_s=self._rel(t_s)))

    def _read(self, child: Child) -> None:
        for raw in child.lines():
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            kind = message.get("type")
            self._messages[kind] = message
            if kind == MSG_READY:
                self._set_room(child, message)
                with self._origin_lock:
                    self._t0_s = float(message["t_s"])
                held = [s for s in (self._sampler.samples if self._sampler else []) if s.t_s >= self._t0_s]
                for sample in held:  # taken between the child's ready and this message: stream them now
                    self._call(self._on_sample, replace(sample, t_s=sample.t_s - self._t0_s))
                baseline = format_bytes(message["rss_bytes"])
                self._add_event(message["t_s"], f"load starts: baseline {baseline}", "ready")
            elif kind == MSG_EVENT:
                if message.get("memory"):
                    self._event_samples.append(MemorySample(t_s=message["t_s"], **message["memory"]))
                self._add_event(message["t_s"], message["label"], message.get("kind", "info"))
            elif kind == MSG_GPU:
                self._gpu_samples.append((message["t_s"], int(message["bytes"])))

    def _stderr_tail(self) -> str:
        try:
            text = (self._run_dir / "stderr.txt").read_text(errors="replace")
        except OSError:
            return ""
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def _record(self, *, finished: bool = True) -> RunRecord:
        """What this run saw, for :func:`~widgetlib.measure.assemble.assemble_report` (which derives the rest).
        ``finished=False`` (the runner itself failed) reads nothing from disk: only what is already at hand."""
        files_bytes = (0, 0)
        if finished and self._offload_folder is not None:
            files_bytes = _written_since(self._offload_folder, self._offload_before)
        return RunRecord(
            strategy=self.strategy,
            checkpoint=self.checkpoint,
            checkpoint_bytes=self._info.total_bytes,
            request_s=self._request_s,
            checkpoint_format=self._info.format,
            prediction=self._estimate.explanation,
            predicted_above_baseline_bytes=self._estimate.peak_above_baseline_bytes,
            options=self._options,
            max_memory_bytes=self._load_options.max_memory_bytes,
            offload_folder=str(self._offload_folder)
            if self._offload_folder and self._options.get("offload_folder")
            else None,
            budget_bytes=self._budget_bytes,
            budget_mode=self._budget_mode,
            limit=self._limit,
            limit_events=self._limit_events,
            t0_s=self._t0_s,
            messages=dict(self._messages),
            samples=list(self._sampler.samples) if self._sampler is not None else [],
            event_samples=list(self._event_samples),
            events=list(self._events),
            gpu_samples=list(self._gpu_samples),
            cancelled=self._cancelled,
            budget_stop=self._budget_stop,
            returncode=self._returncode,
            stderr_tail=self._stderr_tail() if finished else "",
            offload_written=files_bytes,
            cold_cache=self._cold_cache,
            callback_error=self.callback_error,
        )


_NOT_RECORDED = frozenset({"checkpoint", "strategy", "on_sample", "on_event", "on_done", "queue"})


def start(
    checkpoint: str | os.PathLike[str],
    strategy: str,
    *,
    dtype: str = RUN_DEFAULTS.dtype,
    max_memory: str | int | None = RUN_DEFAULTS.max_memory,
    offload_folder: str | os.PathLike[str] | None = RUN_DEFAULTS.offload_folder,
    offload_via: str = RUN_DEFAULTS.offload_via,
    budget: str | int | None = RUN_DEFAULTS.budget,
    cold_cache: bool = RUN_DEFAULTS.cold_cache,
    cold_forward: bool = RUN_DEFAULTS.cold_forward,
    forwards: int = RUN_DEFAULTS.forwards,
    forward_tokens: int = RUN_DEFAULTS.forward_tokens,
    low_cpu_mem_usage: bool = RUN_DEFAULTS.low_cpu_mem_usage,
    offload_and_reload: bool = RUN_DEFAULTS.offload_and_reload,
    gpu_max_memory: str | int | None = RUN_DEFAULTS.gpu_max_memory,
    call: str | None = RUN_DEFAULTS.call,
    code: str | None = RUN_DEFAULTS.code,
    threads: int | None = RUN_DEFAULTS.threads,
    interval_s: float = RUN_DEFAULTS.interval_s,
    on_sample: Callable[[MemorySample], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    on_done: Callable[[Report], None] | None = None,
    queue: bool = True,
) -> RunHandle:
    """Start one measured load in a fresh child process and return at once with a :class:`RunHandle`.

    The options are those of :func:`run` (documented there; their defaults are ``RUN_DEFAULTS`` in
    :mod:`widgetlib.core.options`), plus ``on_sample`` / ``on_event`` / ``on_done``,
    called from background threads as the run goes (times in seconds from the load start), and ``queue``:
    ``False`` refuses (``RunnerBusyError``) instead of waiting when another run is in progress.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> handle = start(make_checkpoint(size="8MB", shards=2), "manual_shards", forwards=1)
    >>> handle.wait().outcome
    'ok'
    """
    global _active
    # The options as given, by parameter name (first statement: nothing but the parameters is bound yet), so
    # that the list is spelled once, in the signature above.
    given = dict(locals())
    # The one place a strategy name and its options are checked: an option it does not use is refused.
    accepts = check_options(strategy, given).accepts
    info = inspect_checkpoint(Path(checkpoint).expanduser())
    max_memory_bytes = parse_size(max_memory, name="max_memory") if max_memory is not None else None
    budget_bytes = parse_size(budget, name="budget") if budget is not None else None
    gpu_bytes = parse_size(gpu_max_memory, name="gpu_max_memory") if gpu_max_memory is not None else None
    if not isinstance(forwards, int) or forwards < 1:
        raise OptionError(f"forwards={forwards!r} must be a whole number of at least 1.", kind="bad_option")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise OptionError(f"threads={threads!r} must be a whole number of at least 1, or None.", kind="bad_option")
    # The options the loader takes as given (the same name here and in LoadOptions) go through by name, so a new
    # one cannot be validated yet never sent; built now so that a bad dtype, offload_via or forward_tokens fails
    # before anything starts. The folders (and max_memory's default) are filled in below.
    load_options = LoadOptions(
        **{f.name: given[f.name] for f in fields(LoadOptions) if f.name in given and f.name != "offload_folder"},
        max_memory_bytes=max_memory_bytes, gpu_max_memory_bytes=gpu_bytes,
    )
    processes.check_architecture(info.folder)
    if accepts("call"):
        if call is None:
            raise OptionError(f"strategy {strategy!r} needs call='from_pretrained(...)', the line to run.",
                              kind="bad_option")
        parse_call(call)  # a line that is no from_pretrained call is refused here, in one sentence
    if accepts("code") and code is None:
        raise OptionError(f"strategy {strategy!r} needs code=, a function packed by "
                          "widgetlib.core.learner_code.pack_function.", kind="bad_option")
    if budget_bytes is not None and budget_bytes < info.largest_tensor_bytes:
        raise OptionError(
            f"budget={budget!r} is smaller than the largest tensor ({info.largest_tensor}, "
            f"{format_bytes(info.largest_tensor_bytes)}), which must fit in RAM at least once; raise the budget.",
            kind="budget_too_small",
        )
    budget_mode = limits.choose_mode(budget_bytes)
    if accepts("max_memory") and max_memory_bytes is None:
        max_memory_bytes = default_max_memory_bytes(info)
    learner_folder = _check_offload_folder(offload_folder) if offload_folder is not None else None

    if not _RUN_LOCK.acquire(blocking=queue):
        running = _active.strategy if _active is not None else "another strategy"
        raise RunnerBusyError(
            f"A {running} run is already in progress in this kernel; wait for it or press Stop there, then run again."
        )
    run_dir: Path | None = None
    try:
        run_dir = Path(tempfile.mkdtemp(prefix="offload-lab-run-"))
        (run_dir / "tmp").mkdir()
        folder = learner_folder
        if accepts("offload_folder") and folder is None:
            folder = run_dir / "offload"
            folder.mkdir()
        scratch = None
        if offload_and_reload:
            scratch = run_dir / "scratch"
            scratch.mkdir()
        load_options = replace(load_options, max_memory_bytes=max_memory_bytes, offload_folder=folder,
                               scratch_folder=scratch)
        job = encode_job(
            str(info.folder),
            strategy,
            load_options,
            forwards=forwards,
            threads=threads,
            go_after_ready=budget_bytes is not None,
            # Dropped by the child itself, between its load and its first forward: only it knows that moment.
            cold_forward_paths=[str(info.folder), *([str(folder)] if folder else [])] if cold_forward else None,
            probe="portable" if portable_probe() else "native",
            stderr_path=str(run_dir / "stderr.txt"),
            tmp_dir=str(run_dir / "tmp"),
        )
        # What the Report records as the run's options: every one given but the checkpoint, the strategy and
        # the callbacks (which no JSON can hold), and how the child was started.
        options = {name: value for name, value in given.items() if name not in _NOT_RECORDED}
        options.update(
            offload_folder=str(learner_folder) if learner_folder else None,
            start_method=_start_method(load_options),
            probe="portable" if portable_probe() else "native",
        )
        if budget_mode == "watchdog" and limits.mode_reason():
            # What is missing for a real limit here and what would enable it, for the Report and the lesson.
            options["budget_note"] = f"the watchdog was used: {limits.mode_reason()}"
        # Before the child exists, so that it reads the checkpoint (and a learner's offload folder) from disk.
        dropped = limits.cold_cache([info.folder, *([learner_folder] if learner_folder else [])]) if cold_cache \
            else None
        handle = RunHandle(
            info=info,
            strategy=strategy,
            job=job,
            load_options=load_options,
            options=options,
            run_dir=run_dir,
            offload_folder=folder,
            budget_bytes=budget_bytes,
            budget_mode=budget_mode,
            interval_s=interval_s,
            on_sample=on_sample,
            on_event=on_event,
            on_done=on_done,
            cold_cache_done=dropped,
        )
    except BaseException:
        _RUN_LOCK.release()
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if not handle.done:
        _active = handle
    return handle


def run(checkpoint: str | os.PathLike[str], strategy: str, **options: Any) -> Report:
    """Load ``checkpoint`` with ``strategy`` in a fresh child process, measured; block until done.

    - ``dtype``: ``"keep"`` (the checkpoint's own), ``"float32"``, ``"bfloat16"`` or ``"float16"``.
    - ``max_memory`` (offload_folder only): RAM weights may fill before the rest goes to ``offload_folder``
      ("300MB"; default half the checkpoint). ``offload_folder``: where they go (default a temporary folder,
      removed after). ``offload_via``: ``"from_pretrained"`` or ``"accelerate"``.
    - ``budget``: simulate a smaller machine of this size ("1.2GB"): a real kernel memory limit where one can
      be made, else a watchdog on the memory that cannot be reclaimed (``Report.budget_mode`` says which).
    - ``cold_cache``: drop the checkpoint's (and the offload folder's) pages from the page cache first, so the
      load pays real disk reads (``Report.disk_read_bytes``, ``Report.major_faults``). ``cold_forward``: drop
      them again after the load, before the first forward, so the forwards read from disk what they need from
      the files (offloaded weights: ``Report.disk_read_forward_bytes``) instead of finding the pages the load
      just read still cached.
    - ``forwards``: forward passes after the load (``forward_s`` is the first, ``steady_forward_s`` the median of
      the rest); ``forward_tokens``: tokens per forward.
    - ``low_cpu_mem_usage``: the flag passed to ``from_pretrained`` (low_cpu_mem_usage strategy);
      ``offload_and_reload`` (manual_shards): write every shard to a scratch folder and read it back;
      ``gpu_max_memory``: let ``device_map`` place layers on CUDA device 0; ``threads``: torch threads;
      ``call`` (from_pretrained_call, the strategy :func:`widgetlib.measure.explain.explain_call` runs): a
      ``from_pretrained(...)`` line, run as written on the checkpoint; ``code`` (learner_loader,
      learner_safe_load, the strategies lessons 04 and 06's checks run): a learner's function, packed by
      :func:`widgetlib.core.learner_code.pack_function`.
    - ``interval_s``: sampling interval (0.01 = 100 Hz); ``on_sample``/``on_event``/``on_done``, ``queue``: see
      :func:`start`.

    Learner mistakes (a missing folder, a bad size, an option that means nothing to ``strategy``, such as
    ``max_memory`` for ``normal``: each strategy's ``options`` in ``widgetlib.core.registry``) raise
    :class:`~widgetlib.core.errors.OffloadLabError` before anything starts; whatever happens after (an error
    in the load, a budget stop, a crash) comes back as the Report's ``outcome`` and ``error``.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> report = run(make_checkpoint(size="8MB"), "normal", forwards=2)
    >>> report.outcome, report.peak_ratio > 1.5, report.steady_forward_s > 0  # normal: two copies meet
    ('ok', True, True)
    """
    try:  # an unknown keyword is refused in run's own name, as a def spelling every option would
        _RUN_SIGNATURE.bind(checkpoint, strategy, **options)
    except TypeError as exc:
        raise TypeError(f"run() {exc}") from None
    handle = start(checkpoint, strategy, **options)
    try:
        return handle.wait()
    except KeyboardInterrupt:  # an interrupted kernel must not leave a load running in another process
        handle.cancel()
        handle.wait(30)
        raise


# run takes exactly start's options (spelled once, in start): this signature is what help(run), Jupyter's
# Shift-Tab and the check above show and use, every option with its default.
_RUN_SIGNATURE = inspect.signature(start).replace(return_annotation="Report")
run.__signature__ = _RUN_SIGNATURE  # type: ignore[attr-defined]
