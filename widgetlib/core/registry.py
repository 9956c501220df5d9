"""The strategy registry: everything Offload Lab knows about one way of loading, in one object.

A :class:`Strategy` carries its name, its loader, its peak estimate, the options it accepts, its plot colour
and its one-line "choose it when". The runner, the CLI (``--strategy`` choices), the widgets (panel dropdown,
board, plot colours) and :func:`~widgetlib.core.estimates.estimate_peak` all read this registry, so a fifth
strategy is one :func:`register` call. The four loaders are the functions of ``widgetlib.core.strategies``
themselves, which import torch and transformers only when they run, so importing the registry imports neither.

>>> [s.name for s in strategies()]
['normal', 'low_cpu_mem_usage', 'offload_folder', 'manual_shards']
>>> get_strategy("offload_folder").accepts("max_memory")
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import OptionError
from .learner_code import load_learner_loader, load_learner_safe_load
from .options import STRATEGY_OPTIONS
from .sizes import format_bytes
from .strategies import load_call, load_from_pretrained, load_manual_shards, load_normal, load_offload

if TYPE_CHECKING:
    from pathlib import Path

    from .options import LoadOptions
    from .strategies import Emit, LoadResult

__all__ = [
    "STRATEGY_OPTIONS",
    "EstimateInputs",
    "Strategy",
    "check_options",
    "check_strategy",
    "choose_when",
    "get_strategy",
    "register",
    "registered",
    "strategies",
    "strategy_color",
    "strategy_names",
]

OTHER_COLOR = "#7f7f7f"


@dataclass(frozen=True)
class EstimateInputs:
    """The figures a peak estimate is computed from, all read from the checkpoint's index and headers.

    ``model_bytes`` is the model in the dtype it is loaded in; ``on_disk_bytes`` the checkpoint's tensor bytes;
    ``converts`` whether loading changes the dtype; ``format`` ``"safetensors"`` or ``"bin"``.

    >>> EstimateInputs(100, 100, 10, 50, False, "safetensors").model_bytes
    100
    """

    model_bytes: int
    on_disk_bytes: int
    largest_tensor_bytes: int
    largest_shard_bytes: int
    converts: bool
    format: str
    max_memory_bytes: int | None = None


Loader = Callable[["Path", "LoadOptions", "Emit"], "LoadResult"]
Estimate = Callable[[EstimateInputs], tuple[int, str]]


@dataclass(frozen=True)
class Strategy:
    """One way of loading a checkpoint: ``loader(folder, options, emit)`` does it; ``estimate(inputs)`` returns
    (predicted peak bytes above baseline, the arithmetic in words); ``options`` are the names in
    :data:`STRATEGY_OPTIONS` it accepts; ``color`` its colour in every plot; ``choose_when`` one line of advice.
    ``listed=False`` keeps it out of every list of ways to load (tables, the panel, ``compare``): it is run by name
    only, as ``explain_call`` runs a learner's own call.

    >>> get_strategy("manual_shards").options
    ('offload_and_reload',)
    """

    name: str
    loader: Loader
    estimate: Estimate
    options: tuple[str, ...]
    color: str
    choose_when: str
    listed: bool = True

    def accepts(self, option: str) -> bool:
        """Whether ``option`` (a name in :data:`STRATEGY_OPTIONS`) means something to this strategy.

        >>> get_strategy("normal").accepts("max_memory")
        False
        """
        return option in self.options


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to the registry (last in every list); refuse a name already taken or an unknown option.

    >>> register(get_strategy("normal"))
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.OptionError: a strategy named 'normal' is already registered; pick another name.
    """
    if strategy.name in _REGISTRY:
        raise OptionError(f"a strategy named {strategy.name!r} is already registered; pick another name.",
                          kind="bad_option")
    unknown = [o for o in strategy.options if o not in STRATEGY_OPTIONS]
    if unknown:
        raise OptionError(f"strategy {strategy.name!r} lists unknown option(s) {', '.join(unknown)}; use names "
                          f"from STRATEGY_OPTIONS ({', '.join(STRATEGY_OPTIONS)}).", kind="bad_option")
    _REGISTRY[strategy.name] = strategy
    return strategy


