"""The sentences lessons 03 and 05 build from their runs' figures: each one chooses its wording from the figures
at hand (a cold read that did or did not stand out, a budget the kernel or a watchdog enforced), so every branch
is written, and tested, here; the lessons keep their teaching text and call these for the figures.

Only figures of the Reports passed in are read; nothing here imports torch, the widgets or ``teach`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..core.sizes import format_bytes as fmt

if TYPE_CHECKING:
    from ..measure.report import Report

__all__ = [
    "SLOWER_FACTOR",
    "budget_outcomes",
    "budget_limits",
    "budget_room",
    "cold_cache_price",
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
    """
    most_on_disk = most.bytes_on("disk")
    return (
        f"With the least RAM the peak was {fmt(least.peak_above_baseline_bytes)} above baseline against "
        f"{fmt(most.peak_above_baseline_bytes)} with the most. The times are shown, not ranked: with the "
        "offloaded files in the page cache, bringing a weight back is a copy in RAM, and the difference between "
        "these runs can be smaller than the noise between two runs of the same one. The cold-cache runs below "
        "show what the disk costs."
        + (f" Even with `max_memory` equal to all the weights' bytes, {fmt(most_on_disk)} went to disk: the "
           "planner counts the model's buffers too (the non-persistent rotary `inv_freq` among them), so the "
           "weights alone no longer fit, and the last module placed goes to disk." if most_on_disk else "")
    )


def cold_cache_price(cold: Report, warm: Report) -> str:
    """Lesson 03's reading of the same offload run with a cold and a warm page cache: what was dropped, whether
    the cold first forward stood out (more than :data:`SLOWER_FACTOR` times the warm one), the major faults.

    >>> from widgetlib.measure.report import Report
    >>> def run(forward_s, faults, dropped=None):
    ...     return Report(strategy="offload_folder", checkpoint="/ck", checkpoint_bytes=1, forward_s=forward_s,
    ...                   major_faults=faults, details={"cold_cache": dropped} if dropped else {})
    >>> text = cold_cache_price(run(0.9, 1200, {"files": 3, "bytes": 6 * 10**7}), run(0.3, 0))
    >>> text.split(". ")[0]
    'Before the cold run, the runner asked the kernel to drop 3 file(s), 60 MB, from the page cache'
    >>> "took 3.0× the warm first forward" in text, "1200 cold against 0 warm" in text
    (True, True)
    >>> "not clearly slower" in cold_cache_price(run(0.4, None), run(0.3, None))
    True
    """
    dropped = cold.details.get("cold_cache", {})
    note = f" ({dropped['note']})" if "note" in dropped else ""
    slower = cold.forward_s > SLOWER_FACTOR * warm.forward_s
    if cold.major_faults is not None and warm.major_faults is not None:
        faults = f"{cold.major_faults} cold against {warm.major_faults} warm. "
    else:
        faults = "not reported by this OS. "
    return (
        f"Before the cold run, the runner asked the kernel to drop {dropped.get('files', 0)} file(s), "
        f"{fmt(dropped.get('bytes', 0))}, from the page cache{note}. "
        + (f"The cold first forward took {cold.forward_s / warm.forward_s:.1f}× the warm first forward: the same "
           "plan, the same forward, so the difference is reading the offloaded weights from this disk. " if slower
           else f"Here the cold first forward was not clearly slower than the warm one (less than {SLOWER_FACTOR}× "
           "it), so the times are shown, not ranked: at this size, on this disk, the reads did not stand out of "
           "the noise between runs; a bigger checkpoint, or a slower disk, makes them show. ")
        + "Major faults: " + faults
        + "A major fault counts a page the process faulted in from disk through a memory mapping; a plain file "
        "read is not a fault, so the count is a lower bound of what came from disk. And the drop is advice: pages "
        "another process still maps, or reads again meanwhile (a second notebook on the same checkpoint), stay in "
        "the cache."
    )


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
    """Whether the runs' logits agreed (``same``, from ``teach.same_logits``), in words.

    >>> same_logits_sentence([None] * 4, True), same_logits_sentence([None] * 2, False)
    ('All 4 runs produced bit-identical logits.', 'All 2 runs produced DIFFERENT logits.')
    """
    return f"All {len(reports)} runs produced {'bit-identical' if same else 'DIFFERENT'} logits."


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
    if not exact:
        text += ("\n\nThis OS's peaks may include each process's start-up, so a budget set from them need not "
                 "separate the strategies here.")
    return text

