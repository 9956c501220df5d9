"""Run one strategy in a fresh child process, sample its memory from outside, and return a :class:`Report`.

Why a child process: the learner's kernel holds none of the memory being measured (so the figure is not
distorted by what the notebook already holds), and an exception, an out-of-memory kill, a segfault or a budget
stop ends the child, never the kernel.

Data path: :func:`start` validates the options (so a typo fails in a second, not after a spawn), creates a
private temporary folder, spawns ``python -m widgetlib.measure.child``, and watches it with a
:class:`~widgetlib.measure.memory.Sampler` at ``interval_s``; a reader thread receives the child's events. Both
are stamped on one clock and passed to ``on_sample`` / ``on_event`` as they happen (times relative to the spawn),
so a plot can draw while the load runs. The budget watchdog runs inside the sampler's callback.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.checkpoints import CheckpointInfo, inspect_checkpoint
from ..core.errors import OptionError, RunnerBusyError
from ..core.estimates import estimate_peak
from ..core.sizes import format_bytes, parse_size
from ..core.strategies import LoadOptions, check_architecture, check_strategy
from .memory import Event, MemorySample, Sampler, Timeline, now_s
from .report import Report

__all__ = ["RunHandle", "default_max_memory_bytes", "prewarm", "run", "shutdown_spare", "start"]

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


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            found[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return found


def _written_since(folder: Path, before: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """Files and bytes that are new or changed in ``folder`` since ``before``."""
    files = size = 0
    for name, (n_bytes, mtime) in _snapshot(folder).items():
        if before.get(name) != (n_bytes, mtime):
            files += 1
            size += n_bytes
    return files, size


def _check_offload_folder(value: str | os.PathLike[str]) -> Path:
    folder = Path(value).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise OptionError(
            f"offload_folder {folder} is a file, not a folder; give a folder path.",
            kind="offload_not_writable",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(
            f"offload_folder {folder} cannot be created ({exc.strerror}); choose a folder you can write to.",
            kind="offload_not_writable",
        ) from None
    probe = folder / f".offload-lab-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        raise OptionError(
            f"offload_folder {folder} is not writable; choose a folder you can write to.",
            kind="offload_not_writable",
        ) from None
    return folder


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",  # never reach for a hub: every checkpoint here is a local folder
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        TQDM_DISABLE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    # The child must import this same widgetlib, installed or not.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


# A spare child: spawned after each run, it imports torch and transformers (seconds) while nobody waits, then
# blocks on stdin until the next run needs it. Its imports are not part of any measurement: the baseline is
# taken after them either way. OFFLOAD_LAB_WARM_CHILD=0 turns it off (one process less, slower runs).
_spare: subprocess.Popen[bytes] | None = None
_spare_lock = threading.Lock()


def _keep_warm() -> bool:
    return os.environ.get("OFFLOAD_LAB_WARM_CHILD", "1") != "0"


def _spawn_child() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "widgetlib.measure.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the child points its stderr at the run's own file once it has a job
        env=_child_env(),
        # Its own session: a Ctrl-C in the kernel does not reach the child, and a kill reaches its helpers.
        start_new_session=(os.name == "posix"),
    )


def _take_child() -> subprocess.Popen[bytes]:
    global _spare
    with _spare_lock:
        child, _spare = _spare, None
    if child is not None and child.poll() is None:
        return child
    if child is not None:
        _discard(child)
    return _spawn_child()


def _refill_spare() -> None:
    global _spare
    if not _keep_warm():
        return
    with _spare_lock:
        if _spare is None or _spare.poll() is not None:
            _spare = _spawn_child()


def _discard(child: subprocess.Popen[bytes]) -> None:
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            stream.close()  # a waiting child reads EOF on stdin and exits by itself
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def prewarm() -> None:
    """Start the spare child now, so the first run of a session does not wait for torch's import.

    The widgets call this when they are created; it returns at once (the import runs in the child).

    >>> prewarm()
    """
    _refill_spare()


@atexit.register
def shutdown_spare() -> None:
    """End the spare child, if any (called at interpreter exit; harmless to call any time).

    >>> shutdown_spare()
    """
    global _spare
    with _spare_lock:
        child, _spare = _spare, None
    if child is not None:
        _discard(child)


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
        options: dict[str, Any],
        run_dir: Path,
        offload_folder: Path | None,
        budget_bytes: int | None,
        interval_s: float,
        on_sample: Callable[[MemorySample], None] | None,
        on_event: Callable[[Event], None] | None,
        on_done: Callable[[Report], None] | None,
    ) -> None:
        self.strategy = strategy
        self.checkpoint = str(info.folder)
        self._info = info
        self._job = job
        self._options = options
        self._run_dir = run_dir
        self._offload_folder = offload_folder
        self._offload_before = _snapshot(offload_folder) if offload_folder else {}
        self._budget_bytes = budget_bytes
        # Predicted from the index alone, before anything runs; the report puts it next to the measurement.
        self._estimate = estimate_peak(
            info, strategy, dtype=job["dtype"], max_memory_bytes=job.get("max_memory_bytes")
        )
        self._interval_s = interval_s
        self._on_sample = on_sample
        self._on_event = on_event
        self._on_done = on_done
        self._events: list[Event] = []
        self._gpu_samples: list[tuple[float, int]] = []
        self._messages: dict[str, dict[str, Any]] = {}
        self._cancelled = False
        self._budget_stop: dict[str, float] | None = None
        self._done = threading.Event()
        self._kill_lock = threading.Lock()
        self.report: Report | None = None
        self.callback_error: str | None = None
        self._t0_s = now_s()
        self._process = _take_child()
        # The child writes its stderr to a file (never a pipe a chatty library could fill) and its temporary
        # files into this run's folder, both removed when the run ends.
        job = {**job, "stderr_path": str(run_dir / "stderr.txt"), "tmp_dir": str(run_dir / "tmp")}
        assert self._process.stdin is not None
        try:
            self._process.stdin.write((json.dumps(job) + "\n").encode())
            self._process.stdin.close()
        except BrokenPipeError:  # the child died before it could take the job: the Report will say so
            pass
        self._sampler = Sampler(self._process.pid, interval_s=interval_s, on_sample=self._sample)
        self._sampler.start()
        self._reader = threading.Thread(target=self._read, name="offload-lab-reader", daemon=True)
        self._reader.start()

    # ------------------------------------------------------------------------------ public

    @property
    def done(self) -> bool:
        """True once the child has exited and the Report is ready."""
        return self._done.is_set()

    @property
    def pid(self) -> int:
        """The child process's PID."""
        return self._process.pid

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
            if self._process.poll() is not None:
                return
            try:
                if os.name == "posix":
                    os.killpg(self._process.pid, sig or signal.SIGKILL)
                else:
                    self._process.kill()
            except (ProcessLookupError, PermissionError):
                pass

    def _sample(self, sample: MemorySample) -> None:
        # Runs in the sampler thread at interval_s: the budget watchdog lives here so it reacts within one tick.
        if self._budget_bytes is not None and self._budget_stop is None and sample.rss_bytes > self._budget_bytes:
            self._budget_stop = {"t_s": sample.t_s - self._t0_s, "rss_bytes": sample.rss_bytes}
            self._kill(None)
        self._call(self._on_sample, replace(sample, t_s=sample.t_s - self._t0_s))

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
        event = Event(t_s=t_s - self._t0_s, label=label, kind=kind)
        self._events.append(event)
        self._call(self._on_event, event)

    def _read(self) -> None:
        global _active
        try:
            assert self._process.stdout is not None
            for raw in self._process.stdout:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                kind = message.get("type")
                self._messages[kind] = message
                if kind == "ready":
                    baseline = format_bytes(message["rss_bytes"])
                    self._add_event(message["t_s"], f"imports done: baseline {baseline}", "ready")
                elif kind == "event":
                    self._add_event(message["t_s"], message["label"], message.get("kind", "info"))
                elif kind == "gpu":
                    self._gpu_samples.append((message["t_s"] - self._t0_s, int(message["bytes"])))
            self._process.wait()
            try:
                self._sampler.stop()
            except Exception as exc:  # the sampler re-raises errors of its own thread here; samples are kept
                self.callback_error = self.callback_error or f"{type(exc).__name__}: {exc}"
            self.report = self._build_report()
        except BaseException as exc:  # never leave a waiter hanging: any failure here becomes a crashed report
            self._kill(None)
            self._sampler.stop()
            self.report = self._base_report(outcome="crashed", error=f"Offload Lab's runner failed: {exc!r}")
        finally:
            if self._process.stdout is not None:
                self._process.stdout.close()
            shutil.rmtree(self._run_dir, ignore_errors=True)
            # on_done runs before the run counts as finished: wait() returns, and a queued run starts, only
            # after the caller has seen the report.
            self._call(self._on_done, self.report)
            if _active is self:
                _active = None
            _RUN_LOCK.release()
            self._done.set()
        _refill_spare()

    def _stderr_tail(self) -> str:
        try:
            text = (self._run_dir / "stderr.txt").read_text(errors="replace")
        except OSError:
            return ""
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def _base_report(self, **fields: Any) -> Report:
        return Report(
            strategy=self.strategy,
            checkpoint=self.checkpoint,
            checkpoint_bytes=self._info.total_bytes,
            checkpoint_format=self._info.format,
            prediction=self._estimate.explanation,
            offload_folder=str(self._offload_folder)
            if self._offload_folder and self._options.get("offload_folder")
            else None,
            budget_bytes=self._budget_bytes,
            max_memory_bytes=self._job.get("max_memory_bytes"),
            options=self._options,
            **fields,
        )

    def _build_report(self) -> Report:
        ready = self._messages.get("ready")
        result = self._messages.get("result")
        error = self._messages.get("error")
        # The run ends with the child's last message; what follows is the process exiting, not the load.
        end_t = (result or error or {}).get("t_s")
        samples = [s for s in self._sampler.samples if end_t is None or s.t_s <= end_t]
        returncode = self._process.returncode
        baseline = ready["rss_bytes"] if ready else None

        # The kernel's high-water mark: the child's own final reading, else the last one sampled after the reset.
        kernel_peak = (result or error or {}).get("kernel_peak_bytes")
        ready_t = ready["t_s"] if ready else None
        sampled_hwm = [
            s.hwm_bytes for s in samples if s.hwm_bytes is not None and (ready_t is None or s.t_s >= ready_t)
        ]
        if sampled_hwm:
            kernel_peak = max(kernel_peak or 0, max(sampled_hwm))
        after_ready = [s for s in samples if ready_t is None or s.t_s >= ready_t]
        sampled_peak = max((s.rss_bytes for s in after_ready), default=None)
        # Linux keeps RSS counters per CPU and approximately: a sample can read a few hundred KB above VmHWM.
        # The reported peak is never below a sample the learner can see on the plot.
        if sampled_peak is not None:
            kernel_peak = max(kernel_peak or 0, sampled_peak)

        if result:
            outcome, message, error_kind = "ok", None, None
        elif self._cancelled:
            outcome, message, error_kind = (
                "cancelled",
                "The run was cancelled before it finished.",
                "cancelled",
            )
        elif self._budget_stop is not None:
            outcome, error_kind = "stopped_by_budget", "budget"
            crossed = (
                f"Stopped at {self._budget_stop['t_s']:.2f} s: RSS reached "
                f"{format_bytes(self._budget_stop['rss_bytes'])}, over the budget of {format_bytes(self._budget_bytes)}"
            )
            if ready is None:
                message = crossed + " before the load began; the budget is below what Python and torch alone "
                message += "need, so raise it."
            else:
                message = crossed + "; this strategy needs more RAM than the simulated machine has."
        elif error:
            outcome, message, error_kind = "error", error["message"], error.get("kind", "error")
        elif returncode is not None and returncode < 0:
            sig = -returncode
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            last = format_bytes(samples[-1].rss_bytes) if samples else "an unknown size"
            if sig == getattr(signal, "SIGKILL", 9):
                outcome, error_kind = "killed", "killed"
                message = (
                    f"The loading process was killed by the operating system ({name}) at {last} RSS; usually the "
                    "machine ran out of memory: try a strategy with a lower peak or a smaller checkpoint."
                )
            else:
                outcome, error_kind = "crashed", "crashed"
                message = f"The loading process crashed ({name}) at {last} RSS; your kernel is fine, run it again."
        else:
            tail = self._stderr_tail()
            outcome, error_kind = "crashed", "crashed"
            message = f"The loading process exited with code {returncode} before reporting" + (
                f" ({tail})." if tail else "."
            )

        offload_files = offload_bytes = 0
        if self._offload_folder is not None:
            offload_files, offload_bytes = _written_since(self._offload_folder, self._offload_before)

        timeline = Timeline.from_absolute(
            self._t0_s,
            samples,
            [replace(e, t_s=e.t_s + self._t0_s) for e in self._events],
            baseline_rss_bytes=baseline,
            kernel_peak_bytes=kernel_peak,
            gpu_samples=self._gpu_samples,
        )
        report = self._base_report(
            outcome=outcome,
            error=message,
            error_kind=error_kind,
            baseline_rss_bytes=baseline,
            peak_rss_bytes=kernel_peak,
            sampled_peak_rss_bytes=sampled_peak,
            load_s=result.get("load_s") if result else None,
            forward_s=result.get("forward_s") if result else None,
            offload_folder_files=offload_files,
            offload_folder_bytes=offload_bytes,
            device_map=result.get("device_map", {}) if result else {},
            logits_sha256=result.get("logits_sha256") if result else None,
            stopped_by_budget=self._budget_stop is not None and not result,
            budget_stop=self._budget_stop,
            gpu_peak_bytes=result.get("gpu_peak_bytes") if result else None,
            details=dict(result.get("details", {}))
            if result
            else ({"traceback": error["traceback"]} if error and error.get("traceback") else {}),
            versions=ready.get("versions", {}) if ready else {},
            timeline=timeline,
        )
        if self.callback_error:
            report.details["callback_error"] = self.callback_error
        if baseline is not None:
            report.predicted_peak_rss_bytes = baseline + self._estimate.peak_above_baseline_bytes
        return report


