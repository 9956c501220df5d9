"""The best honest peak a platform has for a finished run, and where it came from (``Report.peak_source``)."""

from __future__ import annotations

import os
from typing import Any

from .memory import MemorySample, portable_probe

__all__ = ["best_peak"]


def best_peak(final: dict[str, Any], samples: list[MemorySample]) -> tuple[int | None, str | None, int | None]:
    """(peak bytes, its source, the sampled peak) from the child's last message and the samples after ready.

    Sources: the child's own kernel peak (``VmHWM`` on Linux, ``ru_maxrss`` on macOS and under the portable
    probe), the high-water mark read from outside (``VmHWM``; ``peak_wset`` on Windows), and the highest
    sample. Linux keeps RSS counters per CPU and approximately, so a sample can read a few hundred KB above
    VmHWM: the peak is never below a sample the learner can see, but within 1 MiB the kernel's figure keeps
    the name.

    >>> best_peak({"kernel_peak_bytes": 900, "peak_source": "VmHWM"}, [MemorySample(0.1, 800, 1, 1, 850)])
    (900, 'VmHWM', 800)
    >>> best_peak({}, [MemorySample(0.1, 700, None, None, None)])
    (700, 'sampled', 700)
    """
    candidates: list[tuple[int, str]] = []
    kernel_peak = final.get("kernel_peak_bytes")
    if kernel_peak is not None:
        candidates.append((int(kernel_peak), final.get("peak_source") or "VmHWM"))
    sampled_hwm = [s.hwm_bytes for s in samples if s.hwm_bytes is not None]
    if sampled_hwm:  # VmHWM read from outside (Linux), or peak_wset (Windows)
        candidates.append((max(sampled_hwm), "VmHWM" if not portable_probe() and os.name != "nt" else "peak_wset"))
    sampled_peak = max((s.rss_bytes for s in samples), default=None)
    if sampled_peak is not None:
        candidates.append((sampled_peak, "sampled"))
    if not candidates:
        return None, None, None
    peak, source = max(candidates, key=lambda c: c[0])
    if source == "sampled" and len(candidates) > 1 and peak - max(c[0] for c in candidates[:-1]) < 2**20:
        source = max(candidates[:-1], key=lambda c: c[0])[1]  # within counter noise: the kernel's figure
    return peak, source, sampled_peak
