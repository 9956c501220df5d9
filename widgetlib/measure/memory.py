"""The memory probe: read a process's RAM, watch it from a background thread, keep the result as a Timeline.

Everything here is stamped on one clock, :func:`now_s` (``time.monotonic``). That clock is system-wide on
Linux, macOS and Windows, so an event a child process stamps ("shard 3/6 read") and the samples its parent
takes of it line up on one time axis without any translation.

What is read, and why:

- ``rss_bytes`` — resident set size, what "RAM used" means in ``top`` and the task manager;
- ``rss_anon_bytes`` / ``rss_file_bytes`` (Linux) — the split between private memory (tensors copied into
  the heap) and file-backed pages (an mmap'd ``.safetensors`` file): a lazy load shows up as *file* pages that
  the kernel can drop again, a copy as *anonymous* pages that it cannot;
- ``hwm_bytes`` — the kernel's own high-water mark. A 100 Hz sampler can miss a spike that lasts 3 ms; the
  kernel cannot, so reports use ``max(kernel peak, sampled peak)``;
- ``uss_bytes`` (optional, rarer) — memory only this process holds; costly to read, so off by default.

This module is the measurement layer: stdlib + psutil only, no torch, transformers or widget imports.

>>> with Sampler(interval_s=0.01) as sampler:
...     sampler.event("work started", kind="phase").kind
'phase'
>>> sampler.samples[0].rss_bytes > 0, sampler.process_gone
(True, False)
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psutil

from ..core.errors import OptionError
from ..core.options import RUN_DEFAULTS
from .samples import Event, MemorySample, non_reclaimable_bytes, now_s
from .thinning import ThinnedSamples
from .timeline import Timeline

__all__ = [
    "Event",
    "PEAK_SOURCES",
    "MemorySample",
    "Sampler",
    "Timeline",
    "kernel_peak_bytes",
    "non_reclaimable_bytes",
    "peak_source",
    "portable_probe",
    "now_s",
    "read_memory",
    "reset_kernel_peak",
]

# /proc/PID/status is the cheap Linux source (one small text file, no page-table walk); it is absent elsewhere
# and in a few sandboxes, where psutil takes over.
_PROC_STATUS_EXISTS = os.path.exists("/proc/self/status")

PEAK_SOURCES = ("VmHWM", "ru_maxrss", "peak_wset", "sampled")


def portable_probe() -> bool:
    """True when ``OFFLOAD_LAB_PROBE=portable``: use only what psutil offers on every OS, as on macOS/Windows.

    Then there is no /proc, no VmHWM and no anonymous/file split (those :class:`MemorySample` fields are None),
    so the Linux-only paths can be tested on Linux. Read at each call, so a test can switch it.

    >>> isinstance(portable_probe(), bool)
    True
    """
    return os.environ.get("OFFLOAD_LAB_PROBE", "").strip().lower() == "portable"


def _use_proc() -> bool:
    return _PROC_STATUS_EXISTS and not portable_probe()


def peak_source() -> str:
    """Where this platform's best honest peak comes from: ``"VmHWM"`` (Linux /proc), ``"peak_wset"``
    (Windows, psutil), ``"ru_maxrss"`` (the process's own getrusage: macOS, portable Linux), else ``"sampled"``.

    >>> peak_source() in PEAK_SOURCES
    True
    """
    if _use_proc():
        return "VmHWM"
    if sys.platform == "win32":
        return "peak_wset"
    try:
        import resource  # noqa: F401
    except ImportError:
        return "sampled"
    return "ru_maxrss"


_KIB = 1024
# Keys searched with a leading newline so that "VmRSS:" cannot match inside another line.
_K_RSS = b"\nVmRSS:"
_K_HWM = b"\nVmHWM:"
_K_ANON = b"\nRssAnon:"
_K_FILE = b"\nRssFile:"
_K_SHMEM = b"\nRssShmem:"


# ----------------------------------------------------------------------------------------------------------
# One-shot readings
# ----------------------------------------------------------------------------------------------------------


def _kib_field(data: bytes, key: bytes) -> int | None:
    """Return the ``"<key>   1234 kB"`` value of a /proc status text in bytes, or None if absent."""
    start = data.find(key)
    if start < 0:
        return None
    start += len(key)
    end = data.find(b"\n", start)
    # The line is "\t   1234 kB"; int() skips the whitespace, the unit is cut off.
    return int(data[start : end if end >= 0 else len(data)].split()[0]) * _KIB


def _read_proc_status(pid: int | None, dir_fd: int | None = None) -> bytes:
    """Return the raw text of /proc/PID/status (via ``dir_fd`` when given), ProcessLookupError if gone."""
    path = "status" if dir_fd is not None else f"/proc/{'self' if pid is None else pid}/status"
    try:
        fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
    except FileNotFoundError:
        raise ProcessLookupError(f"process {pid} does not exist (or has exited)") from None
    try:
        # Read to EOF: a process with many supplementary groups can push the Vm* lines past any fixed size.
        chunks = [os.read(fd, 8192)]
        while chunks[-1]:
            chunks.append(os.read(fd, 8192))
    except ProcessLookupError:
        raise ProcessLookupError(f"process {pid} has exited") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if _K_RSS not in data:
        # A zombie (exited, not yet reaped by its parent) still has a status file but no memory.
        raise ProcessLookupError(f"process {pid} has exited (zombie) and holds no memory")
    return data


def _sample_from_status(t_s: float, data: bytes) -> MemorySample:
    rss = _kib_field(data, _K_RSS)
    assert rss is not None  # _read_proc_status guarantees VmRSS
    file_bytes = _kib_field(data, _K_FILE)
    shmem_bytes = _kib_field(data, _K_SHMEM)
    if file_bytes is not None and shmem_bytes is not None:
        file_bytes += shmem_bytes
    return MemorySample(
        t_s=t_s,
        rss_bytes=rss,
        rss_anon_bytes=_kib_field(data, _K_ANON),
        rss_file_bytes=file_bytes,
        hwm_bytes=_kib_field(data, _K_HWM),
        rss_shmem_bytes=shmem_bytes,
    )


def _is_self(pid: int | None) -> bool:
    return pid is None or pid == os.getpid()


def _rusage_peak_self() -> int | None:
    """This process's lifetime peak RSS from getrusage, in bytes (KiB on Linux/BSD, bytes on macOS)."""
    try:
        import resource  # not on Windows
    except ImportError:
        return None
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(max_rss) if sys.platform == "darwin" else int(max_rss) * _KIB


def _psutil_sample(proc: psutil.Process, pid: int | None, t_s: float) -> MemorySample:
    try:
        info = proc.memory_info()
    except psutil.NoSuchProcess:  # ZombieProcess is a subclass: a zombie holds no memory either
        raise ProcessLookupError(f"process {pid} does not exist (or has exited)") from None
    except psutil.AccessDenied as exc:
        raise PermissionError(f"not permitted to read the memory of process {pid}") from exc
    hwm = getattr(info, "peak_wset", None)  # Windows only
    if hwm is None and _is_self(pid):
        hwm = _rusage_peak_self()
    return MemorySample(
        t_s=t_s, rss_bytes=int(info.rss), rss_anon_bytes=None, rss_file_bytes=None, hwm_bytes=hwm
    )


def _psutil_process(pid: int | None) -> psutil.Process:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        raise ProcessLookupError(f"process {pid} does not exist") from None


def read_memory(pid: int | None = None) -> MemorySample:
    """Return one :class:`MemorySample` of ``pid`` (default: this process), stamped with :func:`now_s`.

    On Linux this parses ``/proc/PID/status`` once (VmRSS, RssAnon, RssFile, RssShmem, VmHWM): a few tens of
    microseconds, independent of how much memory the process holds. Elsewhere it asks psutil. Raises
    ``ProcessLookupError`` if the process does not exist or has exited (a zombie counts as exited), and
    ``PermissionError`` if the OS refuses to show it.

    >>> sample = read_memory()
    >>> sample.rss_bytes > 0 and sample.t_s <= now_s()
    True
    """
    t_s = now_s()
    if _use_proc():
        return _sample_from_status(t_s, _read_proc_status(pid))
    return _psutil_sample(_psutil_process(pid), pid, t_s)


def kernel_peak_bytes(pid: int | None = None) -> int | None:
    """Return the kernel's high-water mark of ``pid``'s RSS in bytes (default: this process), or None.

    Linux: ``VmHWM`` (since the process started or since :func:`reset_kernel_peak`). Windows: psutil's
    ``peak_wset``. Elsewhere only this process's own peak is known (``getrusage``'s ``ru_maxrss``); for
    another process the answer is None. Raises ``ProcessLookupError`` if the process is gone — read it
    before the process exits. Linux keeps RSS in per-CPU batched counters, so a sampled ``rss_bytes`` can
    exceed this mark by a few hundred KiB; :attr:`Timeline.peak_bytes` takes the max of both for that reason.

    >>> peak = kernel_peak_bytes()
    >>> peak is None or peak > 0
    True
    """
    if _use_proc():
        return _kib_field(_read_proc_status(pid), _K_HWM)
    sample = _psutil_sample(_psutil_process(pid), pid, now_s())
    return sample.hwm_bytes


def reset_kernel_peak(pid: int | None = None) -> bool:
    """Reset ``pid``'s kernel high-water mark to its current RSS; return whether that happened.

    Linux >= 4.0 supports this (write ``5`` to ``/proc/PID/clear_refs``), so a run's peak excludes the spike
    of importing torch. Returns False where unsupported or not permitted (other OSes, old kernels, another
    user's process, some sandboxes). Raises ``ProcessLookupError`` if the process is gone.

    >>> if reset_kernel_peak():
    ...     assert kernel_peak_bytes() < read_memory().rss_bytes + 50_000_000
    """
    if not _use_proc():
        return False
    path = f"/proc/{'self' if pid is None else pid}/clear_refs"
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"5")
        finally:
            os.close(fd)
    except FileNotFoundError:
        # Either the process is gone or the kernel has no clear_refs; read_memory tells which.
        read_memory(pid)
        return False
    except ProcessLookupError:
        raise ProcessLookupError(f"process {pid} has exited") from None
    except OSError:
        return False  # EINVAL on kernels < 4.0, EACCES/EPERM for other users' processes
    # A zombie accepts the write and ignores it; report that as the process being gone.
    read_memory(pid)
    return True


