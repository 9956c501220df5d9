"""The sentences lessons 03 and 05 build from their runs' figures: each one chooses its wording from the figures
at hand (a cold read that did or did not stand out, a budget the kernel or a watchdog enforced), so every branch
is written, and tested, here; the lessons keep their teaching text and call these for the figures.

Only figures of the Reports passed in are read; nothing here imports torch, the widgets or ``teach`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..core.sizes import format_bytes as fmt
from .readings import LOGITS_RTOL, logits_max_abs_diff

if TYPE_CHECKING:
    from ..measure.report import Report

__all__ = [
    "SLOWER_FACTOR",
    "budget_outcomes",
    "budget_limits",
    "budget_room",
    "disk_price",
    "prediction_gap",
    "prediction_lines",
    "same_logits_sentence",
    "sweep_peaks",
]

# A cold first forward counts as clearly slower than a warm one above this factor: below it, two runs of the
# same load on a shared machine can differ as much.
SLOWER_FACTOR = 1.5


def sweep_peaks(least: Report, most: Report) -> str:
    """Lesson 03's reading of a ``max_memory`` sweep: the peaks with the least and the most RAM, and why weights
    still went to disk with ``max_memory`` at all the weights' bytes (when they did; ``most`` is that run).

    >>> from widgetlib.measure.report import Report
    >>> def run(above, disk):
    ...     return Report(strategy="offload_folder", checkpoint="/ck", checkpoint_bytes=10**8, baseline_rss_bytes=0,
    ...                   peak_rss_bytes=above, device_map={"disk": {"tensors": 1, "bytes": disk}} if disk else {})
    >>> sweep_peaks(run(3 * 10**7, 6 * 10**7), run(9 * 10**7, 0)).split(". ")[0]
    'With the least RAM the peak was 30 MB above baseline against 90 MB with the most'
    >>> "went to disk" in sweep_peaks(run(3 * 10**7, 6 * 10**7), run(9 * 10**7, 0))
    False
    >>> "planner counts the model's buffers" in sweep_peaks(run(3 * 10**7, 6 * 10**7), run(9 * 10**7, 10**6))
    True
    >>> "shown, not ranked" in sweep_peaks(run(3 * 10**7, 6 * 10**7), run(9 * 10**7, 0))  # no times: not ranked
    True
    >>> slow, fast = run(3 * 10**7, 6 * 10**7), run(9 * 10**7, 0)
    >>> slow.steady_forward_s, fast.steady_forward_s = 0.9, 0.3
    >>> "took 3.0× as long with the least RAM" in sweep_peaks(slow, fast)
    True
    """
    most_on_disk = most.bytes_on("disk")
    least_s, most_s = least.steady_forward_s or least.forward_s, most.steady_forward_s or most.forward_s
    if least_s is not None and most_s and least_s > SLOWER_FACTOR * most_s:
        times = (f"A steady forward took {least_s / most_s:.1f}× as long with the least RAM as with the most: "
                 "every forward brings the offloaded weights back, here from the page cache (a copy in RAM).")
    else:
        times = ("The steady forward times are shown, not ranked (less than "
                 f"{SLOWER_FACTOR}× apart): with the offloaded files in the page cache, bringing a weight back is a "
                 "copy in RAM, and the difference can be smaller than the noise between two runs of the same load.")
    return (
        f"With the least RAM the peak was {fmt(least.peak_above_baseline_bytes)} above baseline against "
        f"{fmt(most.peak_above_baseline_bytes)} with the most. " + times + " The runs below show what the disk "
        "costs."
        + (f" Even with `max_memory` equal to all the weights' bytes, {fmt(most_on_disk)} went to disk: the "
           "planner counts the model's buffers too (the non-persistent rotary `inv_freq` among them), so the "
           "weights alone no longer fit, and the last module placed goes to disk." if most_on_disk else "")
    )


def _reads(report: Report) -> tuple[int, int] | None:
    """(read by the load, read by the forwards) from disk, or None where the platform does not count them."""
    if report.disk_read_bytes is None or report.disk_read_forward_bytes is None:
        return None
    return report.disk_read_bytes - report.disk_read_forward_bytes, report.disk_read_forward_bytes


def disk_price(cold: Report, warm: Report, dropped: Report) -> str:
    """Lesson 03's reading of one offload plan run three ways: ``cold`` (page cache dropped before the load),
    ``warm`` (right after it) and ``dropped`` (a warm load, the pages dropped again before the first forward,
    ``cold_forward=True``): what each read from disk, during the load and during the forwards, and what the
    first forwards took.

    >>> from widgetlib.measure.report import Report
    >>> def run(load, forwards, forward_s=0.5, disk=6 * 10**7):
    ...     return Report(strategy="offload_folder", checkpoint="/ck", checkpoint_bytes=10**8, forward_s=forward_s,
    ...                   disk_read_bytes=None if load is None else load + forwards, disk_read_forward_bytes=forwards,
    ...                   device_map={"disk": {"tensors": 9, "bytes": disk}})
    >>> text = disk_price(run(10**8, 10**5), run(0, 0), run(0, 6 * 10**7, forward_s=2.0))
    >>> text.split(". ")[0]
    'From a cold cache the load read 100 MB from disk (1.00× the checkpoint) and the forwards 100.0 kB'
    >>> "every weight, the 60 MB planned for disk as well" in text, "found them in the page cache" in text
    (True, True)
    >>> "read 60 MB from disk, 1.00× the weights planned for disk: every offloaded weight" in text
    True
    >>> "took 4.0× the warm one" in text
    True
    >>> "do not stand out" in disk_price(run(10**8, 0), run(0, 0), run(0, 6 * 10**7, forward_s=0.6))
    True
    >>> "part of the offloaded weights" in disk_price(run(10**8, 0), run(0, 0), run(0, 10**7))
    True
    >>> "does not count what a process reads from disk" in disk_price(run(None, 0), run(None, 0), run(None, 0))
    True
    """
    on_disk = cold.bytes_on("disk")
    reads = [_reads(r) for r in (cold, warm, dropped)]
    counted = all(r is not None for r in reads)
    times = (f"First forwards: {cold.forward_s:.3f} s cold, {warm.forward_s:.3f} s warm, {dropped.forward_s:.3f} s "
             "after the drop. ")
    if dropped.forward_s > SLOWER_FACTOR * warm.forward_s:
        times += (f"The first forward after the drop took {dropped.forward_s / warm.forward_s:.1f}× the warm one: "
                  "the same plan, the same forward, so the difference is reading the offloaded weights from this "
                  "disk.")
    else:
        times += ("Here the times do not stand out of the noise between two runs of the same load (less than "
                  f"{SLOWER_FACTOR}× apart): at this size, on this disk, "
                  + ("the bytes show the price, the seconds do not." if counted else
                     "the reads are lost in it; a bigger checkpoint or a slower disk makes them show."))
    if not counted:
        return ("This OS does not count what a process reads from disk (Linux has `/proc/self/io`), so only the "
                "times can be compared. " + times)
    (cold_load, cold_fwd), (warm_load, warm_fwd), (_, dropped_fwd) = reads
    text = (f"From a cold cache the load read {fmt(cold_load)} from disk ({cold_load / cold.checkpoint_bytes:.2f}× "
            f"the checkpoint) and the forwards {fmt(cold_fwd)}. Warm, the load read {fmt(warm_load)} and the "
            f"forwards {fmt(warm_fwd)}. ")
    # What transformers' from_pretrained does (accelerate's load_checkpoint_and_dispatch is another path).
    via_transformers = cold.options.get("offload_via", "from_pretrained") == "from_pretrained"
    if cold_load >= 0.9 * cold.checkpoint_bytes and via_transformers:
        text += (f"The cold load read every weight, the {fmt(on_disk)} planned for disk as well: transformers "
                 "reads each tensor while it loads and only then hands one planned for disk to the offloading "
                 "code (`core_model_loading.py`, `offload_and_maybe_resave_param`)")
        text += (", so the forwards found them in the page cache. " if cold_fwd < 0.25 * on_disk else ". ")
    share = dropped_fwd / on_disk if on_disk else 0.0
    text += (f"With the pages dropped after the load, the forwards read {fmt(dropped_fwd)} from disk, "
             f"{share:.2f}× the weights planned for disk: "
             + ("every offloaded weight came back from the disk when its layer ran. " if share >= 0.9 else
                "part of the offloaded weights came back from the disk, the rest was still cached. ")
             + "That is the price of disk offload on a machine whose page cache cannot keep the checkpoint: one "
             "whose RAM is full, or a load under a memory limit (lesson 05). ")
    return text + times


def prediction_lines(reports: Iterable[Report]) -> str:
    """Lesson 05's Markdown list: each run's prediction (from the checkpoint's headers) against its measured peak,
    both above the run's baseline.

    >>> from widgetlib.measure.report import Report
    >>> print(prediction_lines([Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=10**8,
    ...     baseline_rss_bytes=10**8, peak_rss_bytes=31 * 10**7, predicted_peak_rss_bytes=3 * 10**8,
    ...     prediction="two copies"), Report(strategy="manual_shards", checkpoint="/ck", checkpoint_bytes=10**8)]))
    - **normal**: predicted 200 MB above baseline (two copies); measured 210 MB, 1.05 times the prediction.
    - **manual_shards**: no prediction or no measured peak to compare (outcome ok).
    """
    lines = []
    for r in reports:
        predicted, measured = r.predicted_above_baseline_bytes, r.peak_above_baseline_bytes
        if not predicted or measured is None:
            lines.append(f"- **{r.strategy}**: no prediction or no measured peak to compare (outcome {r.outcome}).")
            continue
        lines.append(
            f"- **{r.strategy}**: predicted {fmt(predicted)} above baseline ({r.prediction}); measured "
            f"{fmt(measured)}, {measured / predicted:.2f} times the prediction."
        )
    return "\n".join(lines)


def prediction_gap(reports: Sequence[Report], at_peak: Mapping[str, tuple[int | None, int | None]]) -> str:
    """Lesson 05's account of why measured peaks differ from the predictions: the predictions are arithmetic on
    the weights; a measured peak is the whole process. ``at_peak`` maps each strategy to how much its anonymous
    and its file-backed memory had grown at its highest sample (``None`` where the probe does not split RSS).

    >>> from widgetlib.measure.report import Report
    >>> def run(name, measured, predicted):
    ...     return Report(strategy=name, checkpoint="/ck", checkpoint_bytes=100, baseline_rss_bytes=0,
    ...                   peak_rss_bytes=measured, predicted_peak_rss_bytes=predicted)
    >>> runs = [run("normal", 210, 200), run("manual_shards", 130, 100), run("low_cpu_mem_usage", 95, 110)]
    >>> text = prediction_gap(runs, {"normal": (200, 10), "manual_shards": (20, 110), "low_cpu_mem_usage": (15, 80)})
    >>> text.split(". ")[0]
    'Measured peaks came to 0.86 to 1.30 times the predictions'
    >>> "the prediction: normal +10 B, manual_shards +30 B" in text, "below it: low_cpu_mem_usage -15 B" in text
    (True, True)
    >>> "anonymous memory had grown by manual_shards 20 B, low_cpu_mem_usage 15 B" in text
    True
    >>> "low_cpu_mem_usage 80% of the checkpoint" in text, "counts only once touched" in text
    (True, True)
    >>> text = prediction_gap(runs[:2], {"normal": (200, 10), "manual_shards": (20, 110)})
    >>> "below it" in text, "counts only once touched" in text
    (False, False)
    >>> "does not split" in prediction_gap(runs, {})
    True
    """
    pairs = [(r, r.peak_above_baseline_bytes, r.predicted_above_baseline_bytes) for r in reports]
    pairs = [(r, m, p) for r, m, p in pairs if m is not None and p]
    if not pairs:
        return "No run has both a prediction and a measured peak to compare."
    ratios = [m / p for _, m, p in pairs]
    above = [f"{r.strategy} +{fmt(m - p)}" for r, m, p in pairs if m >= p]
    below = [f"{r.strategy} -{fmt(p - m)}" for r, m, p in pairs if m < p]
    text = (
        f"Measured peaks came to {min(ratios):.2f} to {max(ratios):.2f} times the predictions. "
        + (f"Above the prediction: {', '.join(above)}" if above else "")
        + ("; " if above and below else "")
        + (f"{'b' if above else 'B'}elow it: {', '.join(below)}" if below else "")
        + ". The predictions are arithmetic on the weights alone (what a strategy holds of the checkpoint, plus "
        "the largest tensor in flight where it expects one); a measured peak is the whole process, load and "
        "first forward. "
    )
    predicted = {r.strategy: p for r, _, p in pairs}
    mapped = [(r, at_peak[r.strategy]) for r, _, _ in pairs
              if None not in at_peak.get(r.strategy, (None, None)) and r.checkpoint_bytes
              and at_peak[r.strategy][0] < 0.5 * r.checkpoint_bytes]
    if not at_peak or not any(None not in v for v in at_peak.values()):
        return text + ("This probe does not split RSS into anonymous and file-backed memory, so the difference "
                       "is not taken apart here.")
    if not mapped:
        return text + ("Every run here held its weights in anonymous memory, so the difference is what running "
                       "the model adds: the forward's activations, Python objects, code paged in.")
    files = [f"{r.strategy} {grown[1] / r.checkpoint_bytes:.0%}" for r, grown in mapped]
    fewer = any(grown[1] < predicted[r.strategy] for r, grown in mapped)  # its mapped pages fell short
    return text + (
        "At the highest sample of each run that maps the checkpoint, anonymous memory had grown by "
        + ", ".join(f"{r.strategy} {fmt(grown[0])}" for r, grown in mapped)
        + ": not weights (a mapped weight is file-backed) but what running the model adds, which no prediction "
        "counts: the forward's activations, the model's Python objects and buffers, what torch's allocator keeps. "
        "File-backed memory had grown by " + ", ".join(f"{f} of the checkpoint" for f in files)
        + ": the mapped weights, plus the code of torch and transformers paged in for the forward"
        + ("; and a mapped page counts only once touched, so a weight the load and forward did not read in full "
           "counts less than its bytes, and a tensor the arithmetic puts in flight may never be copied" if fewer
           else "")
        + ". What running adds grows more slowly than the weights, so its share falls as the checkpoint grows."
    )


def budget_limits(budget_reports: Sequence[Report], budget_bytes: int) -> str:
    """Lesson 05's account, beside the table of runs under a budget, of what the limit really was: the room the
    budget left above each load's own baseline (the cgroup's ``limit_bytes``), counted on what the load charged
    after it started, so a stopped run's peak RSS can be below the budget.

    >>> from widgetlib.measure.report import Report
    >>> def run(strategy, outcome, peak, usage, mode="cgroup"):
    ...     return Report(strategy=strategy, checkpoint="/ck", checkpoint_bytes=100, outcome=outcome,
    ...                   baseline_rss_bytes=450, peak_rss_bytes=peak, budget_mode=mode,
    ...                   limit_events={"limit_bytes": 30, "max_usage_bytes": usage})
    >>> text = budget_limits([run("normal", "stopped_by_budget", 470, 30), run("manual_shards", "ok", 475, 30)], 480)
    >>> text.split(". ")[0]
    'The budget, 480 B, is the simulated machine'
    >>> "a cgroup limit of 30 B" in text, "charged 30 B of its 30 B limit, its RSS 20 B above its baseline" in text
    (True, True)
    >>> "peak RSS (470 B) is below the budget though it did not finish under it" in text
    True
    >>> "below the budget though" in budget_limits([run("normal", "stopped_by_budget", 490, 30)], 480)
    False
    >>> other = run("manual_shards", "ok", 475, 30)
    >>> other.limit_events["limit_bytes"] = 3 * 10**7
    >>> "a cgroup limit of 30 B to 30 MB." in budget_limits([run("normal", "ok", 470, 30), other], 480)
    True
    >>> budget_limits([run("normal", "stopped_by_budget", 490, None, "watchdog")], 480)[:40]
    'No cgroup: the watchdog compared what it'
    """
    limited = [r for r in budget_reports if r.budget_mode == "cgroup" and (r.limit_events or {}).get("limit_bytes")]
    if not limited:
        return ("No cgroup: the watchdog compared what it counts (said below) with the budget itself, so a run "
                "stopped when that count crossed it.")
    by_size = sorted(r.limit_events["limit_bytes"] for r in limited)
    limits = [fmt(by_size[0])] if fmt(by_size[0]) == fmt(by_size[-1]) else [fmt(by_size[0]), fmt(by_size[-1])]
    text = (
        f"The budget, {fmt(budget_bytes)}, is the simulated machine. What the kernel enforced on each load was the "
        "room that machine had left above the load's own baseline (Python, torch and transformers already in "
        "use, charged where they were loaded): a cgroup limit of "
        + (limits[0] if len(limits) == 1 else f"{limits[0]} to {limits[-1]}")
        + ". The cgroup counts everything the load brought in after it started, the page cache of the files it "
        "read and the kernel's own memory for it included, not only the pages its RSS shows (and reclaims what "
        "it can of that before it kills)."
    )
    for r in limited:
        if r.outcome != "stopped_by_budget":
            continue
        usage = r.limit_events.get("max_usage_bytes")
        grown = r.peak_above_baseline_bytes
        text += (f" `{r.strategy}` was stopped"
                 + (f" when it had charged {fmt(usage)} of its {fmt(r.limit_events['limit_bytes'])} limit"
                    if usage is not None else "")
                 + (f", its RSS {fmt(grown)} above its baseline" if grown is not None else "")
                 + (f": so its peak RSS ({fmt(r.peak_rss_bytes)}) is below the budget though it did not finish "
                    "under it" if r.peak_rss_bytes is not None and r.peak_rss_bytes < budget_bytes else "")
                 + ".")
    return text


def same_logits_sentence(reports: Sequence[Report], same: bool) -> str:
    """Whether the runs' logits agreed (``same``, from ``teach.same_logits``), in words: "bit-identical" only
    when every checksum matched, else by how much the sampled logits differ.

    >>> from widgetlib.measure.report import Report
    >>> def run(sha, sample=None):
    ...     return Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1, logits_sha256=sha,
    ...                   logits_sample=sample)
    >>> same_logits_sentence([run("a")] * 4, True)
    'All 4 runs produced bit-identical logits.'
    >>> same_logits_sentence([run("a", [3.0, 1.0]), run("b", [3.0000002, 1.0])], True).split(";")[0]
    'All 2 runs produced the same logits to float rounding (their checksums differ'
    >>> same_logits_sentence([run("a", [3.0]), run("b", [3.5])], False)
    'The 2 runs produced DIFFERENT logits (max |diff| 0.5 among 1 sampled logits).'
    """
    diff = logits_max_abs_diff(reports)
    if diff == 0.0 and same:
        return f"All {len(reports)} runs produced bit-identical logits."
    sampled = max((len(r.logits_sample or []) for r in reports), default=0)
    measured = f"max |diff| {diff:.2g} among {sampled} sampled logits" if diff is not None else "no samples to compare"
    if same:
        return (f"All {len(reports)} runs produced the same logits to float rounding (their checksums differ; "
                f"{measured}, within {LOGITS_RTOL:g} of the largest logit): another order of the same float "
                "sums changes the last digits.")
    return f"The {len(reports)} runs produced DIFFERENT logits ({measured})."


def budget_room(budget_bytes: int, basis: str, too_big: Report, fits: Sequence[Report],
                held: Mapping[str, int | None]) -> str:
    """Lesson 05's account of a simulated machine's budget: baseline plus room, and what the room was set from
    (``basis`` as ``teach.limit_budget`` returns it; ``held`` is each strategy's non-reclaimable growth).

    >>> from widgetlib.measure.report import Report
    >>> normal = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=100, baseline_rss_bytes=50,
    ...                 peak_rss_bytes=260)
    >>> light = Report(strategy="manual_shards", checkpoint="/ck", checkpoint_bytes=100, baseline_rss_bytes=50,
    ...                peak_rss_bytes=170)
    >>> budget_room(210, "total", normal, [light], {})[:52]
    'Budget: **210 B** = baseline 50 B + room 160 B, half'
    >>> held = {"normal": 200, "manual_shards": 20}
    >>> print(budget_room(180, "non-reclaimable", normal, [light], held))  # doctest: +NORMALIZE_WHITESPACE
    Budget: **180 B** = baseline 50 B + room 130 B. Above, the memory each load could not give back (anonymous +
    shared) grew by normal 200 B, manual_shards 20 B. The room holds what the three lighter loads could not give
    back, and not what `normal` could not; but in all, manual_shards's RSS grew by 120 B, more than the room.
    """
    baseline = too_big.baseline_rss_bytes or 0
    room = budget_bytes - baseline
    if basis != "non-reclaimable":
        return (
            f"Budget: **{fmt(budget_bytes)}** = baseline {fmt(baseline)} + room {fmt(room)}, halfway between the "
            "one-copy strategies' peaks and `normal`'s. This probe does not split RSS into anonymous and "
            "file-backed memory, so the budget is set from total peaks."
        )
    heaviest = max(fits, key=lambda r: r.peak_above_baseline_bytes or 0)
    return (
        f"Budget: **{fmt(budget_bytes)}** = baseline {fmt(baseline)} + room {fmt(room)}. Above, the memory each "
        "load could not give back (anonymous + shared) grew by "
        + ", ".join(f"{name} {fmt(grown)}" for name, grown in held.items())
        + f". The room holds what the three lighter loads could not give back, and not what `normal` could not; "
        f"but in all, {heaviest.strategy}'s RSS grew by {fmt(heaviest.peak_above_baseline_bytes)}, more than the "
        "room."
    )


def budget_outcomes(budget_reports: Sequence[Report], unbudgeted: Mapping[str, Report], budget_bytes: int,
                    room_bytes: int, *, exact: bool) -> str:
    """Lesson 05's reading of the runs made under a budget: who enforced it (the kernel in a cgroup, or the
    watchdog, and what that counts), who was stopped, who finished though it touched more than the room
    (``room_bytes``, the budget less the baseline) when unbudgeted (``unbudgeted`` maps each strategy to that
    run), and, where the peaks are not exact
    (``exact=False``: the portable probe), why they need not separate the strategies.

    >>> from widgetlib.measure.report import Report
    >>> def run(strategy, outcome, peak, kills, mode="cgroup"):
    ...     return Report(strategy=strategy, checkpoint="/ck", checkpoint_bytes=100, outcome=outcome,
    ...                   baseline_rss_bytes=50, peak_rss_bytes=peak, budget_mode=mode,
    ...                   limit_events={"oom_kill": kills})
    >>> under = [run("normal", "stopped_by_budget", 170, 1), run("manual_shards", "ok", 160, 0)]
    >>> free = {"normal": run("normal", "ok", 260, 0), "manual_shards": run("manual_shards", "ok", 190, 0)}
    >>> text = budget_outcomes(under, free, 180, 130, exact=True)
    >>> text.startswith("The kernel enforced the budget. It killed `normal` (OOM kills: 1)")
    True
    >>> "manual_shards touched more than the room" in text, "peaked above the budget" in text
    (True, False)
    >>> watched = [run("normal", "stopped_by_budget", 170, None, "watchdog")]
    >>> watched[0].details["budget_counts"] = "the RSS at start-up plus the growth of RssAnon + RssShmem"
    >>> text = budget_outcomes(watched, free, 180, 130, exact=False)
    >>> "the watchdog enforced the budget" in text, "nothing is dropped" in text, "need not separate" in text
    (True, True, True)
    >>> watched[0].options["budget_note"] = "the watchdog was used: your user manager does not have memory"
    >>> budget_outcomes(watched, free, 180, 130, exact=True).endswith("does not have memory.")
    True
    """
    stopped = next(r for r in budget_reports if r.strategy == "normal")
    finished = [r for r in budget_reports if r.ok]
    squeezed = [r.strategy for r in finished if (unbudgeted[r.strategy].peak_above_baseline_bytes or 0) > room_bytes]
    over = [r.strategy for r in finished if r.peak_rss_bytes is not None and r.peak_rss_bytes > budget_bytes]
    if stopped.budget_mode == "cgroup":
        text = (
            "The kernel enforced the budget. "
            + (f"It killed `normal` (OOM kills: {stopped.oom_kills}): a random-weight model and a state dict read "
               "into RAM are anonymous memory, and there was nothing to drop for them. "
               if stopped.outcome == "stopped_by_budget" else "")
            + (f"{', '.join(squeezed)} touched more than the room when unbudgeted, and finished anyway: what they "
               "map from the checkpoint is file-backed, and the kernel may drop such pages under the limit and read "
               "them again when they are touched. " if squeezed else "")
            + "The major faults in the table count pages read from disk through a mapping (a plain file read is "
            "not a fault): the cold cache's first reads and any re-reads, paid in time."
            + (f" {', '.join(over)} peaked above the budget: pages another process had already brought into the "
               "page cache (another notebook reading the same checkpoint, say) are charged to that process, not to "
               "this limit." if over else "")
        )
    else:
        counts = stopped.details.get("budget_counts", "the RSS")
        text = (
            f"No memory cgroup was used here, so the watchdog enforced the budget: it counts {counts}, and stops "
            "the run when that crosses the budget. "
            + ("That is what a kernel limit cannot reclaim, so the outcomes are the ones a real limit gives, but "
               "nothing is dropped and read again: the watchdog only watches."
               if "RssAnon" in str(counts) else
               "Counting file-backed pages too makes it stricter than a real kernel limit, which would drop those "
               "pages and read them again.")
        )
        note = (stopped.options or {}).get("budget_note")
        if note:  # why no real limit could be made here, and what would enable one
            text += f"\n\nWhy no kernel limit: {note.removeprefix('the watchdog was used: ')}."
    if not exact:
        text += ("\n\nThis OS's peaks may include each process's start-up, so a budget set from them need not "
                 "separate the strategies here.")
    return text

