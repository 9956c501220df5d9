"""Tests for the memory probe: real allocations in child processes, seen from the parent.

Children are driven line by line over stdin/stdout (the child prints a word, then waits for a line), so each
check happens at a known point of the child's life rather than after a hopeful sleep.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import widgetlib
import widgetlib.measure.memory as memory_module
from widgetlib.core.errors import OptionError
from widgetlib.measure.memory import (
    Event,
    MemorySample,
    Sampler,
    Timeline,
    kernel_peak_bytes,
    now_s,
    read_memory,
    reset_kernel_peak,
)

pytestmark = pytest.mark.timeout(60)

LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="RssAnon/RssFile, VmHWM and clear_refs exist only on Linux")
MB = 10**6
REPO_ROOT = str(Path(widgetlib.__file__).resolve().parent.parent)

# Prints `word`, then blocks until the parent sends a line; exits quietly if the parent closes stdin.
_STEP = textwrap.dedent(
    """
    import sys
    def step(word):
        print(word, flush=True)
        if not sys.stdin.readline():
            sys.exit(0)
    """
)

# 300 MB, touched one byte per 4 KiB page so that it is resident (calloc'd memory is not, until written).
# glibc serves a block this big with mmap and returns it with munmap on `del`, so RSS falls at once.
_ALLOC_300MB = _STEP + textwrap.dedent(
    """
    step("ready")
    buf = bytearray(300 * 10**6)
    buf[::4096] = b"\\x01" * len(range(0, len(buf), 4096))
    step("allocated")
    del buf
    step("freed")
    """
)


class Child:
    """A python child process spoken to in lines."""

    def __init__(self, code: str, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=REPO_ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.pid = self.proc.pid

    def expect(self, word: str) -> list[str]:
        """Read the child's next line, check its first word, return the rest."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line and line[0] == word, f"expected {word!r} from the child, got {line!r}"
        return line[1:]

    def send(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def growth(self, first: str, then: str) -> tuple[int, int, int]:
        """Read the child's memory at its step ``first``, let it run to step ``then``, read it again: the growth
        of (RSS, anonymous RSS, file-backed RSS) in bytes. Linux only: the split must be there."""
        self.expect(first)
        before = read_memory(self.pid)
        self.send()
        self.expect(then)
        after = read_memory(self.pid)
        assert None not in (before.rss_anon_bytes, before.rss_file_bytes, after.rss_anon_bytes, after.rss_file_bytes)
        return (after.rss_bytes - before.rss_bytes, after.rss_anon_bytes - before.rss_anon_bytes,
                after.rss_file_bytes - before.rss_file_bytes)

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def spawn():
    children: list[Child] = []

    def make(code: str, *args: str) -> Child:
        child = Child(code, *args)
        children.append(child)
        return child

    yield make
    for child in children:
        child.close()


def wait_for_sample_after(sampler: Sampler, t_s: float, timeout_s: float = 5.0) -> MemorySample:
    """Block until the sampler holds a reading taken after ``t_s``; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = sampler.last_sample
        if last is not None and last.t_s > t_s:
            return last
        assert time.monotonic() < deadline, "the sampler took no new sample in time"
        time.sleep(0.001)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------------------------------------------
# Real allocations, seen from outside
# ------------------------------------------------------------------------------------------------------------


def test_sampler_sees_300mb_allocation_and_release(spawn):
    child = spawn(_ALLOC_300MB)
    with Sampler(child.pid, interval_s=0.005) as sampler:
        child.expect("ready")
        baseline = wait_for_sample_after(sampler, now_s()).rss_bytes
        child.send()
        child.expect("allocated")
        high = wait_for_sample_after(sampler, now_s())
        child.send()
        child.expect("freed")
        low = wait_for_sample_after(sampler, now_s())
        peak = kernel_peak_bytes(child.pid)  # read while the child is still alive
    samples = sampler.samples

    assert high.rss_bytes - baseline >= 280 * MB
    assert high.rss_bytes - low.rss_bytes >= 250 * MB
    # The curve itself shows the rise and the fall, in order.
    i_high = max(range(len(samples)), key=lambda i: samples[i].rss_bytes)
    assert samples[i_high].rss_bytes - samples[0].rss_bytes >= 280 * MB
    assert samples[i_high].rss_bytes - samples[-1].rss_bytes >= 250 * MB
    assert sampler.sampled_peak_bytes == samples[i_high].rss_bytes
    if LINUX:
        assert peak is not None and peak >= baseline + 280 * MB
        assert max(s.hwm_bytes or 0 for s in samples) >= baseline + 280 * MB
        assert low.hwm_bytes is not None and low.hwm_bytes >= baseline + 280 * MB  # freed, yet remembered
    if peak is not None:
        # The kernel's RSS counters are per-CPU batched (approximate by up to a few hundred KiB on a small
        # machine), so a sample may read a hair above the recorded mark; never by anything a plot would show.
        assert all(peak >= s.rss_bytes - 2 * MB for s in samples)


@linux_only
def test_mmapped_file_counts_as_file_backed_not_anonymous(spawn, tmp_path):
    path = tmp_path / "weights.bin"
    chunk = b"\x5a" * (4 * MB)
    with open(path, "wb") as f:
        for _ in range(50):
            f.write(chunk)
    child = spawn(
        _STEP
        + textwrap.dedent(
            """
            import mmap
            f = open(sys.argv[1], "rb")
            step("ready")
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            touched = m[::4096]  # one byte per page: every page is faulted in, nothing is copied
            step("mapped")
            """
        ),
        str(path),
    )
    rss, anon, file = child.growth("ready", "mapped")
    assert file >= 190 * MB
    assert abs(anon) < 20 * MB
    assert rss >= 190 * MB


@linux_only
def test_shared_memory_counts_as_file_backed(spawn):
    # Shared pages (tmpfs files such as /dev/shm, torch's share_memory_, Python's mmap.mmap(-1, n), which is
    # MAP_SHARED) are RssShmem: not private heap, so they belong with the file-backed share.
    child = spawn(
        _STEP
        + textwrap.dedent(
            """
            import mmap
            step("ready")
            m = mmap.mmap(-1, 100 * 10**6)
            m[::4096] = b"\\x01" * len(range(0, len(m), 4096))
            step("written")
            """
        )
    )
    _, anon, file = child.growth("ready", "written")
    assert file >= 95 * MB
    assert abs(anon) < 10 * MB


@linux_only
def test_reset_kernel_peak_forgets_a_freed_spike(spawn):
    child = spawn(_ALLOC_300MB)
    child.expect("ready")
    child.send()
    child.expect("allocated")
    child.send()
    child.expect("freed")
    rss = read_memory(child.pid).rss_bytes
    peak = kernel_peak_bytes(child.pid)
    assert peak is not None and peak >= rss + 280 * MB

    assert reset_kernel_peak(child.pid) is True
    after = kernel_peak_bytes(child.pid)
    assert after is not None and after <= peak - 250 * MB
    assert after >= read_memory(child.pid).rss_bytes - 5 * MB


def test_gone_processes_raise_process_lookup_error():
    pid = dead_pid()
    with pytest.raises(ProcessLookupError):
        read_memory(pid)
    with pytest.raises(ProcessLookupError):
        Sampler(pid).start()
    if LINUX:
        with pytest.raises(ProcessLookupError):
            kernel_peak_bytes(pid)
        with pytest.raises(ProcessLookupError):
            reset_kernel_peak(pid)


def test_own_process_reading_is_consistent():
    sample = read_memory()
    assert sample.rss_bytes > 0
    if LINUX:
        assert sample.rss_anon_bytes is not None and sample.rss_file_bytes is not None
        # VmRSS = RssAnon + RssFile + RssShmem; each is rounded to KiB separately.
        assert abs(sample.rss_anon_bytes + sample.rss_file_bytes - sample.rss_bytes) <= 4 * 1024
        assert sample.hwm_bytes is not None and sample.hwm_bytes >= sample.rss_bytes
        assert reset_kernel_peak() is True


# ------------------------------------------------------------------------------------------------------------
# Timing: rate, drift, one clock across processes
# ------------------------------------------------------------------------------------------------------------


def test_sampling_runs_at_100_hz_by_default():
    # Judged on the sampler's own timestamps, not on how many samples fit in a wall-clock second: on a loaded
    # machine the thread may miss slots (it skips them, by design), which lowers a count but not the typical
    # gap between two readings, and can never add readings beyond one per slot.
    seen: list[MemorySample] = []
    got_enough = threading.Event()

    def on_sample(sample: MemorySample) -> None:
        seen.append(sample)
        if len(seen) >= 50:
            got_enough.set()

    with Sampler(on_sample=on_sample) as sampler:  # default: 100 Hz
        assert got_enough.wait(timeout=30), f"only {len(seen)} samples in 30 s"
    times = [s.t_s for s in sampler.samples]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert times == sorted(times)
    assert sampler.interval_s == 0.01
    assert 0.005 <= statistics.median(gaps) <= 0.015, f"median gap {statistics.median(gaps) * 1e3:.1f} ms"
    assert len(times) <= (times[-1] - times[0]) / sampler.interval_s + 2, "more readings than 100 Hz slots"


def _samples_on_a_virtual_clock(
    monkeypatch: pytest.MonkeyPatch, *, interval_s: float, cost_s: float, duration_s: float, late_s: dict[int, float]
) -> list[float]:
    """Run the sampler's own loop (``Sampler._run``) on a clock the test drives, in this thread.

    Each reading costs ``cost_s`` (charged in ``on_sample``); the loop's sleep (its stop flag's ``wait``) lasts
    exactly what it asks, plus ``late_s[k]`` on the k-th wake-up (a starved thread). The schedule is then a
    pure function of these numbers: no scheduler, no flakes.
    """
    clock = [0.0]
    monkeypatch.setattr(memory_module, "now_s", lambda: clock[0])
    wakes = [0]

    class Probe:
        def read(self) -> MemorySample:
            return MemorySample(clock[0], 1, None, None, None)

        def close(self) -> None:
            pass

    class StopFlag:
        def wait(self, timeout_s: float) -> bool:
            clock[0] += max(timeout_s, 0.0) + late_s.get(wakes[0], 0.0)
            wakes[0] += 1
            return clock[0] >= duration_s

        def set(self) -> None:
            pass

        def is_set(self) -> bool:
            return False

    def on_sample(sample: MemorySample) -> None:
        clock[0] += cost_s

    sampler = Sampler(interval_s=interval_s, on_sample=on_sample)
    sampler._stop_flag = StopFlag()  # type: ignore[assignment]
    sampler._run(Probe())  # type: ignore[arg-type]
    assert sampler.error is None
    return [s.t_s for s in sampler.samples]


def test_schedule_does_not_drift_with_the_cost_of_each_sample(monkeypatch):
    # Each reading costs half the interval: sleeping `interval` after the work would give 67 readings in a
    # second; absolute deadlines give one per 10 ms slot, each on its slot.
    times = _samples_on_a_virtual_clock(monkeypatch, interval_s=0.01, cost_s=0.005, duration_s=0.995, late_s={})
    assert len(times) == 100, f"{len(times)} readings in 1 s at 100 Hz: the loop drifts"
    assert times == pytest.approx([k * 0.01 for k in range(100)], abs=1e-9)


def test_a_late_wake_up_skips_slots_instead_of_bunching(monkeypatch):
    # The sleep after the reading at 0.20 s ends 35 ms late (a starved thread): that reading is taken late
    # (0.245 s), the slots 0.22-0.24 are skipped rather than caught up in a burst, and the next reading is back
    # on the grid at 0.25 s.
    times = _samples_on_a_virtual_clock(monkeypatch, interval_s=0.01, cost_s=0.002, duration_s=0.995,
                                        late_s={20: 0.035})
    expected = [k * 0.01 for k in range(21)] + [0.245] + [k * 0.01 for k in range(25, 100)]
    assert times == pytest.approx(expected, abs=1e-9)


def test_events_from_a_child_sort_between_the_parents_samples(spawn):
    child = spawn(
        _STEP
        + textwrap.dedent(
            """
            from widgetlib.measure.memory import now_s
            step("ready")
            print("stamped", repr(now_s()), flush=True)
            step("done")
            """
        )
    )
    with Sampler(child.pid, interval_s=0.005) as sampler:
        child.expect("ready")
        before = wait_for_sample_after(sampler, now_s())
        mark_before = sampler.event("asked the child", kind="phase")
        child.send()
        (stamp,) = child.expect("stamped")
        mark_after = sampler.event("child answered", kind="phase")
        after = wait_for_sample_after(sampler, now_s())
        child.expect("done")
    child_t_s = float(stamp)
    assert before.t_s < mark_before.t_s < child_t_s < mark_after.t_s < after.t_s

    timeline = Timeline.from_absolute(
        before.t_s, sampler.samples, [Event(child_t_s, "child stamp", "shard_read"), *sampler.events]
    )
    assert [e.label for e in timeline.events] == ["asked the child", "child stamp", "child answered"]
    child_rel_s = timeline.events[1].t_s
    assert any(s.t_s < child_rel_s for s in timeline.samples)
    assert any(s.t_s > child_rel_s for s in timeline.samples)


# ------------------------------------------------------------------------------------------------------------
# Lifecycle and callbacks
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reaped", [False, True], ids=["zombie", "reaped"])
def test_sampler_stops_by_itself_when_the_process_exits(spawn, reaped):
    child = spawn("import sys; sys.stdin.readline()")
    sampler = Sampler(child.pid, interval_s=0.005).start()
    assert sampler.running and not sampler.process_gone
    assert child.proc.stdin is not None
    child.proc.stdin.close()  # the child exits; unless reaped, it lingers as a zombie
    if reaped:
        child.proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while sampler.running and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not sampler.running
    assert sampler.process_gone
    sampler.stop()
    sampler.stop()  # idempotent
    assert sampler.error is None
    assert len(sampler.samples) >= 1


def test_on_sample_exception_surfaces_from_stop():
    calls = []

    def on_sample(sample: MemorySample) -> None:
        calls.append(sample)
        if len(calls) == 3:
            raise ValueError("watchdog bug")

    sampler = Sampler(interval_s=0.002, on_sample=on_sample).start()
    deadline = time.monotonic() + 5
    while sampler.sample_count < 8 and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(ValueError, match="watchdog bug"):
        sampler.stop()
    sampler.stop()  # raised once; a second stop is quiet
    assert len(calls) == 3  # the broken callback is not called again ...
    assert sampler.sample_count >= 8  # ... but sampling went on
    assert isinstance(sampler.error, ValueError)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are Python 3.11+")
def test_body_exception_wins_and_carries_the_callback_error():
    def on_sample(sample: MemorySample) -> None:
        raise ValueError("watchdog bug")

    with pytest.raises(KeyError) as info:
        with Sampler(interval_s=0.002, on_sample=on_sample):
            time.sleep(0.01)
            raise KeyError("body")
    assert any("watchdog bug" in note for note in info.value.__notes__)


def test_stop_from_inside_on_sample_does_not_deadlock():
    holder: list[Sampler] = []

    def on_sample(sample: MemorySample) -> None:
        holder[0].stop()

    sampler = Sampler(interval_s=0.002, on_sample=on_sample)
    holder.append(sampler)
    sampler.start()
    deadline = time.monotonic() + 5
    while sampler.running and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not sampler.running
    assert sampler.sample_count == 1
    sampler.stop()


def test_start_twice_and_bad_options_are_refused():
    with Sampler() as sampler:
        with pytest.raises(RuntimeError):
            sampler.start()
    with pytest.raises(OptionError):
        Sampler(interval_s=0)
    with pytest.raises(OptionError):
        Sampler(uss_interval_s=-1.0)
    with pytest.raises(OptionError):
        Sampler(max_samples=1)


def test_uss_is_read_at_most_every_uss_interval():
    # Wait for USS to arrive (a reading can take tens of ms on a busy machine) rather than for a fixed time;
    # the property is the upper bound, counted against the sampler's own timestamps: no more USS readings than
    # uss_interval_s slots in the span the samples cover (+2 for the slots at either end).
    with Sampler(interval_s=0.005, uss_interval_s=0.05) as sampler:
        deadline = time.monotonic() + 30
        while sum(s.uss_bytes is not None for s in sampler.samples) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    samples = sampler.samples
    with_uss = [s for s in samples if s.uss_bytes is not None]
    span_s = samples[-1].t_s - samples[0].t_s
    assert len(with_uss) >= 4, f"only {len(with_uss)} USS readings in {span_s:.1f} s"
    assert len(with_uss) <= span_s / 0.05 + 2, f"{len(with_uss)} USS readings in {span_s:.2f} s"
    assert all(0 < s.uss_bytes <= s.rss_bytes for s in with_uss)


def test_max_samples_bounds_memory_and_keeps_the_peak():
    sampler = Sampler(max_samples=16)
    rss = [100 + i for i in range(1000)]
    rss[377] = 10**9  # a one-reading spike in the middle
    for i, r in enumerate(rss):
        # Fed directly: the decimation is deterministic, a real thread would only make this slower.
        sampler._keep(MemorySample(float(i), r, None, None, None, uss_bytes=42 if i == 500 else None))
    samples = sampler.samples
    assert [s.uss_bytes for s in samples].count(42) == 1  # a rare USS reading is not decimated away
    assert len(samples) <= 16
    times = [s.t_s for s in samples]
    assert times == sorted(times)
    assert times[0] <= 64 and times[-1] >= 1000 - 64  # the whole run is still covered
    assert 10**9 in [s.rss_bytes for s in samples]
    assert sampler.sampled_peak_bytes == 10**9
    assert sampler.sample_count == 1000
    assert sampler.last_sample == MemorySample(999.0, 1099, None, None, None)


# ------------------------------------------------------------------------------------------------------------
# Cost
# ------------------------------------------------------------------------------------------------------------


def test_sampling_at_100_hz_costs_little_cpu():
    # The sampler thread's own CPU clock (time.thread_time, read in on_sample, which runs in that thread) over a
    # fixed number of readings: what one reading costs, whatever else the machine does. Under 1 ms per
    # reading is under 10 % of one core at 100 Hz. (Wall-clock shares of the process's CPU time counted other
    # threads and the machine's load.)
    n_ticks = 200
    cpu_s: list[float] = []
    done = threading.Event()

    def on_sample(sample: MemorySample) -> None:
        cpu_s.append(time.thread_time())
        if len(cpu_s) > n_ticks:
            done.set()

    with Sampler(interval_s=0.01, on_sample=on_sample):
        assert done.wait(timeout=60), f"only {len(cpu_s)} readings in 60 s"
    per_tick_s = (cpu_s[n_ticks] - cpu_s[0]) / n_ticks
    assert per_tick_s < 0.10 * 0.01, f"one reading costs {per_tick_s * 1e3:.2f} ms of CPU: over 10 % of a core"


def test_module_imports_no_heavy_libraries():
    code = (
        "import sys, widgetlib.measure.memory\n"
        "heavy = [m for m in ('torch', 'transformers', 'ipywidgets', 'plotly') if m in sys.modules]\n"
        "print(heavy)"
    )
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------------------
# Timeline
# ------------------------------------------------------------------------------------------------------------


def _timeline() -> Timeline:
    return Timeline(
        t0_s=12345.678901234,
        samples=[
            MemorySample(0.0, 500_000_000, 300_000_000, 200_000_000, 510_000_000),
            MemorySample(0.1 + 0.2, 1_300_000_000, 400_000_000, 900_000_000, 1_400_000_000, 350_000_000),
            MemorySample(0.7, 600_000_000, None, None, None),
        ],
        events=[Event(0.05, "shard 1/2 read", "shard_read"), Event(0.5, "done ✓", "phase")],
        baseline_rss_bytes=500_000_000,
        kernel_peak_bytes=1_400_000_000,
        gpu_samples=[(0.1, 0), (0.6, 2_000_000_000)],
    )


def test_timeline_json_round_trip_is_exact():
    timeline = _timeline()
    text = timeline.to_json()
    assert Timeline.from_json(text) == timeline
    assert Timeline.from_dict(json.loads(text)) == timeline
    empty = Timeline(0.0, [], [])
    assert Timeline.from_json(empty.to_json()) == empty


def test_timeline_dict_is_column_oriented():
    d = _timeline().to_dict()
    assert set(d) == {"t0_s", "samples", "events", "baseline_rss_bytes", "kernel_peak_bytes", "gpu_samples"}
    assert set(d["samples"]) == {
        "t_s",
        "rss_bytes",
        "rss_anon_bytes",
        "rss_file_bytes",
        "hwm_bytes",
        "uss_bytes",
        "rss_shmem_bytes",
    }
    assert d["samples"]["rss_anon_bytes"] == [300_000_000, 400_000_000, None]
    assert d["samples"]["uss_bytes"] == [None, 350_000_000, None]
    assert d["gpu_samples"] == {"t_s": [0.1, 0.6], "bytes": [0, 2_000_000_000]}
    assert d["events"][0] == {"t_s": 0.05, "label": "shard 1/2 read", "kind": "shard_read"}


def test_from_absolute_shifts_every_stamp():
    t0_s = 1000.0
    timeline = Timeline.from_absolute(
        t0_s,
        [MemorySample(1000.25, 7, 4, 3, 8), MemorySample(1000.5, 9, 6, 3, 9)],
        [Event(1001.0, "late"), Event(1000.125, "early", "phase")],
        baseline_rss_bytes=7,
        kernel_peak_bytes=9,
        gpu_samples=[(1000.75, 5)],
    )
    assert timeline.t0_s == t0_s
    assert [s.t_s for s in timeline.samples] == [0.25, 0.5]
    assert [(e.t_s, e.label, e.kind) for e in timeline.events] == [
        (0.125, "early", "phase"),
        (1.0, "late", "info"),
    ]
    assert timeline.gpu_samples == [(0.75, 5)]
    assert timeline.baseline_rss_bytes == 7


@pytest.mark.parametrize(
    ("kernel_peak", "rss_values", "expected"),
    [
        (1_000, [500, 900], 1_000),  # the kernel saw a spike the samples missed
        (800, [500, 900], 900),  # a sample above the kernel mark (e.g. the mark was reset mid-run)
        (None, [500, 900], 900),
        (700, [], 700),
        (None, [], None),
    ],
)
def test_peak_bytes_is_max_of_kernel_and_sampled(kernel_peak, rss_values, expected):
    samples = [MemorySample(0.01 * i, rss, None, None, None) for i, rss in enumerate(rss_values)]
    timeline = Timeline(0.0, samples, [], kernel_peak_bytes=kernel_peak)
    assert timeline.sampled_peak_bytes == (max(rss_values) if rss_values else None)
    assert timeline.peak_bytes == expected
