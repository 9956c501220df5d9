"""vm-check, inside the VM as the learner: lesson 05's four strategies under the budget the lesson computes, and
the clean-up after a finished run, a cancel and a crash. tools/vm_guest.sh runs it; exit status 1 if a check
fails. Lesson 05 itself: notebooks/05_choosing_a_strategy.ipynb, whose cells do the same through the same API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import widgetlib as lab
from widgetlib import teach
from widgetlib.measure import limits

failed: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failed.append(what)


def leftovers() -> list[str]:
    """Every cgroup Offload Lab made or asked systemd for that still exists, and every offload-lab-*.scope (or
    systemd-run's run-*.scope) unit the user manager still has loaded (a failed transient scope stays loaded
    until collected)."""
    found = [str(p) for p in Path("/sys/fs/cgroup").rglob("offload-lab-*") if p.is_dir()]
    units = subprocess.run(["systemctl", "--user", "list-units", "--all", "--plain", "--no-legend",
                            "offload-lab-*.scope", "run-*.scope"], capture_output=True, text=True).stdout.split("\n")
    return found + [u.split()[0] for u in units if u.strip()]


def settle(before: list[str]) -> list[str]:
    """What is left beyond ``before`` once systemd has had a few seconds to stop and collect the scope."""
    for _ in range(50):
        extra = [x for x in leftovers() if x not in before]
        if not extra:
            return []
        time.sleep(0.2)
    return extra


def main() -> int:
    """Run lesson 05's strategies and the clean-up checks; 0 when every check passed."""
    size = os.environ.get("VM_SIZE", "60MB")
    folder = lab.make_checkpoint(size=size)
    print(f"checkpoint {size} at {folder}; choose_mode: {limits.choose_mode(10**9)}")
    before = leftovers()
    print(f"before any run: leftovers {before}")

    reports = [lab.run(folder, s, forwards=1) for s in lab.STRATEGIES]
    assert all(r.ok for r in reports), [(r.strategy, r.error) for r in reports]
    by_name = {r.strategy: r for r in reports}
    one_copy = [by_name[s] for s in ("low_cpu_mem_usage", "offload_folder", "manual_shards")]
    budget, basis = teach.limit_budget(one_copy, too_big=by_name["normal"])
    print(f"budget {budget / 2**20:.0f} MiB ({basis}); baseline {by_name['normal'].baseline_rss_bytes / 2**20:.0f} MiB")

    print("\nlesson 05, each strategy under the budget, cold cache:")
    print(f"{'strategy':<18} {'outcome':<18} {'budget_mode':<11} {'oom_kill':>8} {'major_faults':>12} "
          f"{'peak_MiB':>8}  cgroup")
    budgeted = {}
    for strategy in lab.STRATEGIES:
        r = lab.run(folder, strategy, budget=budget, cold_cache=True, forwards=2)
        budgeted[strategy] = r
        events = r.limit_events or {}
        peak = events.get("max_usage_bytes")
        print(f"{strategy:<18} {r.outcome:<18} {r.budget_mode!s:<11} {events.get('oom_kill')!s:>8} "
              f"{r.major_faults!s:>12} {peak / 2**20 if peak else float('nan'):>8.0f}  "
              f"{r.details.get('budget_mechanism')}")
        if r.options.get("budget_note"):
            print(f"{'':<18} note: {r.options['budget_note']}")
        if r.budget_stop:  # who stopped it, and at what: the kernel (an OOM kill) or the runner's own check
            print(f"{'':<18} budget_stop: {r.budget_stop}")
        if not r.ok:
            print(f"{'':<18} error: {r.error}")
    check(all(r.budget_mode == "cgroup" for r in budgeted.values()), "every budgeted run had a real limit (cgroup)")
    normal = budgeted["normal"]
    check(normal.outcome == "stopped_by_budget" and (normal.budget_stop or {}).get("by") == "kernel"
          and (normal.limit_events or {}).get("oom_kill", 0) >= 1, "normal was OOM-killed by the kernel")
    for s in ("low_cpu_mem_usage", "offload_folder", "manual_shards"):
        check(budgeted[s].ok and (budgeted[s].major_faults or 0) > 0, f"{s} finished, with major faults")
    check(settle(before) == [], f"nothing left after the runs: {leftovers()}")

    print("\nclean-up after a cancel:")
    import threading

    sampled = threading.Event()
    handle = lab.start(folder, "low_cpu_mem_usage", budget=budget, forwards=1000, on_sample=lambda s: sampled.set())
    sampled.wait(600)  # 600: a spawned child under an emulated CPU takes minutes to say hello
    during = [x for x in leftovers() if x not in before]
    print(f"  during the run: {during}")
    handle.cancel()
    cancelled = handle.wait(60)
    check(cancelled.outcome == "cancelled", f"the run says cancelled ({cancelled.outcome})")
    check(settle(before) == [], f"nothing left after the cancel: {leftovers()}")

    print("\nclean-up after a crash (the learner's kernel killed with SIGKILL mid-run):")
    crash = subprocess.Popen([sys.executable, "-c", (
        "import sys, threading, widgetlib as lab\n"
        "seen = threading.Event()\n"
        f"h = lab.start({str(folder)!r}, 'low_cpu_mem_usage', budget={budget}, forwards=1000,\n"
        "               on_sample=lambda s: seen.set())\n"
        "seen.wait(600); print(h.pid, flush=True); threading.Event().wait()\n")],
        stdout=subprocess.PIPE, text=True)
    child_pid = int(crash.stdout.readline())
    print(f"  during the run: {[x for x in leftovers() if x not in before]} (measuring child {child_pid})")
    os.kill(crash.pid, signal.SIGKILL)
    crash.wait()
    for _ in range(100):
        if not Path(f"/proc/{child_pid}").exists():
            break
        time.sleep(0.1)
    check(not Path(f"/proc/{child_pid}").exists(), "the measuring child ended with its parent")
    left = settle(before)
    print(f"  after the crash: {left}")
    # A cgroup folder the runner made itself is removed by the next run's clean-up, not by the dead parent.
    lab.run(folder, "manual_shards", budget=budget, forwards=1)
    check(settle(before) == [], f"nothing left after the next run: {leftovers()}")

    print(f"\nlesson 05 checks: {'all passed' if not failed else 'FAILED: ' + '; '.join(failed)}")
    return 1 if failed else 0


# A script, not a module: pytest's doctest collection imports tools/, which must not run the VM's checks.
if __name__ == "__main__":
    sys.exit(main())
