"""The four strategies, each measured in its own process: what they cost and what they leave behind.

Ratios are "peak above baseline / checkpoint bytes" with honest margins: the lessons teach these numbers, so a
change that makes them false must fail here.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from widgetlib import STRATEGIES, make_checkpoint, run, start
from widgetlib.core.errors import OptionError, RunnerBusyError
from widgetlib.core.strategies import low_cpu_mem_usage_truth
from widgetlib.measure.render import report_table_text
from widgetlib.measure.report import Report

# Big enough that a few MB of allocator noise stay small against the checkpoint, small enough for CI.
SIZE = "160MB"


@pytest.fixture(scope="module")
def safetensors_checkpoint() -> Path:
    return make_checkpoint(size=SIZE, shards=4)


@pytest.fixture(scope="module")
def bin_checkpoint() -> Path:
    return make_checkpoint(size=SIZE, shards=4, format="bin")


@pytest.fixture(scope="module")
def reports(safetensors_checkpoint: Path) -> dict[str, Report]:
    return {strategy: run(safetensors_checkpoint, strategy) for strategy in STRATEGIES}


def test_every_strategy_loads_and_runs_forward(reports: dict[str, Report]) -> None:
    for strategy, report in reports.items():
        assert report.outcome == "ok", (strategy, report.error)
        assert report.load_s is not None and report.load_s > 0
        assert report.forward_s is not None and report.forward_s > 0
        assert report.versions["transformers"]


def test_all_strategies_give_bit_identical_logits(reports: dict[str, Report]) -> None:
    checksums = {r.logits_sha256 for r in reports.values()}
    assert len(checksums) == 1, {s: r.logits_sha256 for s, r in reports.items()}


def test_normal_loading_peaks_near_two_copies(reports: dict[str, Report]) -> None:
    assert reports["normal"].peak_ratio >= 1.6


@pytest.mark.parametrize("strategy", ["low_cpu_mem_usage", "manual_shards"])
def test_meta_device_and_shard_loading_hold_about_one_copy(reports: dict[str, Report], strategy: str) -> None:
    ratio = reports[strategy].peak_ratio
    assert 0.7 <= ratio <= 1.3, ratio


def test_offload_folder_stays_under_its_budget(reports: dict[str, Report], safetensors_checkpoint: Path) -> None:
    from widgetlib import inspect_checkpoint

    report = reports["offload_folder"]
    info = inspect_checkpoint(safetensors_checkpoint)
    slack = 40 * 10**6
    assert report.peak_above_baseline_bytes <= report.max_memory_bytes + info.largest_tensor_bytes + slack
    assert report.device_map["disk"]["bytes"] > 0, report.device_map


def test_the_sampler_sees_the_peak_the_kernel_records(reports: dict[str, Report], safetensors_checkpoint: Path) -> None:
    # Two independent figures: the samples taken from outside at 100 Hz, and the kernel's own high-water mark
    # (VmHWM on Linux). Every strategy holds most of its peak while the model stays; what lasts only a moment
    # (one tensor in flight, in offload_folder) can fall between two samples. Measured at 160 MB: sampled/kernel
    # above baseline 1.00 for normal, low_cpu_mem_usage and manual_shards; 0.80 for offload_folder (14 MB
    # missed, under its largest tensor, 18 MB). A sampler that stalls, or a peak from another run, fails here.
    from widgetlib import inspect_checkpoint

    largest_tensor = inspect_checkpoint(safetensors_checkpoint).largest_tensor_bytes
    for strategy, report in reports.items():
        assert len(report.timeline.samples) > 10, strategy
        sampled_above = report.sampled_peak_rss_bytes - report.baseline_rss_bytes
        missed = report.peak_above_baseline_bytes - sampled_above
        assert missed <= largest_tensor + 8 * 10**6, (strategy, missed, report.peak_source)


def test_manual_shards_emits_the_staircase(reports: dict[str, Report]) -> None:
    labels = [e.label for e in reports["manual_shards"].timeline.events]
    for k in range(1, 5):
        assert f"shard {k}/4 read" in labels and f"shard {k}/4 assigned" in labels
    times = [e.t_s for e in reports["manual_shards"].timeline.events]
    assert times == sorted(times)


# The predicted peak (core/registry.py's arithmetic, from the headers alone) against the measured one, above
# baseline. The arithmetic counts the weights only; the first forward's working memory (activations, the
# allocator's arenas, torch's per-thread buffers) comes on top, a roughly fixed amount: measured here (2-core
# Linux box, 4 shards, float32, torch 2.14.1, transformers 5.24.0), the forward took offload_folder from 10 MB
# to 36 MB and manual_shards from 43 MB to 59 MB above baseline at 40 MB. meas/pred at 40 MB: normal 1.03,
# low_cpu_mem_usage 1.41-1.45, offload_folder 1.55-1.62, manual_shards 1.47-1.48; at 160 MB: 1.00, 0.90, 0.71
# (accelerate keeps less than max_memory in RAM), 1.08. So the measurement must lie within a factor of 1.6 of
# the prediction, plus at most FORWARD_ALLOWANCE_BYTES above it: that still fails an estimate that forgets a
# copy (normal's would be off by 2, checked separately below).
PREDICTION_FACTOR = 1.6
FORWARD_ALLOWANCE_BYTES = 25 * 10**6


@pytest.fixture(scope="module")
def small_reports() -> dict[str, Report]:
    folder = make_checkpoint(size="40MB", shards=4)
    return {strategy: run(folder, strategy, forwards=1) for strategy in STRATEGIES}


@pytest.mark.parametrize("size", ["40MB", SIZE])
def test_prediction_is_within_a_stated_factor_of_the_measurement(
    request: pytest.FixtureRequest, size: str
) -> None:
    runs = request.getfixturevalue("small_reports" if size == "40MB" else "reports")
    ratios, within = {}, {}
    for strategy, report in runs.items():
        assert report.outcome == "ok", (strategy, report.error)
        measured, predicted = report.peak_above_baseline_bytes, report.predicted_above_baseline_bytes
        ratios[strategy] = round(measured / predicted, 2)
        upper = predicted * PREDICTION_FACTOR + FORWARD_ALLOWANCE_BYTES
        within[strategy] = predicted / PREDICTION_FACTOR <= measured <= upper
    assert all(within.values()), (size, ratios)
    assert runs["normal"].prediction and ratios["normal"] >= 0.8  # the two copies are there in full


def test_low_cpu_mem_usage_truth_is_read_from_the_installed_library(reports: dict[str, Report]) -> None:
    import transformers

    truth = reports["low_cpu_mem_usage"].details["low_cpu_mem_usage_truth"]
    assert truth["transformers"] == transformers.__version__
    assert truth == low_cpu_mem_usage_truth()
    if int(transformers.__version__.split(".")[0]) >= 5:
        assert truth["honoured"] is False
        source = Path(truth["source_file"]).read_text().splitlines()
        assert "low_cpu_mem_usage" in source[truth["source_line"] - 1]


def test_report_round_trips_through_json(reports: dict[str, Report]) -> None:
    report = reports["manual_shards"]
    again = Report.from_json(report.to_json())
    assert again == report
    assert "manual_shards" in report_table_text(list(reports.values()))


def test_offload_folder_with_safetensors_writes_nothing(safetensors_checkpoint: Path, tmp_path: Path) -> None:
    # transformers 5 reads offloaded safetensors weights in place; the learner's folder stays empty.
    folder = tmp_path / "my-offload"
    report = run(safetensors_checkpoint, "offload_folder", offload_folder=folder, max_memory="30MB")
    assert report.outcome == "ok", report.error
    assert report.offload_folder == str(folder)
    assert report.offload_folder_files == 0 and report.offload_folder_bytes == 0
    assert folder.is_dir()  # the learner's folder is kept


def test_offload_folder_with_bin_writes_the_offloaded_weights(bin_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bin-offload"
    report = run(bin_checkpoint, "offload_folder", offload_folder=folder, max_memory="30MB")
    assert report.outcome == "ok", report.error
    disk_bytes = report.device_map["disk"]["bytes"]
    assert report.offload_folder_files > 0
    assert report.offload_folder_bytes >= 0.9 * disk_bytes
    assert sum(p.stat().st_size for p in folder.iterdir()) == report.offload_folder_bytes


def test_accelerate_dispatch_writes_dat_files(safetensors_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dispatch"
    report = run(safetensors_checkpoint, "offload_folder", offload_via="accelerate", offload_folder=folder)
    assert report.outcome == "ok", report.error
    assert any(p.suffix == ".dat" for p in folder.iterdir())
    assert report.offload_folder_bytes >= 0.9 * report.device_map["disk"]["bytes"]


def test_bin_checkpoint_strategies_agree(bin_checkpoint: Path, safetensors_checkpoint: Path) -> None:
    normal = run(bin_checkpoint, "normal")
    manual = run(bin_checkpoint, "manual_shards", offload_and_reload=True)
    assert normal.outcome == manual.outcome == "ok", (normal.error, manual.error)
    assert normal.logits_sha256 == manual.logits_sha256
    assert normal.peak_ratio >= 1.6
    assert manual.details["offload_and_reload"] is True and manual.details["scratch_bytes"] > 0
    # The seed notes' scheme still ends with every shard back in RAM: it saves nothing at the peak.
    assert manual.peak_ratio >= 0.8


def test_cancel_leaves_no_temp_files(safetensors_checkpoint: Path, tmp_path: Path, fresh_tmpdir: Path) -> None:
    learner_folder = tmp_path / "mine"
    learner_folder.mkdir()
    (learner_folder / "notes.txt").write_text("keep me")
    first_sample = threading.Event()
    handle = start(
        safetensors_checkpoint,
        "offload_folder",
        offload_folder=learner_folder,
        forwards=1000,  # seconds of forwards: the cancel lands during the run, however fast the load
        on_sample=lambda s: first_sample.set(),
    )
    assert first_sample.wait(30)
    handle.cancel()
    report = handle.wait(30)
    assert report.outcome == "cancelled"
    assert os.listdir(fresh_tmpdir) == []
    assert (learner_folder / "notes.txt").read_text() == "keep me"


def test_second_run_is_refused_or_queued(safetensors_checkpoint: Path) -> None:
    handle = start(safetensors_checkpoint, "manual_shards")
    try:
        with pytest.raises(RunnerBusyError, match="already in progress"):
            start(safetensors_checkpoint, "normal", queue=False)
    finally:
        handle.wait(60)
    assert run(safetensors_checkpoint, "low_cpu_mem_usage").outcome == "ok"


def test_bad_options_fail_before_any_spawn(safetensors_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="fast"):
        run(safetensors_checkpoint, "fast")
    with pytest.raises(OptionError, match="max_memory='lots'"):
        run(safetensors_checkpoint, "offload_folder", max_memory="lots")
    with pytest.raises(OptionError, match="budget='1MB'.*largest tensor"):
        run(safetensors_checkpoint, "offload_folder", budget="1MB")


def test_another_architecture_loads_all_four_ways(tmp_path: Path) -> None:
    # GPT-2: another architecture, tied input/output embeddings, a Conv1D layout.
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=5000, n_positions=64)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    # max_memory only where it means something: run() refuses it for the other strategies.
    reports = [run(tmp_path / "gpt2", s, **({"max_memory": "1MB"} if s == "offload_folder" else {}))
               for s in STRATEGIES]
    assert [r.outcome for r in reports] == ["ok"] * 4, [r.error for r in reports]
    assert len({r.logits_sha256 for r in reports}) == 1
