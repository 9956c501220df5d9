"""A smaller machine that behaves like one, runs that start from a fork, the job schema, the portable probe.

The budget tests choose their budget from the figures of unbudgeted runs of the same checkpoint: the baseline
plus a room above what manual_shards adds that the kernel cannot reclaim (its anonymous memory), below what it
adds in all, and below what normal loading must hold (two anonymous copies). A real limit then lets the
file-backed loads finish, paying re-reads from disk, and kills normal loading; the watchdog, forced, does the
same by counting the growth of anonymous memory only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

from widgetlib import make_checkpoint, run, start
from widgetlib.core.options import LoadOptions
from widgetlib.measure import limits, processes
from widgetlib.measure.memory import non_reclaimable_bytes
from widgetlib.measure.protocol import PROTOCOL_VERSION, decode_job, encode_job
from widgetlib.measure.report import Report

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc figures")


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return make_checkpoint(size="100MB", shards=4)


def _anon_growth(report: Report) -> int:
    """How much non-reclaimable memory (RssAnon + RssShmem) the load added above the load start."""
    after = [s for s in report.timeline.samples if s.t_s >= 0]
    peak = max(non_reclaimable_bytes(s) for s in after)
    assert report.non_reclaimable_peak_bytes == peak  # the Report field a lesson picks its budget from
    return peak - non_reclaimable_bytes(after[0])


@pytest.fixture(scope="module")
def budget(checkpoint: Path) -> int:
    """Baseline plus a room between manual_shards' non-reclaimable growth and its total growth, and below
    normal's non-reclaimable growth (two copies)."""
    manual = run(checkpoint, "manual_shards", forwards=1)
    normal = run(checkpoint, "normal", forwards=1)
    assert manual.ok and normal.ok, (manual.error, normal.error)
    room = manual.checkpoint_bytes // 2
    # The premises that make the test mean something (checked, not assumed):
    assert _anon_growth(manual) < room < manual.peak_above_baseline_bytes
    assert _anon_growth(normal) > room + manual.checkpoint_bytes // 4
    return manual.baseline_rss_bytes + room


def _leftover_cgroups() -> list[str]:
    """This process's cgroups still there: the ones the runner makes next to it, and (systemd) the scopes
    named after it in the user manager's tree."""
    found = []
    mine = f"offload-lab-{os.getpid()}-"
    for parent in (limits._v1_parent(), limits._v2_parent()):
        if parent is not None:
            found += [p.name for p in parent.iterdir() if p.name.startswith(mine)]
    manager = Path(f"/sys/fs/cgroup/user.slice/user-{os.getuid()}.slice/user@{os.getuid()}.service")
    if manager.is_dir():
        found += [p.name for p in manager.rglob(f"{mine}*") if p.is_dir()]
    return found


def _real_limit(budget: int) -> bool:
    """A kernel limit here: a cgroup the runner makes, or a systemd scope (the Report says "cgroup" for both)."""
    return limits.choose_mode(budget) in ("cgroup", "systemd")


@linux_only
def test_real_limit_lets_file_backed_loads_finish_and_kills_normal(checkpoint: Path, budget: int) -> None:
    if not _real_limit(budget):
        pytest.skip(f"no memory cgroup can be made on this machine: {limits.mode_reason()}")
    for strategy in ("manual_shards", "low_cpu_mem_usage"):
        report = run(checkpoint, strategy, budget=budget, cold_cache=True, forwards=2)
        assert report.budget_mode == "cgroup"
        assert report.outcome == "ok", (strategy, report.error)
        assert report.limit_events["oom_kill"] == 0
        # The kernel charged the child and reclaimed: its pages came from disk, some of them more than once.
        assert report.major_faults > 0, strategy
        assert report.limit_events["max_usage_bytes"] <= report.limit_events["limit_bytes"]
    stopped = run(checkpoint, "normal", budget=budget, cold_cache=True)
    assert stopped.budget_mode == "cgroup"
    assert stopped.outcome == "stopped_by_budget", stopped.error
    assert stopped.budget_stop["by"] == "kernel"
    assert stopped.limit_events["oom_kill"] >= 1
    assert "kernel killed" in stopped.error
    assert [e.kind for e in stopped.timeline.events].count("budget_stop") == 1
    assert _leftover_cgroups() == []


