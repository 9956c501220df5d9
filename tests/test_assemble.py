"""A run's Report is assembled from what the runner saw by a pure function: each ending (a result, an error, a
kernel OOM kill, a systemd scope's SIGKILL, the watchdog, a cancel, a child that never said ready) is tested
here without starting a process."""

from __future__ import annotations

import copy

from factories import MB, make_record, sample

from widgetlib.measure.assemble import assemble_report, base_report
from widgetlib.measure.memory import Event


def test_a_finished_run_keeps_the_load_and_drops_the_exit() -> None:
    record = make_record(
        "manual_shards", result={"load_s": 1.5, "forward_s": 0.25, "forward_times_s": [0.25, 0.2],
                                 "kernel_peak_bytes": 520 * MB, "peak_source": "VmHWM", "major_faults": 3,
                                 "device_map": {"cpu": {"tensors": 9, "bytes": 100 * MB}}},
        predicted_above_baseline_bytes=105 * MB, samples=[
            sample(9.9, 390 * MB), sample(10.5, 480 * MB, split=0.5), sample(11.0, 510 * MB, split=0.5),
            sample(12.4, 100 * MB)],  # after the result: the process exiting
        events=[Event(10.0, "load starts", "ready"), Event(11.5, "shard 1/1 read", "shard_read")],
        offload_written=(0, 0), callback_error="ValueError: a bug in a plot",
    )
    before = copy.deepcopy(record)
    report = assemble_report(record)
    assert record == before, "assembling reads the record, never changes it"
    assert assemble_report(record) == report, "the same facts, the same Report"
    assert (report.outcome, report.error, report.error_kind) == ("ok", None, None)
    assert (report.baseline_rss_bytes, report.peak_rss_bytes, report.peak_source) == (400 * MB, 520 * MB, "VmHWM")
    assert report.peak_above_baseline_bytes == 120 * MB and report.predicted_above_baseline_bytes == 105 * MB
    assert report.startup_s == 0.5 and report.load_s == 1.5 and report.major_faults == 3
    assert [round(s.t_s, 3) for s in report.timeline.samples] == [-0.1, 0.5, 1.0]  # from the load start
    assert [(e.t_s, e.kind) for e in report.timeline.events] == [(0.0, "ready"), (1.5, "shard_read")]
    assert report.non_reclaimable_peak_bytes == 255 * MB  # the highest RssAnon (+ RssShmem) after ready
    assert report.details == {"forward_times_s": [0.25, 0.2], "callback_error": "ValueError: a bug in a plot"}
    assert report.bytes_on("cpu") == 100 * MB and not report.stopped_by_budget and report.budget_stop is None


def test_an_error_the_child_reported_is_the_reports_sentence() -> None:
    record = make_record(messages={"error": {"type": "error", "t_s": 11.0, "message": "The load failed with X: y",
                                             "kind": "load_failed", "traceback": "Traceback ..."}})
    report = assemble_report(record)
    assert (report.outcome, report.error, report.error_kind) == ("error", "The load failed with X: y", "load_failed")
    assert report.details == {"traceback": "Traceback ..."} and report.load_s is None


def test_a_kernel_oom_kill_in_the_cgroup_is_a_budget_stop_at_the_last_sample() -> None:
    record = make_record(budget_bytes=600 * MB, budget_mode="cgroup", limit_events={"oom_kill": 1},
                         returncode=-9, samples=[sample(10.2, 450 * MB), sample(10.8, 590 * MB)])
    report = assemble_report(record)
    assert (report.outcome, report.error_kind, report.stopped_by_budget) == ("stopped_by_budget", "budget", True)
    assert report.budget_stop["by"] == "kernel" and round(report.budget_stop["t_s"], 3) == 0.8
    assert report.error.startswith("The kernel killed the load at 0.80 s (RSS 590 MB)")
    assert report.timeline.events[-1].label == "stopped by the kernel (OOM kill)" and report.oom_kills == 1


def test_a_sigkill_in_a_systemd_scope_counts_as_its_oom_kill() -> None:
    report = assemble_report(make_record(budget_bytes=600 * MB, budget_mode="systemd", returncode=-9,
                                         samples=[sample(10.5, 580 * MB)]))
    assert (report.outcome, report.budget_mode) == ("stopped_by_budget", "cgroup")  # a scope is a cgroup too
    assert report.details["budget_mechanism"].startswith("a transient systemd scope")


def test_the_watchdogs_stop_and_a_cancel() -> None:
    stop = {"by": "watchdog", "t_s": 0.7, "rss_bytes": 700 * MB, "counted_bytes": 650 * MB}
    watched = assemble_report(make_record(budget_bytes=600 * MB, budget_mode="watchdog", budget_stop=stop,
                                          returncode=-9, samples=[sample(10.7, 700 * MB, split=0.9)]))
    assert (watched.outcome, watched.budget_stop) == ("stopped_by_budget", stop)
    assert watched.timeline.events[-1].label == "stopped by the watchdog"
    assert "RssAnon + RssShmem" in watched.details["budget_counts"]
    cancelled = assemble_report(make_record(cancelled=True, returncode=-15))
    assert (cancelled.outcome, cancelled.error_kind) == ("cancelled", "cancelled")


def test_a_child_that_never_became_ready_has_no_figures_but_its_last_words() -> None:
    report = assemble_report(make_record(baseline_rss_bytes=None, returncode=1, predicted_above_baseline_bytes=5,
                                         stderr_tail="ImportError: no module named torch"))
    assert (report.outcome, report.error_kind) == ("crashed", "crashed")
    assert report.error == ("The loading process exited with code 1 before reporting "
                            "(ImportError: no module named torch).")
    assert report.baseline_rss_bytes is None and report.predicted_peak_rss_bytes is None and report.startup_s is None


def test_the_base_report_of_a_runner_failure_keeps_what_every_run_has() -> None:
    record = make_record(offload_folder="/my/offload", max_memory_bytes=30 * MB, options={"forwards": 1})
    report = base_report(record, outcome="crashed", error_kind="crashed", error="Offload Lab's runner failed: X")
    assert (report.offload_folder, report.max_memory_bytes, report.options) == ("/my/offload", 30 * MB,
                                                                               {"forwards": 1})
    assert report.startup_s == 0.5 and report.peak_rss_bytes is None
