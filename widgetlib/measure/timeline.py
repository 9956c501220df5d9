"""Timeline: one run's memory curve and events, relative to the run's start, serialisable to JSON.

Split out of :mod:`widgetlib.measure.memory` (which re-exports it) so that each module has one job: the probe
and sampler there, the record of a run here; both hold the samples and events of :mod:`widgetlib.measure.samples`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .samples import Event, MemorySample

__all__ = ["Timeline"]

# ----------------------------------------------------------------------------------------------------------
# Timeline: one run's measurements, relative to the run's start, serialisable
# ----------------------------------------------------------------------------------------------------------

_SAMPLE_COLUMNS = (
    "t_s", "rss_bytes", "rss_anon_bytes", "rss_file_bytes", "hwm_bytes", "uss_bytes", "rss_shmem_bytes"
)


def _max_or_none(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass
class Timeline:
    """One run's memory curve and events, with times in seconds since ``t0_s`` (an absolute :func:`now_s`).

    ``baseline_rss_bytes`` is the RSS once the process was ready (imports done, before the load);
    ``kernel_peak_bytes`` the kernel's high-water mark for the run; ``gpu_samples`` are ``(t_s, bytes)`` pairs
    when CUDA was used. :attr:`peak_bytes` is the number to report: a sampled curve can miss a short spike,
    the kernel's mark cannot.

    >>> tl = Timeline.from_absolute(100.0, [MemorySample(100.5, 900, 600, 300, 900)],
    ...                             [Event(100.25, "load", "phase")], kernel_peak_bytes=1000)
    >>> tl.samples[0].t_s, tl.events[0].t_s, tl.sampled_peak_bytes, tl.peak_bytes
    (0.5, 0.25, 900, 1000)
    >>> Timeline.from_json(tl.to_json()) == tl
    True
    """

    t0_s: float
    samples: list[MemorySample]
    events: list[Event]
    baseline_rss_bytes: int | None = None
    kernel_peak_bytes: int | None = None
    gpu_samples: list[tuple[float, int]] = field(default_factory=list)

    @classmethod
    def from_absolute(
        cls, t0_s: float, samples: Iterable[MemorySample], events: Iterable[Event], **kw: Any
    ) -> Timeline:
        """Build a Timeline from stamps on the :func:`now_s` clock, shifting them to be relative to ``t0_s``.

        ``gpu_samples`` passed in ``kw`` are taken as absolute too and shifted the same way. Samples and
        events are sorted by time (stably), so parent and child stamps can be passed in any order.

        >>> tl = Timeline.from_absolute(10.0, [], [Event(12.0, "b"), Event(11.0, "a")],
        ...                             gpu_samples=[(10.5, 7)])
        >>> [(e.t_s, e.label) for e in tl.events], tl.gpu_samples
        ([(1.0, 'a'), (2.0, 'b')], [(0.5, 7)])
        """
        gpu = [(float(t - t0_s), int(n)) for t, n in kw.pop("gpu_samples", [])]
        return cls(
            t0_s=t0_s,
            samples=sorted((replace(s, t_s=s.t_s - t0_s) for s in samples), key=lambda s: s.t_s),
            events=sorted((replace(e, t_s=e.t_s - t0_s) for e in events), key=lambda e: e.t_s),
            gpu_samples=sorted(gpu, key=lambda p: p[0]),
            **kw,
        )

    @property
    def sampled_peak_bytes(self) -> int | None:
        """The largest sampled ``rss_bytes``, or None without samples.

        >>> Timeline(0.0, [MemorySample(0.1, 5, None, None, None), MemorySample(0.2, 7, None, None, None)],
        ...          []).sampled_peak_bytes
        7
        """
        return _max_or_none(s.rss_bytes for s in self.samples)

    @property
    def peak_bytes(self) -> int | None:
        """``max(kernel_peak_bytes, sampled_peak_bytes)``, ignoring whichever is unknown; None if both are.

        >>> Timeline(0.0, [MemorySample(0.1, 7, None, None, None)], [], kernel_peak_bytes=9).peak_bytes
        9
        >>> Timeline(0.0, [], []).peak_bytes is None
        True
        """
        return _max_or_none((self.kernel_peak_bytes, self.sampled_peak_bytes))

    def to_dict(self) -> dict[str, Any]:
        """Return a compact, column-oriented, JSON-ready dict (one list per sample field).

        >>> d = Timeline(0.0, [MemorySample(0.1, 5, 3, 2, 6)], [Event(0.05, "go")]).to_dict()
        >>> d["samples"]["rss_bytes"], d["events"], d["gpu_samples"]
        ([5], [{'t_s': 0.05, 'label': 'go', 'kind': 'info'}], {'t_s': [], 'bytes': []})
        """
        return {
            "t0_s": self.t0_s,
            "samples": {col: [getattr(s, col) for s in self.samples] for col in _SAMPLE_COLUMNS},
            "events": [{"t_s": e.t_s, "label": e.label, "kind": e.kind} for e in self.events],
            "baseline_rss_bytes": self.baseline_rss_bytes,
            "kernel_peak_bytes": self.kernel_peak_bytes,
            "gpu_samples": {
                "t_s": [t for t, _ in self.gpu_samples],
                "bytes": [n for _, n in self.gpu_samples],
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Timeline:
        """Rebuild a Timeline from :meth:`to_dict` output (missing optional keys take their defaults).

        >>> tl = Timeline(1.0, [MemorySample(0.1, 5, 3, 2, 6, 4)], [Event(0.05, "go")], 4, 6, [(0.2, 10)])
        >>> Timeline.from_dict(tl.to_dict()) == tl
        True
        """
        columns = d.get("samples") or {}
        t_col = list(columns.get("t_s", []))
        n = len(t_col)

        def column(name: str) -> list[Any]:
            values = list(columns.get(name) or [None] * n)
            if len(values) != n:
                raise ValueError(f"timeline column {name!r} has {len(values)} values, expected {n}")
            return values

        samples = [
            MemorySample(
                t_s=float(t),
                rss_bytes=int(rss),
                rss_anon_bytes=_int_or_none(anon),
                rss_file_bytes=_int_or_none(file_),
                hwm_bytes=_int_or_none(hwm),
                uss_bytes=_int_or_none(uss),
                rss_shmem_bytes=_int_or_none(shmem),
            )
            for t, rss, anon, file_, hwm, uss, shmem in zip(
                t_col, *(column(c) for c in _SAMPLE_COLUMNS[1:]), strict=True
            )
        ]
        gpu = d.get("gpu_samples") or {}
        return cls(
            t0_s=float(d["t0_s"]),
            samples=samples,
            events=[
                Event(float(e["t_s"]), str(e["label"]), str(e.get("kind", "info")))
                for e in d.get("events", [])
            ],
            baseline_rss_bytes=_int_or_none(d.get("baseline_rss_bytes")),
            kernel_peak_bytes=_int_or_none(d.get("kernel_peak_bytes")),
            gpu_samples=[
                (float(t), int(b)) for t, b in zip(gpu.get("t_s", []), gpu.get("bytes", []), strict=True)
            ],
        )

    def to_json(self) -> str:
        """Return :meth:`to_dict` as JSON; floats are written exactly, so :meth:`from_json` round-trips.

        >>> Timeline(0.0, [], []).to_json()[:12]
        '{"t0_s": 0.0'
        """
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, s: str) -> Timeline:
        """Rebuild a Timeline from :meth:`to_json` output.

        >>> tl = Timeline(3.5, [MemorySample(0.1, 5, None, None, None)], [Event(0.2, "x", "phase")])
        >>> Timeline.from_json(tl.to_json()) == tl
        True
        """
        return cls.from_dict(json.loads(s))


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
