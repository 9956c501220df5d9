"""run and start take one list of options, spelled once (in start's signature): run shows it whole (help, Jupyter's
Shift-Tab), refuses a name outside it in its own name, and a run records every option it was given."""

from __future__ import annotations

import inspect
import pydoc
from pathlib import Path

import pytest

from widgetlib.core.errors import OptionError
from widgetlib.measure import runner
from widgetlib.measure.report import Report
from widgetlib.measure.runner import run, start

pytestmark = pytest.mark.timeout(300)


def test_run_shows_exactly_starts_options_with_their_defaults() -> None:
    run_params = inspect.signature(run).parameters
    start_params = inspect.signature(start).parameters
    assert list(run_params) == list(start_params)
    for name, param in start_params.items():
        assert (run_params[name].kind, run_params[name].default) == (param.kind, param.default), name
    assert run_params["dtype"].default == "keep" and run_params["forwards"].default == 3
    assert inspect.signature(run).return_annotation in (Report, "Report")
    # help(run) (pydoc) shows the options with their defaults and keeps run's own docstring, which documents them.
    text = pydoc.render_doc(run, renderer=pydoc.plaintext)
    assert "offload_via: 'str' = 'from_pretrained'" in text and "interval_s: 'float' = 0.01" in text
    assert "``cold_cache``: drop the checkpoint's" in text


def test_an_unknown_option_fails_at_once_in_runs_own_name(small_checkpoint: Path) -> None:
    with pytest.raises(TypeError, match=r"^run\(\) got an unexpected keyword argument 'offload_dir'$"):
        run(small_checkpoint, "offload_folder", offload_dir="/tmp/x")
    with pytest.raises(TypeError, match="unexpected keyword argument 'offload_dir'"):
        start(small_checkpoint, "offload_folder", offload_dir="/tmp/x")
    # An option the strategy does not use: still the one-sentence learner error, from check_options.
    with pytest.raises(OptionError, match="max_memory='4MB' means nothing to strategy 'normal'"):
        run(small_checkpoint, "normal", max_memory="4MB")
    assert runner._active is None and runner._RUN_LOCK.acquire(blocking=False)  # nothing was left started
    runner._RUN_LOCK.release()


def test_a_run_records_and_sends_every_option_it_was_given(small_checkpoint: Path) -> None:
    report = run(small_checkpoint, "manual_shards", forwards=1, forward_tokens=4, interval_s=0.02, threads=1)
    assert report.outcome == "ok", report.error
    assert set(report.options) == {
        "dtype", "max_memory", "offload_folder", "offload_via", "budget", "cold_cache", "cold_forward", "forwards",
        "forward_tokens", "low_cpu_mem_usage", "offload_and_reload", "gpu_max_memory", "call", "code", "threads",
        "interval_s", "start_method", "probe",
    }
    assert (report.options["forward_tokens"], report.options["interval_s"], report.options["threads"]) == (4, 0.02, 1)
    assert report.options["offload_folder"] is None  # manual_shards: no folder was given or made
