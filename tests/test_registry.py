"""One strategy, one place: a strategy added to the registry is offered everywhere, and nowhere else changes.

Also keeps the public API honest: every name in ``widgetlib.__all__`` imports, and every public callable there
is documented with a runnable example.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import widgetlib
from widgetlib.cli import build_parser, main
from widgetlib.core import registry
from widgetlib.core.errors import OptionError
from widgetlib.core.registry import EstimateInputs, Strategy, get_strategy, registered, strategy_names

pytestmark = pytest.mark.timeout(300)


def _throwaway_estimate(x: EstimateInputs) -> tuple[int, str]:
    return 3 * x.model_bytes, "three copies (a throw-away strategy for the test)"


def _throwaway() -> Strategy:
    # Loads with manual_shards' loader under its own name: a real loader, so load_model has something to run.
    return Strategy(
        name="throwaway",
        loader=get_strategy("manual_shards").loader,
        estimate=_throwaway_estimate,
        options=("max_memory",),
        color="#123456",
        choose_when="never: it exists for one test",
    )


def _cli_strategy_choices() -> list[str]:
    load = build_parser()._subparsers._group_actions[0].choices["load"]
    (action,) = [a for a in load._actions if a.dest == "strategy"]
    return list(action.choices)


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    from widgetlib import make_checkpoint

    return make_checkpoint(size="8MB", shards=2)


def test_a_registered_strategy_is_offered_by_the_cli_and_the_panel_and_goes_again(checkpoint: Path) -> None:
    from widgetlib import StrategyPanel
    from widgetlib.core.registry import strategy_color

    before = strategy_names()
    assert "throwaway" not in _cli_strategy_choices()
    with registered(_throwaway()):
        assert strategy_names() == (*before, "throwaway")
        assert widgetlib.STRATEGIES == (*before, "throwaway")
        assert _cli_strategy_choices() == [*before, "throwaway"]
        panel = StrategyPanel(checkpoint, "throwaway")
        assert list(panel.strategy_dropdown.options) == [*before, "throwaway"]
        # The option boxes follow what the strategy accepts: max_memory yes, offload_folder no.
        assert not panel.max_memory_text.disabled and panel.offload_folder_text.disabled
        assert strategy_color("throwaway") == "#123456"  # the hue every plot draws its runs in
        assert registry.choose_when()["throwaway"] == "never: it exists for one test"
    assert strategy_names() == before and "throwaway" not in _cli_strategy_choices()
    with pytest.raises(OptionError) as err:
        StrategyPanel(checkpoint, "throwaway")
    assert err.value.kind == "unknown_strategy"


def test_a_registered_strategy_brings_its_estimate_and_its_loader(checkpoint: Path) -> None:
    from widgetlib import estimate_peak, inspect_checkpoint, load_model

    info = inspect_checkpoint(checkpoint)
    with registered(_throwaway()):
        estimate = estimate_peak(info, "throwaway")
        assert estimate.peak_above_baseline_bytes == 3 * info.parameters * 4  # float32 checkpoint
        steps: list[str] = []
        result = load_model(checkpoint, "throwaway", emit=lambda label, kind: steps.append(label))
        assert "shard 2/2 assigned" in steps and result.model is not None
    with pytest.raises(OptionError):
        estimate_peak(info, "throwaway")


def test_an_option_a_strategy_does_not_use_is_refused_in_one_sentence(checkpoint: Path, capsys) -> None:
    from widgetlib import run

    with pytest.raises(OptionError) as err:
        run(checkpoint, "normal", max_memory="4MB")
    assert err.value.kind == "bad_option"
    message = err.value.message
    assert message == ("max_memory='4MB' means nothing to strategy 'normal' (only offload_folder uses it); "
                       "leave it out or pick that strategy.")
    with pytest.raises(OptionError, match="offload_and_reload=True means nothing to strategy 'offload_folder'"):
        run(checkpoint, "offload_folder", offload_and_reload=True)
    with pytest.raises(OptionError, match="low_cpu_mem_usage=False means nothing to strategy 'manual_shards'"):
        run(checkpoint, "manual_shards", low_cpu_mem_usage=False)
    # The CLI says the same, as one line, exit status 2.
    assert main(["load", str(checkpoint), "--strategy", "normal", "--max-memory", "4MB"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
    # An unknown name: the existing error, from the same place.
    with pytest.raises(OptionError) as unknown:
        run(checkpoint, "fast")
    assert unknown.value.kind == "unknown_strategy" and "use one of normal, low_cpu_mem_usage" in unknown.value.message


def test_register_refuses_a_taken_name_and_an_unknown_option() -> None:
    with pytest.raises(OptionError, match="already registered"):
        registry.register(get_strategy("normal"))
    bad = Strategy("x", get_strategy("normal").loader, _throwaway_estimate, ("max_mem",), "#000", "never")
    with pytest.raises(OptionError, match="unknown option"):
        registry.register(bad)
    assert "x" not in strategy_names()


def test_the_registry_holds_the_loaders_themselves() -> None:
    from widgetlib.core import strategies

    loaders = {s.name: s.loader for s in registry.strategies()}
    assert loaders == {
        "normal": strategies.load_normal,
        "low_cpu_mem_usage": strategies.load_from_pretrained,
        "offload_folder": strategies.load_offload,
        "manual_shards": strategies.load_manual_shards,
    }


def test_every_option_is_accepted_by_some_strategy_and_the_four_differ_in_colour() -> None:
    four = registry.strategies()
    every = registry.strategies(unlisted=True)
    assert {option for s in every for option in s.options} == set(registry.STRATEGY_OPTIONS)
    assert len({s.color for s in every}) == len(every)
    # The strategy explain_call runs is no way of loading to choose: no list offers it, a name still finds it.
    assert [s.name for s in four] == ["normal", "low_cpu_mem_usage", "offload_folder", "manual_shards"]
    assert get_strategy("from_pretrained_call").listed is False


# --------------------------------------------------------------------------------------------- public API


def test_every_name_in_all_imports_and_every_public_callable_has_a_runnable_example() -> None:
    undocumented = []
    for name in widgetlib.__all__:
        value = getattr(widgetlib, name)  # raises if a lazy entry points nowhere
        if callable(value) and not isinstance(value, type(sys)):
            doc = inspect.getdoc(value) or ""
            if ">>>" not in doc:
                undocumented.append(name)
    assert undocumented == []
    assert sorted(set(widgetlib.__all__)) == sorted(widgetlib.__all__)  # no duplicates


def test_internals_are_not_exported_at_the_top_but_stay_in_their_modules() -> None:
    internals = {"Sampler": "widgetlib.measure.memory", "MemorySample": "widgetlib.measure.memory",
                 "Event": "widgetlib.measure.memory", "RunHandle": "widgetlib.measure.runner",
                 "ShardInfo": "widgetlib.core.checkpoints", "PeakEstimate": "widgetlib.core.estimates"}
    for name, module in internals.items():
        assert name not in widgetlib.__all__ and not hasattr(widgetlib, name), name
        assert hasattr(__import__(module, fromlist=[name]), name), name


def test_the_registry_and_the_strategy_names_import_without_torch() -> None:
    code = ("import sys, widgetlib, widgetlib.core.registry, widgetlib.cli\n"
            "widgetlib.STRATEGIES; widgetlib.cli.build_parser()\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100, check=True)
    assert out.stdout.strip() == "[]"
