"""What the probe records, and the clock it is stamped on: :class:`MemorySample`, :class:`Event`, :func:`now_s`.

A leaf (stdlib only, no other widgetlib module): the sampler (:mod:`widgetlib.measure.memory`), the bounded sample
lists (:mod:`widgetlib.measure.thinning`) and the record of a run (:mod:`widgetlib.measure.timeline`) all hold
these, and :mod:`widgetlib.measure.memory` re-exports them, where the lessons and widgets import them from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Event", "MemorySample", "non_reclaimable_bytes", "now_s"]


def now_s() -> float:
    """Return the one clock every sample and event in Offload Lab is stamped with, in seconds.

    It is ``time.monotonic()``: never jumps with wall-clock changes, and is shared by all processes on the
    machine, so stamps from a child process compare directly with the parent's.

    >>> a = now_s(); b = now_s()
    >>> b >= a
    True
    """
    return time.monotonic()


@dataclass(frozen=True)
class MemorySample:
    """One reading of a process's memory.

    ``t_s`` is on the :func:`now_s` clock when taken; inside a :class:`Timeline` it is seconds since
    ``Timeline.t0_s``. Fields that the platform cannot report are ``None``. On Linux ``rss_file_bytes``
    includes shared-memory pages (``RssShmem``): a checkpoint on tmpfs counts as file-backed, and so do
    ``MAP_SHARED`` anonymous mappings (torch's ``share_memory_()``, Python's ``mmap.mmap(-1, n)``).

    >>> s = MemorySample(t_s=1.5, rss_bytes=2_000_000, rss_anon_bytes=1_500_000, rss_file_bytes=500_000,
    ...                  hwm_bytes=3_000_000)
    >>> s.rss_bytes - s.rss_anon_bytes == s.rss_file_bytes, s.uss_bytes
    (True, None)
    """

    t_s: float
    rss_bytes: int
    rss_anon_bytes: int | None
    rss_file_bytes: int | None
    hwm_bytes: int | None
    uss_bytes: int | None = None
    rss_shmem_bytes: int | None = None  # Linux: RssShmem, also counted in rss_file_bytes


@dataclass(frozen=True)
class Event:
    """A labelled moment on the :func:`now_s` clock, e.g. ``Event(t_s, "shard 3/6 read", "shard_read")``.

    ``kind`` is a short tag the plot groups markers by: ``"shard_read"``, ``"shard_assigned"``,
    ``"shard_freed"``, ``"dispatch"``, ``"forward"``, ``"phase"`` or the default ``"info"``.

    >>> Event(0.25, "shard 1/2 read", "shard_read")
    Event(t_s=0.25, label='shard 1/2 read', kind='shard_read')
    """

    t_s: float
    label: str
    kind: str = "info"


def non_reclaimable_bytes(sample: MemorySample) -> int:
    """What the kernel cannot drop under pressure (no swap): RssAnon + RssShmem on Linux; elsewhere, where
    no split is known, the whole RSS (the only honest figure there is, and an over-count of file pages).

    >>> non_reclaimable_bytes(MemorySample(0.0, 900, 600, 300, None, None, 50))
    650
    >>> non_reclaimable_bytes(MemorySample(0.0, 900, None, None, None))
    900
    """
    if sample.rss_anon_bytes is None:
        return sample.rss_bytes
    return sample.rss_anon_bytes + (sample.rss_shmem_bytes or 0)
