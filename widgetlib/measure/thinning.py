"""Bounded sample lists that keep every peak: the one thinning rule that the Sampler (for long runs) and the
live plot (so the browser is not sent more points than it can draw) both use.

Stdlib only, like :mod:`widgetlib.measure.samples`, whose :class:`~widgetlib.measure.samples.MemorySample` it
holds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .samples import MemorySample

__all__ = ["ThinnedSamples"]


class ThinnedSamples:
    """Samples, oldest first, at most ``max_samples`` of them (None: every one). When the list is full it is
    halved by keeping the larger-RSS sample of each neighbouring pair (so the peak survives; a USS value on the
    other one is carried over), and from then on one sample, the largest, is kept per 2, 4, 8, ... readings:
    the whole run stays covered at a coarser step.

    >>> from widgetlib.measure.memory import MemorySample
    >>> kept = ThinnedSamples(max_samples=4)
    >>> for t_s, rss_bytes in enumerate([1, 5, 2, 3, 9, 1, 4, 2, 7]):
    ...     kept.add(MemorySample(t_s, rss_bytes, None, None, None))
    >>> [s.rss_bytes for s in kept.samples()], kept.stride  # halved twice; the peak (9) kept, 7 still pending
    ([5, 9, 7], 4)
    """

    def __init__(self, max_samples: int | None) -> None:
        self.max_samples = max_samples
        self.stride = 1
        self._kept: list[MemorySample] = []
        self._pending: MemorySample | None = None  # the largest of the readings since the last kept one
        self._pending_n = 0

    def add(self, sample: MemorySample) -> None:
        """Take one reading (the caller holds whatever lock guards this list)."""
        if self.max_samples is None:
            self._kept.append(sample)
            return
        self._pending = sample if self._pending is None else _larger(self._pending, sample)
        self._pending_n += 1
        if self._pending_n < self.stride:
            return
        self._kept.append(self._pending)
        self._pending, self._pending_n = None, 0
        if len(self._kept) >= self.max_samples:
            self._kept = _halve(self._kept)
            self.stride *= 2

    def samples(self) -> list[MemorySample]:
        """A new list of what is kept, oldest first, with the newest readings not yet folded into a slot."""
        return self._kept + ([self._pending] if self._pending is not None else [])

    def __bool__(self) -> bool:
        return bool(self._kept) or self._pending is not None


def _larger(a: MemorySample, b: MemorySample) -> MemorySample:
    """The larger-RSS of two samples (the earlier on a tie), keeping a USS reading either of them carries."""
    kept, dropped = (a, b) if a.rss_bytes >= b.rss_bytes else (b, a)
    if kept.uss_bytes is None and dropped.uss_bytes is not None:
        kept = replace(kept, uss_bytes=dropped.uss_bytes)
    return kept


def _halve(samples: list[MemorySample]) -> list[MemorySample]:
    """Fold each neighbouring pair into its larger-RSS sample (an unpaired last sample stays)."""
    kept = [_larger(a, b) for a, b in zip(samples[0::2], samples[1::2], strict=False)]
    if len(samples) % 2:
        kept.append(samples[-1])
    return kept
