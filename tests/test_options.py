"""One fact, one place: every run option's default, the dtype table, formats and offload modes are defined in
``widgetlib.core.options``, and the runner's signature, the CLI, the registry, LoadOptions and the widgets agree.

A default written twice drifts: ``check_options`` compares a value against the registry's default, so a
default changed in ``start()`` alone would make every run of the other strategies refuse that option.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest
import safetensors.torch
import torch

from widgetlib.cli import build_parser
from widgetlib.core import options, registry
from widgetlib.core.checkpoints import make_checkpoint
from widgetlib.core.options import (
    CHECKPOINT_DEFAULTS,
    DTYPES,
    RUN_DEFAULTS,
    STRATEGY_OPTIONS,
    LoadOptions,
    dtype_from_safetensors,
)
from widgetlib.measure.runner import run, start

RUN_OPTION_NAMES = [f.name for f in dataclasses.fields(RUN_DEFAULTS)]
# start()'s parameters that are not run options: what is loaded, and the callbacks a JSON job cannot carry.
NOT_OPTIONS = {"checkpoint", "strategy", "on_sample", "on_event", "on_done", "queue"}


def _subparser(name: str) -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices[name]


def test_start_and_run_take_exactly_the_run_options_with_their_defaults() -> None:
    for function in (start, run):
        parameters = inspect.signature(function).parameters
        assert sorted(set(parameters) - NOT_OPTIONS) == sorted(RUN_OPTION_NAMES), function.__name__
        assert {name: parameters[name].default for name in RUN_OPTION_NAMES} == dataclasses.asdict(RUN_DEFAULTS)


@pytest.mark.parametrize("command", ["load", "compare"])
def test_the_cli_defaults_are_the_run_defaults(command: str) -> None:
    actions = {a.dest: a for a in _subparser(command)._actions}
    offered = [name for name in RUN_OPTION_NAMES if name in actions]
    assert {"dtype", "forwards", "forward_tokens", "max_memory", "budget", "cold_cache", "threads"} <= set(offered)
    assert {name: actions[name].default for name in offered} == {
        name: getattr(RUN_DEFAULTS, name) for name in offered
    }


def test_the_registry_and_load_options_read_the_same_defaults() -> None:
    assert registry.STRATEGY_OPTIONS is STRATEGY_OPTIONS
    assert STRATEGY_OPTIONS == {name: getattr(RUN_DEFAULTS, name) for name in STRATEGY_OPTIONS}
    shared = [f for f in dataclasses.fields(LoadOptions) if f.name in RUN_OPTION_NAMES]
    assert {f.name for f in shared} == {"dtype", "offload_folder", "offload_via", "low_cpu_mem_usage",
                                        "offload_and_reload", "forward_tokens", "call", "code"}
    assert {f.name: f.default for f in shared} == {f.name: getattr(RUN_DEFAULTS, f.name) for f in shared}


def test_the_cli_defaults_pass_the_option_check_for_every_strategy() -> None:
    # What `offload-lab load` sends when nothing is given must mean "not given" to every strategy.
    actions = {a.dest: a.default for a in _subparser("load")._actions}
    given = {name: actions[name] for name in STRATEGY_OPTIONS if name in actions}
    for strategy in registry.strategy_names():
        registry.check_options(strategy, given)


def test_the_widgets_and_make_checkpoint_use_the_same_defaults() -> None:
    from widgetlib.widgets import CompareBoard, StrategyPanel

    for cls in (StrategyPanel, CompareBoard):
        parameters = inspect.signature(cls.__init__).parameters
        for name in set(parameters) & set(RUN_OPTION_NAMES):
            assert parameters[name].default == getattr(RUN_DEFAULTS, name), (cls.__name__, name)
    panel = inspect.signature(StrategyPanel.__init__).parameters
    assert panel["format"].default == CHECKPOINT_DEFAULTS.format
    built = inspect.signature(make_checkpoint).parameters
    assert {f.name: built[f.name].default for f in dataclasses.fields(CHECKPOINT_DEFAULTS)} == dataclasses.asdict(
        CHECKPOINT_DEFAULTS
    )


def test_the_dtype_table_agrees_with_torch_and_safetensors() -> None:
    for name, entry in DTYPES.items():
        assert getattr(torch, name).itemsize == entry.bytes_per_number, name
        assert dtype_from_safetensors(entry.safetensors) == name
    # safetensors' own code table (safetensors/torch.py, _TYPES): every code it reads maps to the same dtype.
    for code, dtype in safetensors.torch._TYPES.items():
        assert dtype_from_safetensors(code) == str(dtype).removeprefix("torch."), code
    assert options.LOAD_DTYPES == ("float32", "bfloat16", "float16")
    assert options.DTYPE_CHOICES == ("keep", *options.LOAD_DTYPES)
    assert options.BYTES_PER_NUMBER == {"float32": 4, "bfloat16": 2, "float16": 2}
