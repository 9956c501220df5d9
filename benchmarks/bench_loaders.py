"""Compare every way Offload Lab loads a checkpoint, side by side, in one run on one checkpoint.

Rows (each measured by ``widgetlib.run`` in its own fresh child process, except the floor):

- ``raw_read``          the floor: a child process reads every byte of the shard files from the page cache;
- ``normal``            the plain PyTorch way (random init, whole state dict, ``load_state_dict``);
- ``low_cpu_mem_usage`` ``from_pretrained(low_cpu_mem_usage=True)``;
- ``from_pretrained``   plain ``from_pretrained`` (the same strategy with ``low_cpu_mem_usage=False``: the
                        loader always passes the flag, and transformers 5.x pops it unread either way);
- ``offload_folder``    ``from_pretrained(device_map="auto", max_memory, offload_folder)``;
- ``accelerate``        accelerate's ``init_empty_weights`` + ``load_checkpoint_and_dispatch`` with the same
                        ``max_memory`` and an offload folder (the offload_folder strategy, offload_via="accelerate");
- ``manual_shards``     empty model, then per shard: read, ``load_state_dict(assign=True)``, release.

Before every row the shard files are read once in this process, so every row starts with the checkpoint in
the page cache (the same cache state for all; a row that filled RAM cannot leave the next one a cold disk).

Then it checks the project's targets and prints PASS/FAIL with the figures:

(a) manual_shards' time to first forward <= 1.0x plain from_pretrained's, at <= 1.05x model bytes above baseline;
(b) offload_folder's peak above baseline <= max_memory + largest tensor + 150 MB;
(c) normal's peak above baseline >= 1.8x the model bytes;
(d) the runner's sampler (it runs in the parent process) costs <= 2 % of load time: the same strategy at
    interval_s=0.01 and at interval_s=1.0, alternated, several repeats, medians compared.

Usage::

    python benchmarks/bench_loaders.py                       # 1 GB fp32, 6 safetensors shards
    python benchmarks/bench_loaders.py --json benchmarks/results/bench_1GB.json
    python benchmarks/bench_loaders.py --size 13GB --dtype bfloat16 --max-memory 4GB --budget 16GB \\
        --rows raw_read,normal,low_cpu_mem_usage,offload_folder,manual_shards --overhead-repeats 0 \\
        --delete-checkpoint --json benchmarks/results/bench_13GB_bf16.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    strategy: str | None  # None: the raw read, not a widgetlib strategy
    options: dict[str, Any] = field(default_factory=dict)
    offload: bool = False  # takes --max-memory and an offload folder


ROWS = (
    Row("raw_read", "raw read of the shards (floor)", None),
    Row("normal", "normal (random init + load_state_dict)", "normal"),
    Row("low_cpu_mem_usage", "low_cpu_mem_usage (from_pretrained, flag=True)", "low_cpu_mem_usage"),
    Row(
        "from_pretrained",
        "plain from_pretrained (flag=False)",
        "low_cpu_mem_usage",
        {"low_cpu_mem_usage": False},
    ),
    Row(
        "offload_folder",
        "offload_folder (from_pretrained device_map)",
        "offload_folder",
        {"offload_via": "from_pretrained"},
        offload=True,
    ),
    Row(
        "accelerate",
        "accelerate init_empty_weights + load_checkpoint_and_dispatch",
        "offload_folder",
        {"offload_via": "accelerate"},
        offload=True,
    ),
    Row("manual_shards", "manual_shards (per-shard assign=True)", "manual_shards"),
)
ROW_KEYS = tuple(r.key for r in ROWS)

# ------------------------------------------------------------------------------------------------ machine


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _meminfo_bytes(key: str) -> int | None:
    for line in _read_text("/proc/meminfo").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return None


def _cpu_model() -> str:
    for line in _read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "accelerate", "safetensors", "psutil"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_total_bytes": _meminfo_bytes("MemTotal"),
        "ram_available_bytes_at_start": _meminfo_bytes("MemAvailable"),
        "loadavg_at_start": _loadavg(),
        "platform": platform.platform(),
        "versions": versions,
    }


# ------------------------------------------------------------------------------------------ page cache, floor

_CHUNK_BYTES = 16 << 20

_RAW_READ_CHILD = r"""
import json, sys, time
def status(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
def reset_peak():
    # A forked child inherits its parent's high-water mark; "5" resets VmHWM to the current RSS (Linux).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
view = memoryview(bytearray(int(sys.argv[1])))
view[::4096] = b"\0" * len(view[::4096])  # touch the buffer: its pages are part of the baseline
reset_peak()
baseline = status("VmRSS")
start = time.perf_counter()
total = 0
for path in sys.argv[2:]:
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                break
            total += n
read_s = time.perf_counter() - start
peak = status("VmHWM")
print(json.dumps({"read_s": read_s, "bytes": total, "baseline_rss_bytes": baseline, "peak_rss_bytes": peak}))
"""


def warm_page_cache(files: list[Path]) -> dict[str, float]:
    """Read every byte of ``files`` once (this process), so the next reader finds them in the page cache."""
    view = memoryview(bytearray(_CHUNK_BYTES))
    start = time.perf_counter()
    total = 0
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                total += n
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "bytes": total, "gb_per_s": round(total / seconds / 1e9, 2)}


def raw_read(files: list[Path]) -> dict[str, Any]:
    """The floor: a fresh child process reads all the shards (from the page cache) into one reused buffer."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _RAW_READ_CHILD, str(_CHUNK_BYTES), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall_s = time.perf_counter() - start
    if proc.returncode != 0:
        return {"outcome": "error", "error": proc.stderr.strip().splitlines()[-1:], "run_wall_s": wall_s}
    data = json.loads(proc.stdout)
    baseline, peak = data["baseline_rss_bytes"], data["peak_rss_bytes"]
    return {
        "outcome": "ok",
        "load_s": data["read_s"],
        "forward_s": None,
        "time_to_first_forward_s": None,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak,
        "peak_above_baseline_bytes": peak - baseline if baseline is not None else None,
        "bytes_read": data["bytes"],
        "offload_folder_bytes": 0,
        "run_wall_s": round(wall_s, 3),
    }


# -------------------------------------------------------------------------------------------- measured runs


def _curve(report: Any, points: int = 120) -> list[list[float]]:
    """The RSS curve cut down to at most ``points`` [t_s, MB] pairs, keeping the largest of each bucket."""
    samples = report.timeline.samples
    if not samples:
        return []
    step = max(1, -(-len(samples) // points))
    out = []
    for i in range(0, len(samples), step):
        top = max(samples[i : i + step], key=lambda s: s.rss_bytes)
        out.append([round(top.t_s, 3), round(top.rss_bytes / 1e6, 1)])
    return out


def measured_run(folder: Path, row: Row, args: argparse.Namespace, *, interval_s: float = 0.01) -> dict[str, Any]:
    """One ``widgetlib.run`` of ``row``; the figures that matter, plus the parent's CPU time during the run."""
    import widgetlib

    options: dict[str, Any] = dict(row.options)
    if row.offload:
        options["max_memory"] = args.max_memory
    if args.budget:
        options["budget"] = args.budget
    if args.threads:
        options["threads"] = args.threads
    if args.cold_cache:
        options["cold_cache"] = True
    loadavg = _loadavg()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    report = widgetlib.run(folder, row.strategy, dtype=args.dtype, interval_s=interval_s, **options)
    wall_s = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    parent_cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "outcome": report.outcome,
        "error": report.error,
        "load_s": report.load_s,
        "forward_s": report.forward_s,
        "steady_forward_s": report.steady_forward_s,
        "startup_s": report.startup_s,
        "major_faults": report.major_faults,
        "budget_mode": report.budget_mode,
        "limit_events": report.limit_events,
        "peak_source": report.peak_source,
        "time_to_first_forward_s": report.time_to_first_forward_s,
        "baseline_rss_bytes": report.baseline_rss_bytes,
        "peak_rss_bytes": report.peak_rss_bytes,
        "sampled_peak_rss_bytes": report.sampled_peak_rss_bytes,
        "peak_above_baseline_bytes": report.peak_above_baseline_bytes,
        "peak_ratio": report.peak_ratio,
        "predicted_peak_rss_bytes": report.predicted_peak_rss_bytes,
        "offload_folder_files": report.offload_folder_files,
        "offload_folder_bytes": report.offload_folder_bytes,
        "device_map": report.device_map,
        "logits_sha256": report.logits_sha256,
        "stopped_by_budget": report.stopped_by_budget,
        "budget_bytes": report.budget_bytes,
        "budget_stop": report.budget_stop,
        "max_memory_bytes": report.max_memory_bytes,
        "interval_s": interval_s,
        "samples": len(report.timeline.samples),
        "events": [[round(e.t_s, 3), e.label] for e in report.timeline.events],
        "rss_curve_t_s_mb": _curve(report),
        "versions": report.versions,
        "loadavg_at_start": loadavg,
        "run_wall_s": round(wall_s, 3),
        "parent_cpu_s": round(parent_cpu_s, 3),
    }


_MEDIAN_KEYS = (
    "load_s",
    "forward_s",
    "steady_forward_s",
    "startup_s",
    "time_to_first_forward_s",
    "peak_rss_bytes",
    "baseline_rss_bytes",
    "peak_above_baseline_bytes",
    "offload_folder_bytes",
    "parent_cpu_s",
    "run_wall_s",
)


def summarise(runs: list[dict[str, Any]], checkpoint_bytes: int) -> dict[str, Any]:
    """Medians over the repeats of one row (the outcome is the worst one seen)."""
    summary: dict[str, Any] = {}
    for key in _MEDIAN_KEYS:
        values = [r[key] for r in runs if r.get(key) is not None]
        summary[key] = statistics.median(values) if values else None
    outcomes = sorted({r["outcome"] for r in runs})
    summary["outcome"] = "ok" if outcomes == ["ok"] else "/".join(o for o in outcomes)
    above = summary["peak_above_baseline_bytes"]
    summary["peak_ratio"] = round(above / checkpoint_bytes, 3) if above is not None else None
    summary["repeats"] = len(runs)
    return summary


# ----------------------------------------------------------------------------------------------- overhead


def sampler_overhead(folder: Path, row: Row, args: argparse.Namespace, repeats: int) -> dict[str, Any]:
    """The same strategy at interval_s=0.01 and 1.0, alternated (ABBA) so slow drift on the machine cancels."""
    fast: list[dict[str, Any]] = []
    slow: list[dict[str, Any]] = []
    for i in range(repeats):
        order = (0.01, 1.0) if i % 2 == 0 else (1.0, 0.01)
        for interval_s in order:
            warm_page_cache(args.files)
            run = measured_run(folder, row, args, interval_s=interval_s)
            print(
                f"  overhead {row.key} interval_s={interval_s:<5} load {run['load_s'] or 0:.3f} s  "
                f"ttff {run['time_to_first_forward_s'] or 0:.3f} s  parent CPU {run['parent_cpu_s']:.3f} s  "
                f"samples {run['samples']}",
                flush=True,
            )
            (fast if interval_s == 0.01 else slow).append(run)

    result: dict[str, Any] = {"strategy": row.key, "repeats": repeats}
    paired = [(fr, sr) for fr, sr in zip(fast, slow, strict=True) if fr["outcome"] == sr["outcome"] == "ok"]
    result["ok_pairs"] = len(paired)
    if not paired:
        result["error"] = "no pair of runs finished: " + "; ".join(sorted({r["error"] or "" for r in fast + slow}))
        return result
    fast, slow = [fr for fr, _ in paired], [sr for _, sr in paired]
    for name, runs in (("interval_0.01", fast), ("interval_1.0", slow)):
        result[name] = {
            "load_s": [round(r["load_s"], 4) for r in runs],
            "time_to_first_forward_s": [round(r["time_to_first_forward_s"], 4) for r in runs],
            "parent_cpu_s": [r["parent_cpu_s"] for r in runs],
            "run_wall_s": [r["run_wall_s"] for r in runs],
            "samples": [r["samples"] for r in runs],
            "loadavg_at_start": [r["loadavg_at_start"] for r in runs],
        }
        for key in ("load_s", "time_to_first_forward_s", "parent_cpu_s", "run_wall_s"):
            result[name][f"median_{key}"] = statistics.median(r[key] for r in runs)
    f, s = result["interval_0.01"], result["interval_1.0"]
    result["load_overhead_pct"] = round(100 * (f["median_load_s"] / s["median_load_s"] - 1), 2)
    result["ttff_overhead_pct"] = round(
        100 * (f["median_time_to_first_forward_s"] / s["median_time_to_first_forward_s"] - 1), 2
    )
    # Paired: each 100 Hz run against the 1 Hz run next to it in time (ABBA), which cancels slow drift.
    pairs = [fr["load_s"] / sr["load_s"] - 1 for fr, sr in paired]
    result["paired_load_overhead_pct"] = round(100 * statistics.median(pairs), 2)
    # The direct cost: extra CPU the parent (sampler + reader threads) burns in a run at 100 Hz vs 1 Hz.
    extra_cpu = f["median_parent_cpu_s"] - s["median_parent_cpu_s"]
    result["sampler_cpu_s_per_run"] = round(extra_cpu, 3)
    result["sampler_cpu_share_of_one_core_pct"] = round(100 * extra_cpu / f["median_run_wall_s"], 2)
    every = f["load_s"] + s["load_s"]
    result["run_to_run_spread_pct"] = round(100 * (max(every) - min(every)) / s["median_load_s"], 1)
    return result


# ------------------------------------------------------------------------------------------------ targets


def startup_latency(repeats: int) -> dict[str, Any]:
    """Median time from a ``run()`` call to the child ready (``Report.startup_s``) once the lab is warm.

    A tiny checkpoint, so the figure is the start-up alone; the first run (which may wait for the zygote's
    import) is reported apart and left out of the median.
    """
    import widgetlib
    from widgetlib.measure.processes import prewarm, start_method

    folder = widgetlib.make_checkpoint(size="8MB", shards=2)
    t = time.perf_counter()
    prewarm()
    first = widgetlib.run(folder, "manual_shards", forwards=1)
    first_s = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        report = widgetlib.run(folder, "manual_shards", forwards=1)
        if report.startup_s is not None:
            times.append(report.startup_s)
    return {
        "start_method": start_method(),
        "first_run_startup_s": first.startup_s,
        "first_run_wall_s_including_zygote_import": round(first_s, 3),
        "repeats": repeats,
        "startup_s": [round(x, 4) for x in times],
        "median_startup_s": statistics.median(times) if times else None,
    }


def check_targets(
    rows: dict[str, dict[str, Any]], overhead: dict[str, Any] | None, info: Any, max_memory_bytes: int,
    startup: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    from widgetlib import format_bytes

    model_bytes = info.total_bytes
    targets: list[dict[str, Any]] = []

    def add(name: str, passed: bool | None, figures: str) -> None:
        status = "N/A" if passed is None else ("PASS" if passed else "FAIL")
        targets.append({"target": name, "status": status, "figures": figures})

    def judge(name: str, needs: dict[str, dict[str, Any] | None], verdict: Callable[..., tuple[bool, str]]) -> None:
        # Judged only from rows that ran and finished (in the order of ``needs``); otherwise N/A, saying which.
        unfinished = [label for label, row in needs.items() if not row or row["outcome"] != "ok"]
        if unfinished:
            add(name, None, f"{', '.join(unfinished)}: not run or did not finish")
        else:
            add(name, *verdict(*needs.values()))

    def manual_shards_vs_from_pretrained(ms: dict[str, Any], fp: dict[str, Any]) -> tuple[bool, str]:
        t_ratio = ms["time_to_first_forward_s"] / fp["time_to_first_forward_s"]
        m_ratio = ms["peak_above_baseline_bytes"] / model_bytes
        return t_ratio <= 1.0 and m_ratio <= 1.05, (
            f"TTFF {ms['time_to_first_forward_s']:.2f} s vs {fp['time_to_first_forward_s']:.2f} s = {t_ratio:.2f}x; "
            f"above baseline {format_bytes(ms['peak_above_baseline_bytes'])} = {m_ratio:.3f}x model"
        )

    def offload_folder_within_max_memory(off: dict[str, Any]) -> tuple[bool, str]:
        limit = max_memory_bytes + info.largest_tensor_bytes + 150_000_000
        return off["peak_above_baseline_bytes"] <= limit, (
            f"above baseline {format_bytes(off['peak_above_baseline_bytes'])} vs limit {format_bytes(limit)} "
            f"({format_bytes(max_memory_bytes)} + {format_bytes(info.largest_tensor_bytes)} "
            f"[{info.largest_tensor}] + 150 MB)"
        )

    judge(
        "(a) manual_shards TTFF <= 1.0x from_pretrained, above baseline <= 1.05x model",
        {"manual_shards": rows.get("manual_shards"),
         "from_pretrained": rows.get("from_pretrained") or rows.get("low_cpu_mem_usage")},
        manual_shards_vs_from_pretrained,
    )
    judge(
        "(b) offload_folder above baseline <= max_memory + largest tensor + 150 MB",
        {"offload_folder": rows.get("offload_folder")},
        offload_folder_within_max_memory,
    )

    normal = rows.get("normal")
    if normal and normal["outcome"] == "ok":
        add(
            "(c) normal peak above baseline >= 1.8x model",
            normal["peak_ratio"] >= 1.8,
            f"above baseline {format_bytes(normal['peak_above_baseline_bytes'])} = {normal['peak_ratio']:.2f}x model",
        )
    elif normal:
        add(
            "(c) normal >= 1.8x",
            None,
            f"normal did not finish ({normal['outcome']}); peak above baseline when stopped "
            f"{format_bytes(normal['peak_above_baseline_bytes'])}",
        )
    else:
        add("(c) normal >= 1.8x", None, "row not run")

    if overhead and overhead.get("error"):
        add("(d) sampler overhead <= 2 % of load time", None, overhead["error"])
    elif overhead:
        f, s = overhead["interval_0.01"], overhead["interval_1.0"]
        add(
            "(d) sampler overhead <= 2 % of load time",
            overhead["paired_load_overhead_pct"] <= 2.0,
            f"{overhead['strategy']}, {overhead['repeats']} runs each: paired median "
            f"{overhead['paired_load_overhead_pct']:+.1f} % (median load {f['median_load_s']:.3f} s at 100 Hz vs "
            f"{s['median_load_s']:.3f} s at 1 Hz = {overhead['load_overhead_pct']:+.1f} %;"
            f" TTFF {overhead['ttff_overhead_pct']:+.1f} %;"
            f" run-to-run spread {overhead['run_to_run_spread_pct']} %;"
            f" sampler CPU {overhead['sampler_cpu_s_per_run']:.3f} s a run = "
            f"{overhead['sampler_cpu_share_of_one_core_pct']:.1f} % of one core)",
        )
    else:
        add("(d) sampler overhead", None, "not measured (--overhead-repeats 0)")
    if startup and startup.get("median_startup_s") is not None:
        median = startup["median_startup_s"]
        add(
            "(e) run() to child ready <= 0.3 s median once warm",
            median <= 0.3,
            f"median {median:.3f} s over {len(startup['startup_s'])} runs ({startup['start_method']}); "
            f"first run {startup['first_run_wall_s_including_zygote_import']:.1f} s including the zygote's import",
        )
    else:
        add("(e) start-up", None, "not measured (--startup-repeats 0)")
    return targets


# ------------------------------------------------------------------------------------------------- output


def _s(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: list[tuple[Row, dict[str, Any]]], *, note_repeats: bool) -> str:
    from widgetlib import format_bytes

    head = (
        "| row | load s | first forward s | time to first forward s | peak RSS | above baseline | x model "
        "| offload written | outcome |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row, s in rows:
        ratio = "–" if s.get("peak_ratio") is None else f"{s['peak_ratio']:.2f}"
        if row.strategy is None:
            ratio = "–"
        lines.append(
            f"| {row.label} | {_s(s.get('load_s'))} | {_s(s.get('forward_s'), 3)} "
            f"| {_s(s.get('time_to_first_forward_s'))} | {format_bytes(s.get('peak_rss_bytes'))} "
            f"| {format_bytes(s.get('peak_above_baseline_bytes'))} | {ratio} "
            f"| {format_bytes(s.get('offload_folder_bytes'))} | {s['outcome']} |"
        )
    if note_repeats:
        lines.append("")
        lines.append(f"(medians of {rows[0][1]['repeats']} runs per row)")
    return "\n".join(lines)


def _strip_for_json(run: dict[str, Any]) -> dict[str, Any]:
    out = dict(run)
    out.pop("versions", None)
    return out


# --------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from widgetlib.core.options import FORMATS, LOAD_DTYPES  # torch-free: --help stays quick

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", default="1GB", help="checkpoint size in its dtype (default 1GB)")
    p.add_argument("--shards", type=int, default=6, help="number of shard files (default 6)")
    p.add_argument(
        "--dtype", default="float32", choices=LOAD_DTYPES, help="checkpoint and load dtype (default float32)"
    )
    p.add_argument("--format", default="safetensors", choices=FORMATS)
    p.add_argument("--max-memory", default="300MB", help="RAM for weights in the offload rows (default 300MB)")
    p.add_argument("--budget", default=None, help="simulated machine: stop any row whose RSS crosses it")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads in each loading child (default: torch's own)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per row, interleaved; medians reported")
    p.add_argument("--rows", default=",".join(ROW_KEYS), help=f"comma-separated subset of: {', '.join(ROW_KEYS)}")
    p.add_argument("--overhead-repeats", type=int, default=5, help="runs per interval for target (d); 0 skips it")
    p.add_argument(
        "--cold-cache",
        action="store_true",
        help="drop the checkpoint's pages from the page cache before every row instead of warming it\n"
        "(run(cold_cache=True)): every row pays its disk reads; needed when the checkpoint is bigger than RAM",
    )
    p.add_argument("--startup-repeats", type=int, default=7, help="runs for target (e), start-up; 0 skips it")
    p.add_argument("--overhead-strategy", default="manual_shards", choices=ROW_KEYS[1:])
    p.add_argument("--delete-checkpoint", action="store_true", help="delete the checkpoint folder at the end")
    p.add_argument("--json", dest="json_path", default=None, help="write the full result here")
    args = p.parse_args(argv)
    unknown = [k for k in args.rows.split(",") if k not in ROW_KEYS]
    if unknown:
        p.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROW_KEYS)}")
    return args


def main(argv: list[str] | None = None, log: Callable[..., None] = print) -> int:
    args = parse_args(argv)
    from widgetlib import format_bytes, inspect_checkpoint, make_checkpoint, parse_size
    from widgetlib.core.checkpoints import cache_dir, shard_files

    t_start = time.perf_counter()
    machine = machine_info()
    log(
        f"machine: {machine['cpu_model']}, {machine['cpu_count']} cores, "
        f"{format_bytes(machine['ram_total_bytes'])} RAM ({format_bytes(machine['ram_available_bytes_at_start'])}"
        f" available), load average {machine['loadavg_at_start']}"
    )
    log("versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()))

    # Build (or reuse) the checkpoint, timed.
    checkpoints = cache_dir() / "checkpoints"
    before = set(checkpoints.iterdir()) if checkpoints.is_dir() else set()
    t = time.perf_counter()
    folder = make_checkpoint(size=args.size, shards=args.shards, format=args.format, dtype=args.dtype)
    build_s = time.perf_counter() - t
    built_now = folder not in before
    info = inspect_checkpoint(folder)
    args.files = shard_files(folder)
    max_memory_bytes = parse_size(args.max_memory, name="max_memory")
    log(
        f"checkpoint: {folder} ({format_bytes(info.total_bytes)} {info.dtype}, {len(info.shards)} shards, "
        f"largest tensor {info.largest_tensor} {format_bytes(info.largest_tensor_bytes)}); "
        + (f"built in {build_s:.1f} s" if built_now else f"reused from the cache ({build_s:.1f} s)")
    )

    if args.cold_cache:
        first_warm = {"bytes": 0, "seconds": 0.0}
        log("page cache: every row starts cold (run(cold_cache=True) drops the shards' pages first)")
    else:
        first_warm = warm_page_cache(args.files)
        log(
            f"page cache warmed: {format_bytes(first_warm['bytes'])} read in {first_warm['seconds']} s "
            "(and again before every row, so every row starts with the shards cached)"
        )

    selected = [r for r in ROWS if r.key in args.rows.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {r.key: [] for r in selected}
    warm_reads: list[dict[str, Any]] = [first_warm]
    for rep in range(args.repeat):
        for row in selected:
            if not args.cold_cache:
                warm_reads.append(warm_page_cache(args.files))
            result = raw_read(args.files) if row.strategy is None else measured_run(folder, row, args)
            runs[row.key].append(result)
            log(
                f"[{rep + 1}/{args.repeat}] {row.key:<18} {result['outcome']:<18} load {_s(result.get('load_s'))} s"
                f"  forward {_s(result.get('forward_s'), 3)} s  peak {format_bytes(result.get('peak_rss_bytes'))}"
                f"  above {format_bytes(result.get('peak_above_baseline_bytes'))}"
                + (f"  ({result['error']})" if result.get("error") else ""),
                flush=True,
            )

    summaries = {key: summarise(r, info.total_bytes) for key, r in runs.items()}
    hashes = {r["logits_sha256"] for rs in runs.values() for r in rs if r.get("logits_sha256")}

    overhead = None
    if args.overhead_repeats > 0:
        row = next(r for r in ROWS if r.key == args.overhead_strategy)
        log(f"sampler overhead: {row.key}, interval_s 0.01 vs 1.0, {args.overhead_repeats} runs each (ABBA)")
        overhead = sampler_overhead(folder, row, args, args.overhead_repeats)

    startup = None
    if args.startup_repeats > 0:
        log(f"start-up: {args.startup_repeats} runs of a tiny checkpoint, run() to child ready")
        startup = startup_latency(args.startup_repeats)
        log(f"start-up median {startup['median_startup_s']} s ({startup['start_method']}): {startup['startup_s']}")

    targets = check_targets(summaries, overhead, info, max_memory_bytes, startup)
    table = markdown_table([(r, summaries[r.key]) for r in selected], note_repeats=args.repeat > 1)
    loadavg_end = _loadavg()
    wall_s = time.perf_counter() - t_start

    log("")
    log(
        f"checkpoint {format_bytes(info.total_bytes)} {info.dtype}, {len(info.shards)} {info.format} shards; "
        f"max_memory {args.max_memory}; budget {args.budget or 'none'}; torch threads {args.threads or 'default'}; "
        + ("page cache dropped before every row" if args.cold_cache else "page cache warm before every row")
    )
    log(table)
    log("")
    log(f"logits identical across finished rows: {len(hashes) <= 1} ({len(hashes)} distinct checksum(s))")
    for target in targets:
        log(f"{target['status']:<4} {target['target']}: {target['figures']}")
    log(f"load average at start {machine['loadavg_at_start']}, at end {loadavg_end}; total {wall_s:.0f} s")

    deleted = False
    if args.delete_checkpoint:
        if folder.resolve().is_relative_to(checkpoints.resolve()):
            shutil.rmtree(folder)
            deleted = True
            log(f"deleted {folder}")
        else:
            log(f"not deleting {folder}: it is outside {checkpoints}")

    if args.json_path:
        versions = next((r["versions"] for rs in runs.values() for r in rs if r.get("versions")), {})
        document = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
            "machine": {**machine, "loadavg_at_end": loadavg_end, "child_versions": versions},
            "checkpoint": {
                "folder": str(folder),
                "total_bytes": info.total_bytes,
                "parameters": info.parameters,
                "dtype": info.dtype,
                "format": info.format,
                "shards": len(info.shards),
                "largest_tensor": info.largest_tensor,
                "largest_tensor_bytes": info.largest_tensor_bytes,
                "build_s": round(build_s, 2),
                "built_now": built_now,
                "deleted_after": deleted,
            },
            "settings": {
                "size": args.size,
                "max_memory": args.max_memory,
                "max_memory_bytes": max_memory_bytes,
                "budget": args.budget,
                "repeat": args.repeat,
                "threads": args.threads,
                "page_cache": "every row starts cold: run(cold_cache=True) drops the shards' pages first"
                if args.cold_cache
                else "every shard read once in the parent before every row (warm cache for all rows)",
                "warm_reads": warm_reads,
            },
            "rows": [
                {
                    "key": r.key,
                    "label": r.label,
                    "strategy": r.strategy,
                    "options": r.options,
                    "median": summaries[r.key],
                    "runs": [_strip_for_json(x) for x in runs[r.key]],
                }
                for r in selected
            ],
            "logits_identical": len(hashes) <= 1,
            "overhead": overhead,
            "startup": startup,
            "targets": targets,
            "table_markdown": table,
            "wall_s": round(wall_s, 1),
        }
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1) + "\n")
        log(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