# ----------------------------------------------------------------------------------------------------------
# The sampler thread
# ----------------------------------------------------------------------------------------------------------


class _Probe:
    """Reads one process repeatedly, as cheaply as the platform allows."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self._dir_fd: int | None = None
        self._proc: psutil.Process | None = None
        if _use_proc():
            # Hold /proc/PID open: once the process is reaped, reads through this fd fail with ESRCH even if
            # the PID number is reused by a new process, so the sampler can never drift onto a stranger.
            try:
                self._dir_fd = os.open(
                    f"/proc/{'self' if pid is None else pid}", os.O_RDONLY | os.O_DIRECTORY
                )
            except FileNotFoundError:
                raise ProcessLookupError(f"process {pid} does not exist") from None
        else:
            self._proc = _psutil_process(pid)

    def read(self) -> MemorySample:
        t_s = now_s()
        if self._dir_fd is not None:
            return _sample_from_status(t_s, _read_proc_status(self.pid, self._dir_fd))
        assert self._proc is not None
        return _psutil_sample(self._proc, self.pid, t_s)

    def close(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None


class Sampler:
    """Watches a process's memory from a background (daemon) thread.

    Samples ``pid`` (default: this process) every ``interval_s`` seconds (default 0.01 = 100 Hz) on absolute
    deadlines, so the rate does not drift with the cost of each reading; if the thread falls behind (a busy
    machine, or the GIL held by the watched code when sampling this process), missed deadlines are skipped,
    never bunched up. The sampler stops by itself when the process exits (``process_gone`` becomes True).

    ``on_sample(sample)`` is called for every reading **in the sampler thread**: it must be quick (it delays
    the next sample) and thread-safe. If it raises, the exception is stored in :attr:`error`, the callback is
    not called again (sampling goes on, so the plot stays complete), and the first :meth:`stop` re-raises it.
    Any other failure of the sampler itself (e.g. ``PermissionError``) ends the thread and is re-raised the
    same way.

    ``uss_interval_s`` turns on USS: a second daemon thread reads it that often (it walks the page tables:
    ~50 ms for a 1.6 GB process, and it briefly holds that process's mmap lock for reading), and each new
    value is attached as ``uss_bytes`` to the next RSS sample, so RSS keeps its rate while USS is slow.

    ``max_samples`` bounds memory for long runs: when the list is full it is halved by keeping the larger-RSS
    sample of each neighbouring pair (so the peak survives; a USS value on the other one is carried over), and
    from then on one sample is kept per 2, 4, 8, ... readings: the whole run stays covered at a coarser step.

    >>> import time
    >>> seen = []
    >>> with Sampler(interval_s=0.005, on_sample=seen.append) as sampler:
    ...     mark = sampler.event("checkpoint opened")
    ...     time.sleep(0.05)
    >>> len(sampler.samples) >= 2, sampler.events == [mark], len(seen) >= len(sampler.samples)
    (True, True, True)
    """

    def __init__(
        self,
        pid: int | None = None,
        *,
        interval_s: float = RUN_DEFAULTS.interval_s,
        on_sample: Callable[[MemorySample], None] | None = None,
        uss_interval_s: float | None = None,
        max_samples: int | None = None,
    ) -> None:
        if not interval_s > 0:
            raise OptionError(
                f"interval_s={interval_s!r} must be a positive number of seconds.", kind="bad_interval"
            )
        if uss_interval_s is not None and not uss_interval_s > 0:
            raise OptionError(
                f"uss_interval_s={uss_interval_s!r} must be a positive number of seconds, or None.",
                kind="bad_interval",
            )
        if max_samples is not None and max_samples < 2:
            raise OptionError(f"max_samples={max_samples!r} must be at least 2, or None.", kind="bad_count")
        self.pid = os.getpid() if pid is None else pid
        self.interval_s = float(interval_s)
        self.uss_interval_s = uss_interval_s
        self.max_samples = max_samples
        self._on_sample = on_sample
        self._lock = threading.Lock()
        self._stop_flag = threading.Event()
        self._first_sample = threading.Event()
        self._thread: threading.Thread | None = None
        self._uss_thread: threading.Thread | None = None
        self._uss_fresh: int | None = None  # the newest USS reading, not yet attached to a sample
        self._samples = ThinnedSamples(max_samples)  # see max_samples above
        self._events: list[Event] = []
        self._last: MemorySample | None = None
        self._peak_rss: int | None = None
        self._count = 0
        self._error: BaseException | None = None
        self._error_raised = False
        self._process_gone = False

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> Sampler:
        """Start the sampling thread and return ``self`` once the first sample is in.

        Raises ``ProcessLookupError`` at once if the process does not exist; ``RuntimeError`` if started
        twice.

        >>> sampler = Sampler().start()
        >>> sampler.last_sample is not None
        True
        >>> sampler.stop()
        """
        if self._thread is not None:
            raise RuntimeError("this Sampler was already started; make a new one for a new run")
        probe = _Probe(self.pid)
        self._thread = threading.Thread(
            target=self._run, args=(probe,), name=f"offload-lab-sampler-{self.pid}", daemon=True
        )
        self._thread.start()
        if self.uss_interval_s is not None:
            self._uss_thread = threading.Thread(
                target=self._run_uss, name=f"offload-lab-uss-{self.pid}", daemon=True
            )
            self._uss_thread.start()
        # Waiting for the first reading means a `with Sampler(...)` block always opens with a baseline sample.
        self._first_sample.wait(timeout=max(1.0, 10 * self.interval_s))
        return self

    def stop(self) -> None:
        """Stop sampling and join the thread; idempotent.

        Re-raises (once) an exception from ``on_sample`` or from the sampler itself. Safe to call from inside
        ``on_sample`` (it then only asks the thread to stop, since a thread cannot join itself).

        >>> sampler = Sampler().start()
        >>> sampler.stop(); sampler.stop()
        """
        self._stop_flag.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            if self._uss_thread is not None:
                self._uss_thread.join()
            with self._lock:
                error, raise_it = self._error, not self._error_raised
                self._error_raised = True
            if error is not None and raise_it:
                raise error

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.stop()
            return
        # The body's own exception wins; a callback error is attached as a note rather than hiding it.
        try:
            self.stop()
        except Exception as callback_error:  # reported on the body's exception
            if hasattr(exc, "add_note"):
                exc.add_note(f"Sampler.on_sample also failed: {callback_error!r}")

    # -- the thread -----------------------------------------------------------------------------------------

    def _run(self, probe: _Probe) -> None:
        interval_s = self.interval_s
        next_s = now_s()
        try:
            while True:
                try:
                    sample = probe.read()
                except ProcessLookupError:
                    self._process_gone = True
                    return
                if self._uss_fresh is not None:
                    with self._lock:
                        uss, self._uss_fresh = self._uss_fresh, None
                    sample = replace(sample, uss_bytes=uss)
                self._keep(sample)
                self._first_sample.set()
                callback = self._on_sample
                if callback is not None:
                    try:
                        callback(sample)
                    except Exception as exc:  # stored; stop() re-raises it
                        with self._lock:
                            self._error = exc
                        self._on_sample = None
                # Absolute deadlines: the cost of the reading and the callback does not accumulate as drift.
                next_s += interval_s
                now = now_s()
                if next_s < now:  # fell behind: skip to the next slot on the grid instead of bursting
                    next_s += ((now - next_s) // interval_s + 1) * interval_s
                if self._stop_flag.wait(next_s - now):
                    return
        except BaseException as exc:  # stop() re-raises it
            with self._lock:
                if self._error is None:
                    self._error = exc
        finally:
            probe.close()
            self._stop_flag.set()  # the USS thread ends with this one, whatever the reason
            self._first_sample.set()  # never leave start() waiting on a thread that has ended

    def _run_uss(self) -> None:
        # Its own thread because one reading can take tens of milliseconds (psutil reads smaps_rollup, which
        # releases the GIL), and the RSS thread must not wait for it.
        assert self.uss_interval_s is not None
        interval_s = self.uss_interval_s
        next_s = now_s()
        try:
            proc = _psutil_process(self.pid)
        except ProcessLookupError:
            return
        while not self._stop_flag.is_set():
            try:
                uss = int(proc.memory_full_info().uss)
            except (psutil.Error, OSError, ValueError, AttributeError):
                # Gone (the RSS thread notices), not permitted, or unsupported: USS is optional.
                return
            with self._lock:
                self._uss_fresh = uss
            next_s += interval_s
            now = now_s()
            if next_s < now:
                next_s += ((now - next_s) // interval_s + 1) * interval_s
            if self._stop_flag.wait(next_s - now):
                return

    def _keep(self, sample: MemorySample) -> None:
        with self._lock:
            self._count += 1
            self._last = sample
            if self._peak_rss is None or sample.rss_bytes > self._peak_rss:
                self._peak_rss = sample.rss_bytes
            self._samples.add(sample)

    # -- results --------------------------------------------------------------------------------------------

    @property
    def samples(self) -> list[MemorySample]:
        """A copy of the samples so far, oldest first, on the :func:`now_s` clock (at most ``max_samples``).

        >>> Sampler().samples
        []
        """
        with self._lock:
            return self._samples.samples()  # with the newest readings, not yet folded into a thinned slot

    @property
    def last_sample(self) -> MemorySample | None:
        """The newest reading (even if decimation later drops it from ``samples``), or None before start.

        >>> Sampler().last_sample is None
        True
        """
        return self._last

    @property
    def sampled_peak_bytes(self) -> int | None:
        """The largest ``rss_bytes`` over every reading taken (decimation cannot lose it), or None.

        >>> with Sampler() as sampler:
        ...     pass
        >>> sampler.sampled_peak_bytes == max(s.rss_bytes for s in sampler.samples)
        True
        """
        return self._peak_rss

    @property
    def sample_count(self) -> int:
        """How many readings were taken (``len(samples)`` is smaller once decimation started).

        >>> Sampler().sample_count
        0
        """
        return self._count

    @property
    def process_gone(self) -> bool:
        """True once the sampler stopped by itself because the watched process exited.

        >>> Sampler().process_gone
        False
        """
        return self._process_gone

    @property
    def running(self) -> bool:
        """True while the sampling thread is alive.

        >>> Sampler().running
        False
        """
        return self._thread is not None and self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped ``on_sample`` (or the sampler), if any; :meth:`stop` re-raises it once.

        >>> Sampler().error is None
        True
        """
        return self._error

    def event(self, label: str, kind: str = "info") -> Event:
        """Stamp an :class:`Event` now, on the samples' clock, store it in :attr:`events` and return it.

        Works before start and after stop too; call it from any thread.

        >>> Sampler().event("shard 1/2 read", kind="shard_read").label
        'shard 1/2 read'
        """
        stamped = Event(now_s(), label, kind)
        with self._lock:
            self._events.append(stamped)
        return stamped

    @property
    def events(self) -> list[Event]:
        """A copy of the events stamped with :meth:`event`, in the order they were stamped.

        >>> sampler = Sampler(); _ = sampler.event("a"); _ = sampler.event("b")
        >>> [e.label for e in sampler.events]
        ['a', 'b']
        """
        with self._lock:
            return list(self._events)
