"""Reading figures off Reports: the sample at a moment, what a run added of the memory a kernel cannot reclaim,
and by how much runs' logits differ. Shared by the lesson helpers (``widgetlib.teach``) and the exercise checks;
``widgetlib.teach`` re-exports them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..measure.samples import MemorySample, non_reclaimable_bytes

if TYPE_CHECKING:
    from ..measure.report import Report

__all__ = ["LOGITS_RTOL", "logits_max_abs_diff", "non_reclaimable_growth", "same_logits", "sample_at"]

# Two runs' logits are "equal to float rounding" when no sampled logit differs by more than this share of the
# largest |logit|: float32 keeps about seven significant digits, and another order of the same sums (a fused
# MoE expert against its separate pieces) changes the last one or two.
LOGITS_RTOL = 1e-5


def _samples(report: Report) -> list[MemorySample]:
    return report.timeline.samples


def sample_at(report: Report, t_s: float) -> MemorySample | None:
    """The first sample taken at or after ``t_s`` (the last sample if none), or None without samples."""
    samples = _samples(report)
    if not samples:
        return None
    i = bisect_left([s.t_s for s in samples], t_s)
    return samples[min(i, len(samples) - 1)]


def non_reclaimable_growth(report: Report) -> int | None:
    """What a run added, from its load start to its peak, of the memory a kernel cannot drop under pressure
    (RssAnon + RssShmem: the Report's ``non_reclaimable_peak_bytes`` minus that figure at the first sample of the
    load). None where the probe gives no anonymous/file split (macOS, Windows, ``OFFLOAD_LAB_PROBE=portable``).

    >>> from widgetlib.measure.report import Report
    >>> non_reclaimable_growth(Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1)) is None
    True
    """
    after = [s for s in report.timeline.samples if s.t_s >= 0]
    if report.non_reclaimable_peak_bytes is None or not after or after[0].rss_anon_bytes is None:
        return None
    return max(report.non_reclaimable_peak_bytes - non_reclaimable_bytes(after[0]), 0)


def logits_max_abs_diff(reports: Iterable[Report]) -> float | None:
    """The largest |difference| between a finished run's sampled logits and the first finished run's: 0.0 when
    every checksum matches (bit-identical), None when a run that differs has no sample to compare.

    >>> from widgetlib.measure.report import Report
    >>> def run(sha, sample):
    ...     return Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1, logits_sha256=sha,
    ...                   logits_sample=sample)
    >>> logits_max_abs_diff([run("a", [1.0, 2.0]), run("a", [1.0, 2.0])])
    0.0
    >>> round(logits_max_abs_diff([run("a", [1.0, 2.0]), run("b", [1.0, 2.0000005])]), 9)
    5e-07
    >>> logits_max_abs_diff([run("a", [1.0]), run("b", None)]) is None
    True
    """
    done = [r for r in reports if r.ok]
    if len({r.logits_sha256 for r in done}) <= 1:
        return 0.0
    if any(r.logits_sample is None for r in done):
        return None
    first = done[0].logits_sample or []
    return max(abs(a - b) for r in done[1:] for a, b in zip(first, r.logits_sample or [], strict=True))


def same_logits(reports: Iterable[Report]) -> bool:
    """True when there are finished runs and their logits are the same: bit-identical, or equal to float rounding
    (no sampled logit further from the first run's than :data:`LOGITS_RTOL` times the largest |logit|);
    ``teach.same_logits_sentence`` says which.

    >>> from widgetlib.measure.report import Report
    >>> def run(sha, sample):
    ...     return Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1, logits_sha256=sha,
    ...                   logits_sample=sample)
    >>> same_logits([run("a", [4.0, -2.0]), run("b", [4.0000001, -2.0])])
    True
    >>> same_logits([run("a", [4.0]), run("b", [4.1])]), same_logits([])
    (False, False)
    """
    done = [r for r in reports if r.ok]
    diff = logits_max_abs_diff(done)
    if not done or diff is None:
        return False
    largest = max((abs(v) for r in done for v in (r.logits_sample or [])), default=0.0)
    return diff == 0.0 or diff <= LOGITS_RTOL * largest