@contextmanager
def registered(strategy: Strategy) -> Iterator[Strategy]:
    """Register ``strategy`` for the ``with`` block only (tests, a lesson's experiment), then remove it.

    >>> extra = Strategy("tmp", get_strategy("normal").loader, get_strategy("normal").estimate, (), "#000", "never")
    >>> with registered(extra):
    ...     "tmp" in strategy_names()
    True
    >>> "tmp" in strategy_names()
    False
    """
    register(strategy)
    try:
        yield strategy
    finally:
        _REGISTRY.pop(strategy.name, None)


def strategies(*, unlisted: bool = False) -> tuple[Strategy, ...]:
    """The registered ways of loading, in registration order (the order every table and plot shows them in);
    ``unlisted=True`` adds the strategies that are run by name only.

    >>> len(strategies()) >= 4, [s.name for s in strategies(unlisted=True) if not s.listed]
    (True, ['from_pretrained_call', 'learner_loader', 'learner_safe_load'])
    """
    return tuple(s for s in _REGISTRY.values() if unlisted or s.listed)


def strategy_names() -> tuple[str, ...]:
    """The registered strategies' names, in order (what ``widgetlib.STRATEGIES`` returns).

    >>> strategy_names()[:2]
    ('normal', 'low_cpu_mem_usage')
    """
    return tuple(s.name for s in _REGISTRY.values() if s.listed)