@linux_only
def test_watchdog_counts_only_what_cannot_be_reclaimed(checkpoint: Path, budget: int, monkeypatch) -> None:
    monkeypatch.setenv("OFFLOAD_LAB_BUDGET_MODE", "watchdog")
    manual = run(checkpoint, "manual_shards", budget=budget, forwards=1)
    assert manual.budget_mode == "watchdog"
    assert manual.outcome == "ok", manual.error
    assert manual.peak_rss_bytes > budget  # its file-backed pages went over; they are not what kills
    assert "RssAnon" in manual.details["budget_counts"]
    stopped = run(checkpoint, "normal", budget=budget)
    assert stopped.outcome == "stopped_by_budget"
    assert stopped.budget_stop["by"] == "watchdog"
    assert stopped.budget_stop["counted_bytes"] > budget
    assert stopped.limit_events is None
    assert "budget_stop" in [e.kind for e in stopped.timeline.events]


@linux_only
def test_cancel_under_a_limit_removes_the_cgroup(checkpoint: Path, budget: int) -> None:
    import threading

    if not _real_limit(budget):
        pytest.skip(f"no memory cgroup can be made on this machine: {limits.mode_reason()}")
    sampled = threading.Event()
    # forwards=1000: seconds of forwards, so the cancel lands during the run however fast the load is
    handle = start(checkpoint, "low_cpu_mem_usage", budget=budget, forwards=1000, on_sample=lambda s: sampled.set())
    assert sampled.wait(60)
    assert len(_leftover_cgroups()) == 1
    handle.cancel()
    assert handle.wait(30).outcome == "cancelled"
    assert _leftover_cgroups() == []


@linux_only
def test_a_crashed_runners_cgroup_is_removed_by_the_next_run() -> None:
    """A runner killed mid-run cannot remove its child's cgroup; the next MemoryLimit made there does."""
    import subprocess

    parent = limits._v2_parent() or limits._v1_parent()
    if parent is None:
        pytest.skip("the runner makes no cgroup of its own here (none is writable)")
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now names no process: the runner that made the folder is dead
    stale = parent / f"offload-lab-{gone.pid}-deadbeef"
    stale.mkdir()
    mine = parent / f"offload-lab-{os.getpid()}-cafef00d"  # this process's own folder: never swept
    mine.mkdir()
    limit = limits.MemoryLimit.create(64 * 2**20)
    try:
        assert not stale.exists()
        assert mine.exists() and limit.path.exists()
    finally:
        limit.remove()
        for path in (stale, mine):
            if path.exists():
                path.rmdir()


def test_runs_fork_from_the_zygote_and_start_at_the_load(small_checkpoint: Path) -> None:
    if processes.start_method() != "fork":
        pytest.skip("this OS has no fork")
    streamed = []
    parents = []
    box = {}

    def on_sample(sample) -> None:
        streamed.append(sample)
        if not parents and "handle" in box:
            parents.append(psutil.Process(box["handle"].pid).ppid())

    box["handle"] = start(small_checkpoint, "manual_shards", on_sample=on_sample, forwards=1)
    report = box["handle"].wait(300)
    assert report.outcome == "ok", report.error
    # A fork of the pre-imported zygote, not a fresh interpreter: a board of four runs pays one import.
    assert parents == [processes._zygote.process.pid]
    assert report.options["start_method"] == "fork"
    assert 0 < report.startup_s
    # Time zero is the load start: nothing streamed before it, the ready event at 0.
    assert streamed and min(s.t_s for s in streamed) >= 0
    ready = [e for e in report.timeline.events if e.kind == "ready"]
    assert ready[0].t_s == 0 and ready[0].label.startswith("load starts: baseline")


_KERNEL = """
import json, sys, time
import psutil
from widgetlib.measure import processes
from widgetlib.measure.runner import run
first = run(sys.argv[1], "manual_shards", forwards=1)
zygote = processes._zygote.process.pid
imported = ["torch" in sys.modules, "transformers" in sys.modules]
time.sleep(float(sys.argv[2]))  # idle: no run in progress
ended = processes._zygote is None and not psutil.pid_exists(zygote)
second = run(sys.argv[1], "manual_shards", forwards=1)
print(json.dumps({"outcomes": [first.outcome, second.outcome], "imported": imported, "ended": ended,
                  "fresh": processes._zygote.process.pid != zygote}))
"""


