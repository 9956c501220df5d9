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
    "budget_room",
    "cold_cache_price",
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