def start(
    checkpoint: str | os.PathLike[str],
    strategy: str,
    *,
    max_memory: str | int | None = None,
    offload_folder: str | os.PathLike[str] | None = None,
    offload_via: str = "from_pretrained",
    budget: str | int | None = None,
    dtype: str = "keep",
    low_cpu_mem_usage: bool = True,
    offload_and_reload: bool = False,
    gpu_max_memory: str | int | None = None,
    threads: int | None = None,
    interval_s: float = 0.01,
    on_sample: Callable[[MemorySample], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    on_done: Callable[[Report], None] | None = None,
    queue: bool = True,
) -> RunHandle:
    """Start one measured load in a fresh child process and return at once with a :class:`RunHandle`.

    ``max_memory`` (offload_folder only) is the RAM weights may fill before the rest goes to ``offload_folder``;
    without an ``offload_folder`` a temporary one is used and removed. ``budget`` simulates a smaller machine:
    the child is stopped the moment its RSS crosses it. ``on_sample`` / ``on_event`` / ``on_done`` are called
    from background threads as the run goes. ``queue=False`` refuses (``RunnerBusyError``) instead of waiting
    when another run is in progress.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> handle = start(make_checkpoint(size="8MB", shards=2), "manual_shards")
    >>> handle.wait().outcome
    'ok'
    """
    global _active
    check_strategy(strategy)
    info = inspect_checkpoint(Path(checkpoint).expanduser())
    max_memory_bytes = parse_size(max_memory, name="max_memory") if max_memory is not None else None
    budget_bytes = parse_size(budget, name="budget") if budget is not None else None
    gpu_bytes = parse_size(gpu_max_memory, name="gpu_max_memory") if gpu_max_memory is not None else None
    LoadOptions(dtype=dtype, offload_via=offload_via)  # validates dtype and offload_via before any spawn
    check_architecture(info.folder)
    if budget_bytes is not None and budget_bytes < info.largest_tensor_bytes:
        raise OptionError(
            f"budget={budget!r} is smaller than the largest tensor ({info.largest_tensor}, "
            f"{format_bytes(info.largest_tensor_bytes)}), which must fit in RAM at least once; raise the budget.",
            kind="budget_too_small",
        )
    if strategy == "offload_folder" and max_memory_bytes is None:
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
        if strategy == "offload_folder" and folder is None:
            folder = run_dir / "offload"
            folder.mkdir()
        scratch = None
        if strategy == "manual_shards" and offload_and_reload:
            scratch = run_dir / "scratch"
            scratch.mkdir()
        job = {
            "checkpoint": str(info.folder),
            "strategy": strategy,
            "dtype": dtype,
            "max_memory_bytes": max_memory_bytes if strategy == "offload_folder" else None,
            "offload_folder": str(folder) if folder is not None and strategy == "offload_folder" else None,
            "offload_via": offload_via,
            "low_cpu_mem_usage": low_cpu_mem_usage,
            "offload_and_reload": offload_and_reload,
            "scratch_folder": str(scratch) if scratch else None,
            "gpu_max_memory_bytes": gpu_bytes,
            "threads": threads,
        }
        options = {
            "dtype": dtype,
            "max_memory": max_memory,
            "offload_folder": str(learner_folder) if learner_folder else None,
            "offload_via": offload_via,
            "budget": budget,
            "low_cpu_mem_usage": low_cpu_mem_usage,
            "offload_and_reload": offload_and_reload,
            "gpu_max_memory": gpu_max_memory,
            "interval_s": interval_s,
        }
        handle = RunHandle(
            info=info,
            strategy=strategy,
            job=job,
            options=options,
            run_dir=run_dir,
            offload_folder=folder if strategy == "offload_folder" else None,
            budget_bytes=budget_bytes,
            interval_s=interval_s,
            on_sample=on_sample,
            on_event=on_event,
            on_done=on_done,
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

    Takes the keyword options of :func:`start`. Learner mistakes (a missing folder, a bad size) raise
    :class:`~widgetlib.core.errors.OffloadLabError` before anything is spawned; whatever happens after the
    spawn (an error in the load, a budget stop, a crash) comes back as the Report's ``outcome`` and ``error``.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> report = run(make_checkpoint(size="8MB"), "normal")
    >>> report.outcome, report.peak_rss_bytes >= report.sampled_peak_rss_bytes
    ('ok', True)
    """
    handle = start(checkpoint, strategy, **options)
    try:
        return handle.wait()
    except KeyboardInterrupt:  # an interrupted kernel must not leave a load running in another process
        handle.cancel()
        handle.wait(30)
        raise
