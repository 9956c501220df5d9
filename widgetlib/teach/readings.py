"""Reading single samples off a :class:`~widgetlib.measure.report.Report`: the sample at a moment, and what a run
added of the memory a kernel cannot reclaim. Shared by the lesson helpers (``widgetlib.teach``) and the exercise
checks; ``widgetlib.teach`` re-exports them.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

from ..measure.samples import MemorySample, non_reclaimable_bytes

if TYPE_CHECKING:
    from ..measure.report import Report

__all__ = ["non_reclaimable_growth", "sample_at"]


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
