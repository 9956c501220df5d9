"""Offload Lab's library: load a real Hugging Face checkpoint four ways and measure what happens to RAM.

The layers, lowest first (imports only ever point down):

- ``widgetlib.core`` — sizes, learner-facing errors, checkpoint folders (build offline, inspect), the four
  loading strategies and their predicted peaks;
- ``widgetlib.measure`` — the memory probe (sampler, kernel peak, Timeline) and the runner that loads in a fresh
  child process and returns a :class:`Report`;
- ``widgetlib.widgets`` — MemoryPlot, StrategyPanel, CompareBoard for JupyterLab (the only place that imports
  ipywidgets and plotly widgets; loaded lazily, so ``import widgetlib`` stays light).

>>> import widgetlib
>>> widgetlib.STRATEGIES
('normal', 'low_cpu_mem_usage', 'offload_folder', 'manual_shards')
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .core.errors import CheckpointError, OffloadLabError, OptionError, RunnerBusyError
from .core.sizes import format_bytes, parse_size

__version__ = "0.1.0"

STRATEGIES = ("normal", "low_cpu_mem_usage", "offload_folder", "manual_shards")

# Names re-exported lazily: (module, attribute). Lazy so that importing the core never pulls in torch,
# transformers, ipywidgets or plotly before they are needed (and so the import-direction test can hold).
_LAZY = {
    "CheckpointInfo": ("widgetlib.core.checkpoints", "CheckpointInfo"),
    "ShardInfo": ("widgetlib.core.checkpoints", "ShardInfo"),
    "make_checkpoint": ("widgetlib.core.checkpoints", "make_checkpoint"),
    "demo_checkpoint": ("widgetlib.core.checkpoints", "demo_checkpoint"),
    "inspect_checkpoint": ("widgetlib.core.checkpoints", "inspect_checkpoint"),
    "estimate_peak": ("widgetlib.core.estimates", "estimate_peak"),
    "PeakEstimate": ("widgetlib.core.estimates", "PeakEstimate"),
    "Event": ("widgetlib.measure.memory", "Event"),
    "MemorySample": ("widgetlib.measure.memory", "MemorySample"),
    "Sampler": ("widgetlib.measure.memory", "Sampler"),
    "Timeline": ("widgetlib.measure.memory", "Timeline"),
    "Report": ("widgetlib.measure.report", "Report"),
    "run": ("widgetlib.measure.runner", "run"),
    "start": ("widgetlib.measure.runner", "start"),
    "RunHandle": ("widgetlib.measure.runner", "RunHandle"),
    "MemoryPlot": ("widgetlib.widgets", "MemoryPlot"),
    "StrategyPanel": ("widgetlib.widgets", "StrategyPanel"),
    "CompareBoard": ("widgetlib.widgets", "CompareBoard"),
}

__all__ = [
    "STRATEGIES",
    "CheckpointError",
    "OffloadLabError",
    "OptionError",
    "RunnerBusyError",
    "format_bytes",
    "parse_size",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'widgetlib' has no attribute {name!r}") from None
    value = getattr(import_module(module_name), attribute)
    globals()[name] = value  # cache: the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