def test_a_kernel_that_runs_loads_holds_no_torch_and_an_idle_zygote_ends(small_checkpoint: Path) -> None:
    """What a lesson's kernel keeps: runs (their architecture check included) leave torch and transformers out of
    it, and the zygote that holds them ends after OFFLOAD_LAB_IDLE_EXIT_S without a run; the next run starts a
    fresh one."""
    if processes.start_method() != "fork":
        pytest.skip("this OS has no fork")
    import json
    import subprocess
    import sys

    env = {**os.environ, processes.IDLE_EXIT_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", _KERNEL, str(small_checkpoint), "3"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"outcomes": ["ok", "ok"], "imported": [False, False], "ended": True, "fresh": True}


def test_the_idle_clock_ends_the_processes_only_when_no_run_is_in_progress(monkeypatch) -> None:
    import threading

    ended = threading.Event()
    monkeypatch.setattr(processes, "shutdown", ended.set)
    monkeypatch.setenv(processes.IDLE_EXIT_ENV, "0.2")
    clock = processes._IdleClock()
    clock.run_started()
    clock.idle()  # a process started while a run is in progress: not counted as idle
    assert not ended.wait(0.5)
    clock.run_started()  # a second, queued run
    clock.run_ended()
    assert not ended.wait(0.5)  # one is still in progress
    clock.run_ended()
    clock.run_started()  # the next run comes before the time is up
    assert not ended.wait(0.5)
    clock.run_ended()
    assert ended.wait(5)
    ended.clear()
    monkeypatch.setenv(processes.IDLE_EXIT_ENV, "0")  # never
    clock.idle()
    assert not ended.wait(0.5)


def test_spawn_fallback_still_measures_and_leaves_nothing(small_checkpoint: Path, monkeypatch, fresh_tmpdir) -> None:
    monkeypatch.setenv("OFFLOAD_LAB_START", "spawn")
    monkeypatch.setenv("OFFLOAD_LAB_WARM_CHILD", "0")
    # As in a learner's kernel: torch's compile cache left to its default (this process set it when it imported).
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    report = run(small_checkpoint, "low_cpu_mem_usage", forwards=1)
    assert report.outcome == "ok", report.error
    assert report.options["start_method"] == "spawn"
    # A spawned child imports torch itself: its start-up samples are kept, before time zero.
    assert any(s.t_s < 0 for s in report.timeline.samples)
    # Its own folder (TMPDIR and torch's compile cache while it imported) went with it, and the run's folder too.
    assert os.listdir(fresh_tmpdir) == []


def test_forward_tokens_and_forwards_reach_the_child(small_checkpoint: Path) -> None:
    four = run(small_checkpoint, "manual_shards", forward_tokens=4, forwards=3)
    sixteen = run(small_checkpoint, "manual_shards", forward_tokens=16, forwards=1)
    assert four.logits_sha256 != sixteen.logits_sha256  # different inputs really ran
    assert len(four.details["forward_times_s"]) == 3 and four.steady_forward_s > 0
    assert sixteen.steady_forward_s is None
    assert four.options["forward_tokens"] == 4


def test_a_stale_zygote_or_job_is_never_used() -> None:
    job = encode_job("/ck", "normal", LoadOptions(forward_tokens=3), forwards=2)
    assert decode_job(job)[1].forward_tokens == 3
    with pytest.raises(Exception, match="protocol"):
        decode_job({**job, "protocol": PROTOCOL_VERSION - 1})
    with pytest.raises(Exception, match="unknown options"):
        decode_job({**job, "options": {**job["options"], "offload_dir": "/x"}})
    zygote = processes._Zygote.__new__(processes._Zygote)  # a zygote object without its process
    zygote.process = type("P", (), {"poll": lambda self: None})()
    zygote.fingerprint = processes.code_fingerprint()
    zygote.greeting = {"protocol": PROTOCOL_VERSION, "fingerprint": zygote.fingerprint}
    assert zygote.current
    zygote.greeting = {"protocol": PROTOCOL_VERSION, "fingerprint": "from-old-code"}
    assert not zygote.current
    zygote.greeting = {"protocol": PROTOCOL_VERSION - 1, "fingerprint": zygote.fingerprint}
    assert not zygote.current


def test_portable_probe_never_crashes_and_names_its_peak(small_checkpoint: Path, monkeypatch) -> None:
    monkeypatch.setenv("OFFLOAD_LAB_PROBE", "portable")
    monkeypatch.setenv("OFFLOAD_LAB_BUDGET_MODE", "watchdog")
    report = run(small_checkpoint, "manual_shards", forwards=1, budget="50GB")
    assert report.outcome == "ok", report.error
    assert all(s.rss_anon_bytes is None and s.hwm_bytes is None for s in report.timeline.samples)
    assert report.non_reclaimable_peak_bytes is None
    assert report.peak_source in ("ru_maxrss", "peak_wset", "sampled")
    assert report.peak_rss_bytes >= report.sampled_peak_rss_bytes
    assert "RSS (this platform" in report.details["budget_counts"]
    Report.from_json(report.to_json()).summary()
    monkeypatch.delenv("OFFLOAD_LAB_PROBE")
    native = run(small_checkpoint, "manual_shards", forwards=1)
    if os.path.exists("/proc/self/status"):
        assert native.peak_source in ("VmHWM", "sampled")


def test_cold_cache_drops_pages(small_checkpoint: Path) -> None:
    done = limits.cold_cache([small_checkpoint])
    if "note" in done:
        pytest.skip(done["note"])
    assert done["files"] >= 3 and done["bytes"] > 20_000_000
    report = run(small_checkpoint, "low_cpu_mem_usage", cold_cache=True, forwards=1)
    assert report.options["cold_cache"] is True and report.details["cold_cache"]["files"] >= 3
    # The pages dropped were read again from the disk by the load; right after, the page cache has them.
    warm = run(small_checkpoint, "low_cpu_mem_usage", forwards=1)
    if not sys.platform.startswith("linux"):
        assert report.disk_read_bytes is None and warm.disk_read_bytes is None
        return
    assert report.disk_read_bytes >= 0.9 * report.checkpoint_bytes, (report.disk_read_bytes, report.checkpoint_bytes)
    assert warm.disk_read_bytes < 0.25 * report.disk_read_bytes, (warm.disk_read_bytes, report.disk_read_bytes)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/io read_bytes is Linux's")
def test_cold_forward_makes_the_forwards_read_the_offloaded_weights_from_disk(small_checkpoint: Path) -> None:
    """The load reads every weight (offloaded ones included), so its pages are cached when the forwards run;
    dropped between the two, the first forward reads what is offloaded from the disk."""
    report = run(small_checkpoint, "offload_folder", max_memory="4MB", cold_forward=True, forwards=2)
    on_disk = report.bytes_on("disk")
    assert report.ok and on_disk > 0.5 * report.checkpoint_bytes, report.device_map
    if "note" in report.details["cold_forward"]:
        pytest.skip(report.details["cold_forward"]["note"])
    assert report.details["cold_forward"]["files"] >= 3
    assert report.disk_read_forward_bytes >= 0.9 * on_disk, (report.disk_read_forward_bytes, on_disk)


def _fake_busctl(folder: Path, body: str) -> Path:
    """A ``busctl`` on PATH that logs its arguments to ``folder/calls`` and then runs ``body`` (sh)."""
    script = folder / "busctl"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{folder}/calls"\n{body}\n')
    script.chmod(0o755)
    return folder / "calls"


def test_a_scope_is_asked_of_systemd_and_each_failure_says_why(tmp_path: Path, monkeypatch) -> None:
    """What the systemd path sends (checked against org.freedesktop.systemd1(5)'s signatures in the VM) and the
    one sentence each failure gives, which the runner puts in its watchdog note. No systemd is needed here."""
    call = limits.scope_start_command("offload-lab-1-ab.scope", 42, 2**30)
    signature, name, mode, count = call[7:11]
    properties = call[11:-1]  # the last item is the empty array of auxiliary units
    assert (call[6], signature, name, mode, call[-1]) == ("StartTransientUnit", "ssa(sv)a(sa(sv))",
                                                          "offload-lab-1-ab.scope", "fail", "0")
    assert properties[:4] == ["PIDs", "au", "1", "42"]  # an array of one pid: its length, then the pid
    rest = properties[4:]
    assert int(count) == 1 + len(rest) // 3
    assert dict(zip(rest[0::3], zip(rest[1::3], rest[2::3], strict=True), strict=True)) == {
        "MemoryMax": ("t", str(2**30)), "MemorySwapMax": ("t", "0"), "CollectMode": ("s", "inactive-or-failed")}
    assert limits.v2_path("0::/user.slice/a.scope\n") == "/user.slice/a.scope"
    assert limits.v2_path("4:memory:/x\n") is None  # cgroup v1 only

    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(OSError, match="^busctl is not installed"):
        limits.MemoryLimit.start_scope(os.getpid(), 2**30)
    assert limits._systemd_probe() == (False, "busctl is not installed (it ships with systemd), so no systemd "
                                              "scope can be made")

    monkeypatch.setenv("PATH", str(tmp_path))
    calls = _fake_busctl(tmp_path, "echo 'Failed to connect to bus: No medium found' >&2; exit 1")
    with pytest.raises(OSError) as refused:
        limits.MemoryLimit.start_scope(os.getpid(), 2**30)
    assert str(refused.value) == ("systemd's user manager refused StartTransientUnit (Failed to connect to bus: "
                                  "No medium found)")
    calls.unlink()
    _fake_busctl(tmp_path, "exit 0")  # accepted, but this process is never moved
    with pytest.raises(OSError, match=r"accepted offload-lab-\d+-\w+\.scope but had not moved process \d+ into it"):
        limits.MemoryLimit.start_scope(os.getpid(), 2**30, wait_s=0.1)
    started, lifted = calls.read_text().splitlines()
    assert "StartTransientUnit" in started and f"PIDs au 1 {os.getpid()} MemoryMax t {2**30} " in started
    # A move that lands after the runner gave up must not limit a run the watchdog watches: MemoryMax=infinity.
    assert lifted.endswith(f"SetUnitProperties sba(sv) {started.split()[7]} true 1 MemoryMax t {2**64 - 1}")


def test_a_scopes_limit_at_the_load_start_is_its_charge_plus_the_room(tmp_path: Path, monkeypatch) -> None:
    """The room is the budget minus the baseline in both modes; a scope, which systemd limits and which must not
    go below what it holds, gets it on top of its charge. The fake busctl writes memory.max as systemd would."""
    from types import SimpleNamespace

    from widgetlib.measure.runner import RunHandle

    scope = tmp_path / "offload-lab-1-ab.scope"
    scope.mkdir()
    (scope / "memory.current").write_text(f"{3 * 2**20}\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    calls = _fake_busctl(tmp_path, f'for v; do last=$v; done; echo "$last" > "{scope}/memory.max"')
    limit = limits.MemoryLimit(scope, 2, 400 * 2**20, scope=scope.name)
    handle = SimpleNamespace(_budget_bytes=500 * 2**20, _limit=limit, _watch_offset=0, _budget_stop=None)
    handle._room = lambda held: RunHandle._room(handle, held)
    child = SimpleNamespace(sent=[])
    child.send = child.sent.append
    RunHandle._set_room(handle, child, {"rss_bytes": 420 * 2**20, "non_reclaimable_bytes": 300 * 2**20})
    assert child.sent == ["go"]
    assert limit.limit_bytes == (3 + 500 - 420) * 2**20 == int((scope / "memory.max").read_text())
    assert calls.read_text().split()[5:8] == ["SetUnitProperties", "sba(sv)", scope.name]


def test_a_refused_scope_falls_back_to_the_watchdog_and_says_why(small_checkpoint: Path, tmp_path: Path,
                                                                 monkeypatch) -> None:
    """A learner whose systemd stops answering between the probe and a run still gets a budgeted run: the
    watchdog's, with systemd's own words in the Report."""
    monkeypatch.setattr(limits, "_mode_cache", "systemd")  # as the probe found it on a systemd laptop
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    _fake_busctl(tmp_path, "echo 'Failed to connect to bus: No medium found' >&2; exit 1")
    report = run(small_checkpoint, "manual_shards", budget="4GB", forwards=1)
    assert report.ok and report.budget_mode == "watchdog" and report.limit_events is None
    assert report.options["budget_note"] == (
        "no memory cgroup could be made (systemd's user manager refused StartTransientUnit (Failed to connect to "
        "bus: No medium found)); the watchdog was used")