def get_strategy(name: str) -> Strategy:
    """The registered strategy called ``name``, or a learner-facing error naming the ones there are.

    >>> get_strategy("fast")
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.OptionError: strategy='fast' is not a strategy; use one of normal, \
low_cpu_mem_usage, offload_folder, manual_shards.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise OptionError(
            f"strategy={name!r} is not a strategy; use one of {', '.join(strategy_names())}.", kind="unknown_strategy"
        ) from None


def check_strategy(name: str) -> str:
    """Return ``name`` if it is a registered strategy, else raise the learner-facing error of :func:`get_strategy`.

    >>> check_strategy("manual_shards")
    'manual_shards'
    """
    return get_strategy(name).name


def check_options(name: str, given: Mapping[str, Any]) -> Strategy:
    """The one place an option is checked against a strategy: refuse any entry of ``given`` (option name to
    value) that is set (not its :data:`STRATEGY_OPTIONS` default) for a strategy that does not accept it.

    >>> check_options("offload_folder", {"max_memory": "300MB"}).name
    'offload_folder'
    >>> check_options("normal", {"max_memory": None}).name
    'normal'
    >>> check_options("normal", {"max_memory": "300MB"})
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.OptionError: max_memory='300MB' means nothing to strategy 'normal' \
(only offload_folder uses it); leave it out or pick that strategy.
    """
    strategy = get_strategy(name)
    for option, value in given.items():
        if option in STRATEGY_OPTIONS and value != STRATEGY_OPTIONS[option] and not strategy.accepts(option):
            users = ([s.name for s in strategies() if s.accepts(option)]
                     or [s.name for s in strategies(unlisted=True) if s.accepts(option)])
            raise OptionError(
                f"{option}={value!r} means nothing to strategy {name!r} (only {', '.join(users) or 'none'} "
                f"use{'s' if len(users) == 1 else ''} it); leave it out or pick that strategy.",
                kind="bad_option",
            )
    return strategy


def strategy_color(name: str) -> str:
    """The colour ``name`` is drawn in on every plot; grey for a run that is not a registered strategy.

    >>> strategy_color("manual_shards"), strategy_color("a sweep")
    ('#1f77b4', '#7f7f7f')
    """
    strategy = _REGISTRY.get(name)
    return strategy.color if strategy is not None else OTHER_COLOR


def choose_when() -> dict[str, str]:
    """Each strategy's one-line "choose it when", in registry order (the advice tables in the lessons).

    >>> choose_when()["offload_folder"]
    'not even one copy fits: some weights stay on disk, every forward pays for it'
    """
    return {s.name: s.choose_when for s in strategies()}


# ------------------------------------------------------------------------------- the four strategies


def _estimate_normal(x: EstimateInputs) -> tuple[int, str]:
    peak = x.model_bytes + x.on_disk_bytes + (x.model_bytes if x.converts else 0)
    return peak, (f"random-weight model ({format_bytes(x.model_bytes)}) + whole state dict read "
                  f"({format_bytes(x.on_disk_bytes)}) at once")


def _estimate_from_pretrained(x: EstimateInputs) -> tuple[int, str]:
    extra = x.largest_shard_bytes if x.format == "bin" else x.largest_tensor_bytes
    what = "largest shard unpickled" if x.format == "bin" else "largest tensor in flight"
    return x.model_bytes + extra, (f"model built on meta then filled: one copy ({format_bytes(x.model_bytes)}) "
                                   f"+ {what} ({format_bytes(extra)})")


def _estimate_offload(x: EstimateInputs) -> tuple[int, str]:
    budget = x.model_bytes if x.max_memory_bytes is None else min(x.max_memory_bytes, x.model_bytes)
    if x.format == "bin":
        # A .bin has no in-place path: every shard is memory-mapped and read through to be written to the
        # offload folder, so its pages (file-backed, reclaimable) can all show in RSS at once.
        extra, what = x.on_disk_bytes, "the .bin files' pages read through"
    else:
        extra, what = x.largest_tensor_bytes, "largest tensor in flight"
    return budget + extra, (f"weights kept in RAM up to max_memory ({format_bytes(budget)}) + {what} "
                            f"({format_bytes(extra)})")


def _estimate_call(x: EstimateInputs) -> tuple[int, str]:
    peak, how = _estimate_from_pretrained(x)
    return peak, f"from_pretrained as the call asks, if it keeps every weight in RAM: {how}"


def _estimate_manual_shards(x: EstimateInputs) -> tuple[int, str]:
    extra = x.largest_shard_bytes if x.converts else 0
    why = f"empty model filled shard by shard: one copy ({format_bytes(x.model_bytes)})"
    return x.model_bytes + extra, why + (f" + one shard converted ({format_bytes(extra)})" if x.converts else "")


register(Strategy(
    "normal", load_normal, _estimate_normal, (), "#d62728",
    "never for a big model: its two copies are anonymous memory, which no limit can reclaim",
))
register(Strategy(
    "low_cpu_mem_usage", load_from_pretrained, _estimate_from_pretrained,
    ("low_cpu_mem_usage",), "#ff7f0e",
    "one copy of the model fits in RAM (plain from_pretrained)",
))
register(Strategy(
    "offload_folder", load_offload, _estimate_offload,
    ("max_memory", "offload_folder", "offload_via", "gpu_max_memory"), "#2ca02c",
    "not even one copy fits: some weights stay on disk, every forward pays for it",
))
register(Strategy(
    "manual_shards", load_manual_shards, _estimate_manual_shards,
    ("offload_and_reload",), "#1f77b4",
    "you write your own loader (conversion, custom formats) and need one copy at most",
))
register(Strategy(
    "from_pretrained_call", load_call, _estimate_call, ("call", "offload_folder"), "#9467bd",
    "you want to see what your own from_pretrained(...) line does (explain_call runs it)", listed=False,
))
# The exercise checks of lessons 04 and 06 run the learner's own function as a strategy, measured like the rest.
register(Strategy(
    "learner_loader", load_learner_loader, _estimate_manual_shards, ("code",), "#8c564b",
    "you want your own loader(folder) measured (lesson 04's check runs it)", listed=False,
))
register(Strategy(
    "learner_safe_load", load_learner_safe_load, _estimate_manual_shards, ("code",), "#e377c2",
    "you want your own load(path) of a .bin file tried (lesson 06's check runs it)", listed=False,
))
