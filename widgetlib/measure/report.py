"""The Report: everything one measured run found, as one value that the CLI prints, the widgets draw and the
lesson text quotes. It round-trips through JSON, so a run saved today can be compared tomorrow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from ..core.sizes import format_bytes, format_signed_bytes
from .columns import COLUMNS
from .timeline import Timeline

__all__ = ["DERIVED", "OUTCOMES", "Report"]

OUTCOMES = ("ok", "error", "cancelled", "stopped_by_budget", "killed", "crashed")

# The figures a Report derives from its fields; its JSON form carries them too, for readers without this class.
DERIVED = ("peak_above_baseline_bytes", "peak_ratio", "predicted_above_baseline_bytes", "time_to_first_forward_s")


@dataclass
class Report:
    """One measured load: the figures, the outcome, and the timeline they came from.

    Peaks are RSS of the child process that loaded; ``peak_rss_bytes`` is the kernel's high-water mark (which a
    sampled line can miss), ``sampled_peak_rss_bytes`` the highest sample. ``outcome`` is one of ``OUTCOMES``;
    ``error`` is the one-sentence reason whenever the outcome is not ``"ok"``.

    >>> r = Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=100, baseline_rss_bytes=50,
    ...            peak_rss_bytes=260)
    >>> r.peak_above_baseline_bytes, r.peak_ratio
    (210, 2.1)
    >>> Report.from_json(r.to_json()) == r
    True
    """

    strategy: str
    checkpoint: str
    checkpoint_bytes: int
    checkpoint_format: str | None = None
    outcome: str = "ok"
    error: str | None = None
    error_kind: str | None = None
    baseline_rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    sampled_peak_rss_bytes: int | None = None
    predicted_peak_rss_bytes: int | None = None
    prediction: str | None = None
    load_s: float | None = None
    forward_s: float | None = None
    # Median of the forwards after the first (None with forwards=1): the steady price of where weights live.
    steady_forward_s: float | None = None
    # From the request to the child ready (baseline taken): the start-up the plot does not draw.
    startup_s: float | None = None
    # The child's major page faults (pages read from disk) from the load start to the end of the forwards.
    major_faults: int | None = None
    # What the child read from storage over the same window (/proc/self/io read_bytes, reads and page faults the
    # page cache could not answer); None where the platform has no such counter (macOS, Windows).
    disk_read_bytes: int | None = None
    # The part of it read after the load ended, by the forwards: offloaded weights fetched when their layer runs.
    disk_read_forward_bytes: int | None = None
    # Where peak_rss_bytes came from: "VmHWM" | "ru_maxrss" | "peak_wset" | "sampled".
    peak_source: str | None = None
    # The highest sampled RssAnon + RssShmem after the load start: what a real limit (or the watchdog) counts.
    # None where the platform gives no anonymous/file split (macOS, Windows, the portable probe).
    non_reclaimable_peak_bytes: int | None = None
    offload_folder: str | None = None
    offload_folder_files: int = 0
    offload_folder_bytes: int = 0
    device_map: dict[str, dict[str, int]] = field(default_factory=dict)
    logits_sha256: str | None = None
    # LOGITS_SAMPLE_SIZE of the first forward's logits, evenly spaced: by how much two runs differ, if they do.
    logits_sample: list[float] | None = None
    stopped_by_budget: bool = False
    budget_bytes: int | None = None
    # {"by": "kernel" | "watchdog", "t_s": ..., "rss_bytes": ...} when the budget stopped the run.
    budget_stop: dict[str, Any] | None = None
    # How the budget was enforced: "cgroup" (a kernel memory limit: a cgroup the runner made, or a transient
    # systemd scope; details["budget_mechanism"] says which), "watchdog" (non-reclaimable memory watched), or
    # None (no budget).
    budget_mode: str | None = None
    # What the kernel did under the cgroup: oom_kill, max_usage_bytes, failcnt / max_hits, pgmajfault.
    limit_events: dict[str, Any] | None = None
    max_memory_bytes: int | None = None
    gpu_peak_bytes: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    timeline: Timeline = field(default_factory=lambda: Timeline(t0_s=0.0, samples=[], events=[]))

    # ------------------------------------------------------------------------------- derived figures

    @property
    def ok(self) -> bool:
        """True when the load and the forward pass finished."""
        return self.outcome == "ok"

    @property
    def peak_above_baseline_bytes(self) -> int | None:
        """What the load added to the process at its peak (kernel peak minus baseline)."""
        if self.peak_rss_bytes is None or self.baseline_rss_bytes is None:
            return None
        return self.peak_rss_bytes - self.baseline_rss_bytes

    @property
    def peak_ratio(self) -> float | None:
        """Peak above baseline divided by the checkpoint's bytes: about 2 for normal loading, about 1 for
        meta-device and shard-by-shard loading, below 1 when weights stay on disk."""
        above = self.peak_above_baseline_bytes
        if above is None or not self.checkpoint_bytes:
            return None
        return round(above / self.checkpoint_bytes, 3)

    @property
    def predicted_above_baseline_bytes(self) -> int | None:
        """The prediction made from the checkpoint's headers before the run, above the same baseline as
        :attr:`peak_above_baseline_bytes` (so the two compare directly).

        >>> Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=100, baseline_rss_bytes=50,
        ...        predicted_peak_rss_bytes=255).predicted_above_baseline_bytes
        205
        """
        if self.predicted_peak_rss_bytes is None or self.baseline_rss_bytes is None:
            return None
        return self.predicted_peak_rss_bytes - self.baseline_rss_bytes

    def bytes_on(self, place: str) -> int:
        """Bytes of weights the loaded model placed on ``place`` (``"cpu"``, ``"disk"``, ``"cuda:0"``, ``"meta"``;
        0 where it placed none).

        >>> r = Report(strategy="offload_folder", checkpoint="/ck", checkpoint_bytes=100,
        ...            device_map={"cpu": {"tensors": 3, "bytes": 60}, "disk": {"tensors": 2, "bytes": 40}})
        >>> r.bytes_on("disk"), r.bytes_on("cuda:0")
        (40, 0)
        """
        return int(self.device_map.get(place, {}).get("bytes", 0))

    @property
    def oom_kills(self) -> int | None:
        """How many processes the kernel killed in the run's memory cgroup (None without one).

        >>> Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1, limit_events={"oom_kill": 1}).oom_kills
        1
        """
        return (self.limit_events or {}).get("oom_kill")

    @property
    def time_to_first_forward_s(self) -> float | None:
        """Load plus first forward: a lazy, memory-mapped load moves cost into the forward, so only the sum is fair."""
        if self.load_s is None or self.forward_s is None:
            return None
        return self.load_s + self.forward_s

    # ----------------------------------------------------------------------------------- JSON form

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: every field, the timeline column-oriented, plus the derived figures."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "timeline"}
        data = json.loads(json.dumps(data))  # deep copy through JSON: what is returned is what is written
        data["timeline"] = self.timeline.to_dict()
        for name in DERIVED:
            data[name] = getattr(self, name)
        return data

    def to_json(self, indent: int | None = None) -> str:
        """The report as one JSON document (what ``offload-lab load --json`` prints)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Rebuild a Report from :meth:`to_dict` output (derived keys are ignored)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names and k != "timeline"}
        timeline = Timeline.from_dict(data["timeline"]) if data.get("timeline") else None
        report = cls(**values)
        if timeline is not None:
            report.timeline = timeline
        return report

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Rebuild a Report from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    # ---------------------------------------------------------------------------------- for people

    def summary(self) -> str:
        """A few readable lines: what ran, what it cost, what happened (figures as every table prints them).

        >>> print(Report(strategy="manual_shards", checkpoint="/ck", checkpoint_bytes=10**9,
        ...              baseline_rss_bytes=4*10**8, peak_rss_bytes=14*10**8, load_s=1.5, forward_s=0.25).summary())
        manual_shards on /ck (1.00 GB): ok
          peak RSS 1.40 GB (baseline 400 MB, +1.00 GB = 1.00x the checkpoint)
          load 1.50 s, first forward 0.250 s
        """
        def cell(key: str) -> str:
            return COLUMNS[key].cell(self)

        lines = [f"{self.strategy} on {self.checkpoint} ({cell('checkpoint_bytes')}): {self.outcome}"]
        if self.error:
            lines.append(f"  {self.error}")
        if self.peak_rss_bytes is not None:
            ratio = f" = {cell('peak_ratio')} the checkpoint" if self.peak_ratio is not None else ""
            lines.append(
                f"  peak RSS {cell('peak_rss_bytes')} (baseline {cell('baseline_rss_bytes')}, "
                f"{format_signed_bytes(self.peak_above_baseline_bytes)}{ratio})"
            )
        if self.predicted_peak_rss_bytes is not None:
            lines.append(f"  predicted peak {cell('predicted_peak_rss_bytes')}: {self.prediction}")
        if self.load_s is not None:
            forward = f", first forward {cell('forward_s')}" if self.forward_s is not None else ""
            lines.append(f"  load {cell('load_s')}{forward}")
        if self.offload_folder:
            lines.append(f"  offload folder {self.offload_folder}: {cell('offload_written')} written")
        if self.device_map and set(self.device_map) != {"cpu"}:
            places = ", ".join(f"{place}: {format_bytes(self.bytes_on(place))}" for place in self.device_map)
            lines.append(f"  weights by place: {places}")
        if self.stopped_by_budget and self.budget_stop:
            lines.append(
                f"  stopped at {self.budget_stop['t_s']:.2f} s with RSS {format_bytes(self.budget_stop['rss_bytes'])}"
                f" over the budget of {format_bytes(self.budget_bytes)}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # ------------------------------------------------------------------------------ in a notebook cell

    def __repr__(self) -> str:
        """One short line: strategy, outcome, peak, ratio, times (``to_json()`` keeps everything).

        >>> Report(strategy="manual_shards", checkpoint="/ck", checkpoint_bytes=10**9, baseline_rss_bytes=4 * 10**8,
        ...        peak_rss_bytes=14 * 10**8, load_s=1.5, forward_s=0.25)
        <Report manual_shards: ok, peak 1.40 GB (+1.00 GB = 1.00x the checkpoint), load 1.50 s, forward 0.250 s>
        """
        from .render import report_line  # render imports this module for its types

        return report_line(self)

    def _repr_html_(self) -> str:
        """The widgets' result card, so that ``report`` alone in a cell shows its figures.

        >>> 'class="offload-lab-card"' in Report(strategy="normal", checkpoint="/ck", checkpoint_bytes=1)._repr_html_()
        True
        """
        from .render import report_card_html

        return report_card_html(self)

