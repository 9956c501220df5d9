"""Offload Lab's library: load a real Hugging Face checkpoint four ways and measure what happens to RAM.

The layers, lowest first (imports only ever point down):

- ``widgetlib.core`` — options (``core/options.py``: dtypes, formats, ``LoadOptions``, every option's default),
  sizes, learner-facing errors, checkpoint folders (build offline, inspect), the strategy registry
  (``core/registry.py``: each strategy's loader, predicted peak, options, colour, advice);
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
from .core.options import BYTES_PER_NUMBER
from .core.sizes import format_bytes, parse_size

__version__ = "0.1.0"

# The public API, cut for learners and lessons: what a notebook imports. Internals (Sampler, MemorySample,
# Event, RunHandle, ShardInfo, PeakEstimate, ...) stay importable from their modules, not from here.
# Lazy, (module, attribute), so that importing the core never pulls in torch, transformers, ipywidgets or
# plotly before they are needed (and so the import-direction test can hold).
_LAZY = {
    # checkpoints: build and find (checkpoints, imports torch), read (hf_folder: headers only, no torch)
    "CheckpointInfo": ("widgetlib.core.hf_folder", "CheckpointInfo"),
    "make_checkpoint": ("widgetlib.core.checkpoints", "make_checkpoint"),
    "demo_checkpoint": ("widgetlib.core.checkpoints", "demo_checkpoint"),
    "inspect_checkpoint": ("widgetlib.core.hf_folder", "inspect_checkpoint"),
    "read_shard": ("widgetlib.core.hf_folder", "read_shard"),
    "shard_files": ("widgetlib.core.hf_folder", "shard_files"),
    # the strategies: the registry, the bare loads, their predicted peaks
    "Strategy": ("widgetlib.core.registry", "Strategy"),
    "get_strategy": ("widgetlib.core.registry", "get_strategy"),
    "strategies": ("widgetlib.core.registry", "strategies"),
    "register": ("widgetlib.core.registry", "register"),
    "registered": ("widgetlib.core.registry", "registered"),
    "choose_when": ("widgetlib.core.registry", "choose_when"),
    "LoadOptions": ("widgetlib.core.options", "LoadOptions"),
    "load_model": ("widgetlib.core.loading", "load_model"),
    "build_empty_model": ("widgetlib.core.strategies", "build_empty_model"),
    "forward_checksum": ("widgetlib.core.strategies", "forward_checksum"),
    "low_cpu_mem_usage_truth": ("widgetlib.core.strategies", "low_cpu_mem_usage_truth"),
    "estimate_peak": ("widgetlib.core.estimates", "estimate_peak"),
    # measuring
    "read_memory": ("widgetlib.measure.memory", "read_memory"),
    "Timeline": ("widgetlib.measure.memory", "Timeline"),
    "Report": ("widgetlib.measure.report", "Report"),
    "run": ("widgetlib.measure.runner", "run"),
    "start": ("widgetlib.measure.runner", "start"),
    "default_max_memory_bytes": ("widgetlib.measure.runner", "default_max_memory_bytes"),
    # will it fit? each strategy's predicted peak for a RAM, from the weights' headers or config.json alone
    "plan": ("widgetlib.measure.plan", "plan"),
    # a learner's own from_pretrained line, read against the installed source, then measured
    "explain_call": ("widgetlib.measure.explain", "explain_call"),
    # widgets
    "MemoryPlot": ("widgetlib.widgets", "MemoryPlot"),
    "StrategyPanel": ("widgetlib.widgets", "StrategyPanel"),
    "CompareBoard": ("widgetlib.widgets", "CompareBoard"),
    "default_sweep_values": ("widgetlib.widgets", "default_sweep_values"),
}

__all__ = [
    "BYTES_PER_NUMBER",
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
    if name == "STRATEGIES":
        # Read from the registry at each lookup (never cached), so a strategy registered later is listed too.
        from .core.registry import strategy_names

        return strategy_names()
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'widgetlib' has no attribute {name!r}") from None
    value = getattr(import_module(module_name), attribute)
    globals()[name] = value  # cache: the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
