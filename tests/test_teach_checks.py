"""Every exercise check: a blank answer (``...``) is "not answered yet" and never raises, a wrong answer is
rejected with its reason (and raises under ``OFFLOAD_LAB_STRICT_CHECKS=1``), the right answer passes.

The Reports here are built (by the test factories) from the fields each check reads, so the checks' logic is
tested without a load; the lessons' executions (tests/test_lessons.py) test them again on real runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factories import make_report, sample

import widgetlib as lab
from widgetlib import teach
from widgetlib.measure.memory import Event, MemorySample
from widgetlib.measure.report import Report
from widgetlib.teach.verdicts import _WRONG_TRIES

pytestmark = pytest.mark.timeout(120)

NOT_ANSWERED = "not answered yet"


@pytest.fixture(autouse=True)
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks return verdicts here; the strict mode is tested on its own below. Each test starts as a learner's
    first try: no wrong answer counted yet."""
    monkeypatch.delenv(teach.STRICT_ENV, raising=False)
    _WRONG_TRIES.clear()


def _sample(t_s: float, rss: int, anon: int | None = None, file: int | None = None) -> MemorySample:
    return sample(t_s, rss, anon=anon, file=file)


def _report(strategy: str = "normal", *, baseline: int = 100, peak: int | None = 300, checkpoint: int = 100,
            **fields: Any) -> Report:
    top = peak if peak is not None else baseline + 100
    samples = [_sample(0.0, baseline), _sample(0.5, baseline + 100), _sample(1.0, top), _sample(1.5, baseline + 100)]
    events = [Event(0.0, "ready", "ready"), Event(0.4, "model built", "model_built"),
              Event(0.9, "state dict read", "state_dict_read"), Event(1.2, "weights assigned", "weights_assigned"),
              Event(1.6, "forward done", "forward_done")]
    return make_report(strategy, checkpoint_bytes=checkpoint, baseline_rss_bytes=baseline, peak_rss_bytes=peak,
                       samples=samples, events=events, **fields)


def _stages(file_growth: int, anon_growth: int, split: bool = True) -> dict[str, MemorySample]:
    if not split:
        return {"mapped": _sample(0, 1000), "touched": _sample(1, 1000 + file_growth + anon_growth)}
    return {"mapped": _sample(0, 1000, 600, 400),
            "touched": _sample(1, 1000 + file_growth + anon_growth, 600 + anon_growth, 400 + file_growth)}


def _blank_then(verdict: teach.Verdict) -> None:
    assert not verdict.ok and not verdict.answered
    assert NOT_ANSWERED in str(verdict) and NOT_ANSWERED in verdict._repr_markdown_()


# ---------------------------------------------------------------------------------------- the blank answer


def test_blank_answers_are_not_answered_yet_even_under_strict_checks(monkeypatch: pytest.MonkeyPatch,
                                                                     small_checkpoint: Path) -> None:
    monkeypatch.setenv(teach.STRICT_ENV, "1")
    report = _report()
    info_like = type("Info", (), {"parameters": 10, "dtype": "float32", "total_bytes": 40})()
    blanks = [
        teach.check_mmap_answer(..., _stages(100, 0)),
        teach.check_model_bytes(..., info_like),
        teach.check_normal_peak(..., report),
        teach.check_copies_at_peak(..., report),
        teach.check_low_cpu_mem_usage(..., {"honoured": False}, report, report),
        teach.check_empty_model(..., None),
        teach.check_max_memory(..., small_checkpoint),
        teach.check_offload_writes({"a": ..., "b": True}, {"a": report, "b": report}),
        teach.check_shard_of(..., small_checkpoint, "lm_head.weight"),
        teach.check_manual_loader(..., small_checkpoint, report),
        teach.check_fits_prediction(..., [report]),
        teach.check_what_a_limit_counts(..., [report], [report]),
        teach.check_myths({"claim": ...}, {"claim": True}),
        teach.check_safe_loader(...),
    ]
    assert len(blanks) == len([name for name in teach.__all__ if name.startswith("check_")])
    for verdict in blanks:
        _blank_then(verdict)


def test_unanswered_sees_ellipsis_inside_containers() -> None:
    assert teach.unanswered(...) and teach.unanswered([1, ...]) and teach.unanswered({"x": ...})
    assert not teach.unanswered(None) and not teach.unanswered({"x": False}) and not teach.unanswered("...")


def test_a_wrong_answer_raises_under_strict_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(teach.STRICT_ENV, "1")
    with pytest.raises(AssertionError, match="exercise check failed"):
        teach.check_mmap_answer("anonymous", _stages(100, 0))


# ------------------------------------------------------------------------------------------ each check


def test_mmap_answer() -> None:
    assert teach.check_mmap_answer("file-backed", _stages(100, 0)).ok
    assert teach.check_mmap_answer("file", _stages(100, 0)).ok
    wrong = teach.check_mmap_answer("anonymous", _stages(100, 0))
    assert not wrong.ok and "bytearray" in wrong.message
    assert not teach.check_mmap_answer("heap", _stages(100, 0)).ok
    # The verdict follows the measurement, not a fixed answer.
    assert teach.check_mmap_answer("anonymous", _stages(0, 100)).ok


def test_mmap_answer_is_still_judged_where_the_os_cannot_split_rss() -> None:
    """Off Linux the split is missing; the check judges by how mmap works instead of accepting anything."""
    right = teach.check_mmap_answer("file-backed", _stages(100, 0, split=False))
    wrong = teach.check_mmap_answer("anonymous", _stages(100, 0, split=False))
    assert right.ok and not wrong.ok and "cannot show" in wrong.message


def test_model_bytes() -> None:
    info = type("Info", (), {"parameters": 1000, "dtype": "float32", "total_bytes": 4000})()
    assert teach.check_model_bytes(4000, info).ok
    first = teach.check_model_bytes(1000, info)
    assert "number of parameters" in first.message and "Hint" in first.message
    assert "4.0 kB" not in first.message, "a first wrong try gets no answer"
    second = teach.check_model_bytes(2000, info)
    assert "bfloat16" in second.message and "4.0 kB" in second.message, "a second wrong try gets the answer"
    assert not teach.check_model_bytes(8000, info).ok
    assert not teach.check_model_bytes("4000", info).ok


def test_normal_peak() -> None:
    report = _report(baseline=100, peak=300, checkpoint=100)  # 200 above baseline: two copies
    assert teach.check_normal_peak(200, report).ok
    one_copy = teach.check_normal_peak(100, report)
    assert not one_copy.ok and "*result*" in one_copy.message and "Hint" in one_copy.message
    assert "200 B" not in one_copy.message, "a first wrong try gets a hint, not the measured peak"
    too_high = teach.check_normal_peak(400, report)
    assert not too_high.ok and "200 B" in too_high.message, "a second wrong try gets the measured peak"
    _WRONG_TRIES.clear()
    first_high = teach.check_normal_peak(400, report)
    assert "count the copies" in first_high.message and "200 B" not in first_high.message
    assert teach.check_normal_peak(200, report).ok, "a right answer after wrong ones is still right"
    assert not teach.check_normal_peak(100, report).ok, "and a wrong one after a right one is still wrong"
    assert not teach.check_normal_peak(200, _report(outcome="error", peak=None)).ok


def test_copies_at_peak() -> None:
    report = _report()  # both copies (200 above baseline) are sampled just after 'state dict read'
    assert teach.check_copies_at_peak("state_dict_read", report).ok
    early = teach.check_copies_at_peak("model_built", report)
    assert not early.ok and "short of both copies" in early.message
    late = teach.check_copies_at_peak("weights_assigned", report)
    assert not late.ok and "Look earlier" in late.message
    unknown = teach.check_copies_at_peak("shard_read", report)
    assert not unknown.ok and "not an event kind of this run" in unknown.message


def test_low_cpu_mem_usage() -> None:
    same = _report("low_cpu_mem_usage", peak=200), _report("low_cpu_mem_usage", peak=205)
    ignored = {"honoured": False, "evidence": "ignored", "source_file": "m.py", "source_line": 1}
    assert teach.check_low_cpu_mem_usage(False, ignored, *same).ok
    assert not teach.check_low_cpu_mem_usage(True, ignored, *same).ok
    assert teach.check_low_cpu_mem_usage("no", ignored, *same).ok, '"no" is False, not a true string'
    assert not teach.check_low_cpu_mem_usage("yes", ignored, *same).ok
    assert "not 'maybe'" in teach.check_low_cpu_mem_usage("maybe", ignored, *same).message
    honoured = {**ignored, "honoured": True}
    assert teach.check_low_cpu_mem_usage(True, honoured, *same).ok


def test_empty_model(small_checkpoint: Path) -> None:
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(small_checkpoint)
    with init_empty_weights():
        right = AutoModelForCausalLM.from_config(config)
    with torch.device("meta"):
        meta_buffers = AutoModelForCausalLM.from_config(config)
    assert teach.check_empty_model(right, config).ok
    # Wrong answers, after the right one: a module on meta that is not the checkpoint's model, one whose buffers
    # are lost on meta, one that allocated its weights.
    other = teach.check_empty_model(torch.nn.Linear(3, 3, device="meta"), config)
    assert not other.ok and "not the model of `config`" in other.message
    lost = teach.check_empty_model(meta_buffers, config)
    assert not lost.ok and "non-persistent" in lost.message
    allocated = teach.check_empty_model(AutoModelForCausalLM.from_config(config), config)
    assert not allocated.ok and "allocated" in allocated.message
    assert not teach.check_empty_model("a model", config).ok


def test_max_memory_uses_the_planner_from_pretrained_runs(small_checkpoint: Path) -> None:
    from widgetlib.core.checkpoints import inspect_checkpoint

    total = inspect_checkpoint(small_checkpoint).total_bytes
    tenths = [total * k // 10 for k in range(1, 11)]
    half = min(tenths, key=lambda m: abs(teach.disk_share(small_checkpoint, m).get("disk", 0) / total - 0.5))
    assert teach.check_max_memory(half, small_checkpoint).ok
    everything = teach.check_max_memory(10 * total, small_checkpoint)
    nothing = teach.check_max_memory(0, small_checkpoint)
    assert not everything.ok and "lower max_memory" in everything.message
    assert not nothing.ok and "raise max_memory" in nothing.message
    assert not teach.check_max_memory(-1, small_checkpoint).ok
    # transformers' planner counts buffers too: the weights' bytes alone leave something on disk.
    assert teach.disk_share(small_checkpoint, total).get("disk", 0) > 0
    # A size, as run() takes max_memory: "12MB" plans like 12,000,000 bytes.
    assert teach.disk_share(small_checkpoint, "12MB") == teach.disk_share(small_checkpoint, 12_000_000)


def test_offload_writes() -> None:
    reports = {"st": _report(offload_folder_files=0), "bin": _report(offload_folder_files=3)}
    assert teach.check_offload_writes({"st": False, "bin": True}, reports).ok
    assert teach.check_offload_writes({"st": "no", "bin": "yes"}, reports).ok, '"no" is False'
    wrong = teach.check_offload_writes({"st": True, "bin": True}, reports)
    assert not wrong.ok and "Check st" in wrong.message and "Hint" in wrong.message
    assert "Measured" not in wrong.message, "a first wrong try gets a hint, not the measured answer"
    again = teach.check_offload_writes({"st": "yes", "bin": True}, reports)
    assert not again.ok and "Measured" in again.message and "st: 0 file(s)" in again.message
    assert not teach.check_offload_writes({"bin": True}, reports).ok


def test_shard_of(small_checkpoint: Path) -> None:
    from widgetlib.core.checkpoints import weight_map

    mapping = weight_map(small_checkpoint)
    actual = mapping["lm_head.weight"]
    assert teach.check_shard_of(actual, small_checkpoint, "lm_head.weight").ok
    other = next(f for f in sorted(set(mapping.values())) if f != actual)
    first = teach.check_shard_of(other, small_checkpoint, "lm_head.weight")
    assert "is a shard of this checkpoint" in first.message and actual not in first.message, "a hint, not the file"
    assert actual in teach.check_shard_of(other, small_checkpoint, "lm_head.weight").message
    assert "not a file" in teach.check_shard_of("model.safetensors", small_checkpoint, "lm_head.weight").message


# The learner's loaders for lesson 04's check: each is sent by its source to a fresh measured process.


def _one_shard_at_a_time(folder: Path) -> Any:
    model = lab.build_empty_model(folder)
    for path in lab.shard_files(folder):
        model.load_state_dict(lab.read_shard(path), strict=False, assign=True)
    return model


def _two_copies(folder: Path) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))  # random weights: copy 1
    state = {}
    for path in lab.shard_files(folder):
        state.update(lab.read_shard(path))  # copy 2
    model.load_state_dict(state)
    return model


def _whole_state_dict(folder: Path) -> Any:
    model = lab.build_empty_model(folder)
    state = {}
    for path in lab.shard_files(folder):
        state.update(lab.read_shard(path))
    model.load_state_dict(state, strict=False, assign=True)
    return model


def _plain_from_pretrained(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder)


def _first_shard_only(folder: Path) -> Any:
    model = lab.build_empty_model(folder)
    model.load_state_dict(lab.read_shard(lab.shard_files(folder)[0]), strict=False, assign=True)
    return model


@pytest.fixture(scope="module")
def manual_reference(small_checkpoint: Path) -> Report:
    from widgetlib.core.strategies import forward_checksum

    return _report(logits_sha256=forward_checksum(_one_shard_at_a_time(small_checkpoint))[0])


def test_manual_loader_runs_in_a_fresh_process_and_rejects_each_wrong_loader_after_a_right_one(
        small_checkpoint: Path, manual_reference: Report) -> None:
    """A check that measured the kernel would depend on what ran before it (memory an earlier try freed is
    reused); so every wrong loader here comes after a right one, in the same process, and must be rejected."""
    right = teach.check_manual_loader(_one_shard_at_a_time, small_checkpoint, manual_reference)
    assert right.ok and "one at a time" in right.message, right.message
    two = teach.check_manual_loader(_two_copies, small_checkpoint, manual_reference)
    assert not two.ok and "above one copy plus the largest shard" in two.message, two.message
    whole = teach.check_manual_loader(_whole_state_dict, small_checkpoint, manual_reference)
    assert not whole.ok and "read shard 2 before any load_state_dict" in whole.message, whole.message
    library = teach.check_manual_loader(_plain_from_pretrained, small_checkpoint, manual_reference)
    assert not library.ok and "read none of the 3 shards itself" in library.message, library.message
    partial = teach.check_manual_loader(_first_shard_only, small_checkpoint, manual_reference)
    assert not partial.ok and "still on meta" in partial.message, partial.message
    other = teach.check_manual_loader(_one_shard_at_a_time, small_checkpoint, _report(logits_sha256="0" * 64))
    assert not other.ok and "logits differ" in other.message


def test_a_loader_that_cannot_be_sent_is_refused_in_one_sentence(small_checkpoint: Path) -> None:
    namespace: dict[str, Any] = {}
    exec("def typed_in(folder):\n    return folder\n", namespace)  # no file, no linecache: no source to send
    for loader, words in [(namespace["typed_in"], "source of `my_loader` cannot be found"),
                          (lambda folder: folder, "is a lambda"),
                          (print, "not a function written with def")]:
        verdict = teach.check_manual_loader(loader, small_checkpoint, _report())
        assert not verdict.ok and words in verdict.message and verdict.message.count(". ") == 0, verdict.message
    assert not teach.check_manual_loader("my loader", small_checkpoint, _report()).ok


def test_fits_prediction() -> None:
    killed = _report("normal", outcome="stopped_by_budget", budget_mode="cgroup", budget_bytes=200,
                     budget_stop={"by": "kernel", "t_s": 0.5, "rss_bytes": 210}, limit_events={"oom_kill": 1})
    reread = _report("manual_shards", budget_mode="cgroup", budget_bytes=200, major_faults=42,
                     limit_events={"oom_kill": 0})
    runs = [killed, reread]
    assert teach.check_fits_prediction({"manual_shards"}, runs).ok
    extra = teach.check_fits_prediction({"manual_shards", "normal"}, runs)
    assert not extra.ok and "normal was stopped" in extra.message and "OOM-killed" in extra.message
    assert "anonymous memory" in extra.message
    missing = teach.check_fits_prediction(set(), runs)
    assert not missing.ok and "manual_shards finished too" in missing.message
    assert "manual_shards 42" in missing.message and "file-backed" in missing.message
    assert missing.message.count("kernel limit") == 1, "the limit is said once"
    watched = _report("manual_shards", budget_mode="watchdog", budget_bytes=200,
                      details={"budget_counts": "RssAnon + RssShmem"})
    missing = teach.check_fits_prediction(set(), [watched])
    assert not missing.ok and "watchdog, which counts RssAnon + RssShmem" in missing.message
    assert not teach.check_fits_prediction({"lazy"}, runs).ok


def _split_report(strategy: str, *, anon_growth: int, file_growth: int, **fields: Any) -> Report:
    """A run whose samples split RSS: from the load start, anon grows by ``anon_growth`` and file pages by
    ``file_growth`` (baseline 100, of which 60 anonymous)."""
    start = _sample(0.0, 100, anon=60, file=40)
    top = _sample(1.0, 100 + anon_growth + file_growth, anon=60 + anon_growth, file=40 + file_growth)
    return make_report(strategy, checkpoint_bytes=100, baseline_rss_bytes=100, peak_rss_bytes=top.rss_bytes,
                       non_reclaimable_peak_bytes=60 + anon_growth, samples=[start, top], **fields)


def test_what_a_limit_counts() -> None:
    reports = [_split_report("normal", anon_growth=200, file_growth=5),
               _split_report("manual_shards", anon_growth=5, file_growth=100)]
    budget_reports = [_report("normal", outcome="stopped_by_budget", budget_bytes=160),
                      _report("manual_shards", budget_bytes=160)]
    assert teach.non_reclaimable_growth(reports[0]) == 200
    right = teach.check_what_a_limit_counts("anonymous", reports, budget_reports)
    assert right.ok and "exactly the runs" in right.message
    wrong = teach.check_what_a_limit_counts("file-backed", reports, budget_reports)
    assert not wrong.ok and "read them again" in wrong.message and "manual_shards: anonymous +5 B" in wrong.message
    assert not teach.check_what_a_limit_counts("swap", reports, budget_reports).ok
    # A run that contradicts the physics (the finished run grew more anonymous memory than the room) is flagged.
    odd = [reports[0], _split_report("manual_shards", anon_growth=90, file_growth=5)]
    assert not teach.check_what_a_limit_counts("anonymous", odd, budget_reports).ok
    # No split (portable probe): judged by how a limit works, and says so.
    plain = [_report("normal"), _report("manual_shards")]
    verdict = teach.check_what_a_limit_counts("file", plain, budget_reports)
    assert not verdict.ok and "does not split" in verdict.message
    assert teach.check_what_a_limit_counts("anon", plain, budget_reports).ok


def test_limit_budget_squeezes_file_pages_and_not_anonymous_memory() -> None:
    normal = _split_report("normal", anon_growth=200, file_growth=5)
    manual = _split_report("manual_shards", anon_growth=5, file_growth=100)
    budget, basis = teach.limit_budget([manual], normal)
    room = budget - normal.baseline_rss_bytes
    assert basis == "non-reclaimable" and 5 < room < manual.peak_above_baseline_bytes < 200
    budget, basis = teach.limit_budget([_report("manual_shards", peak=210)], _report("normal", peak=300))
    assert basis == "total" and budget == 100 + (110 + 200) // 2



def test_limit_budget_leaves_what_a_cgroup_charges_beyond_rss() -> None:
    """Lesson 05 at 40MB: anonymous growth 8 MB, heaviest one-copy load 56 MB in all, normal 84 MB. A room halfway
    between 8 and 56 MB (32 MB) got every one-copy load OOM-killed: the cgroup also charges copy-on-write copies
    and page tables, which RSS growth does not show."""
    mb = 2**20
    normal = _split_report("normal", anon_growth=84 * mb, file_growth=8 * mb)
    light = _split_report("manual_shards", anon_growth=8 * mb, file_growth=48 * mb)
    budget, _ = teach.limit_budget([light], normal)
    room = budget - normal.baseline_rss_bytes
    assert 8 * mb + teach.LIMIT_OVERHEAD_BYTES < room < light.peak_above_baseline_bytes, room / mb


def test_myths() -> None:
    evidence = {"a": False, "b": True}
    assert teach.check_myths({"a": False, "b": True}, evidence).ok
    assert teach.check_myths({"a": "no", "b": "yes"}, evidence).ok, '"no" is False'
    wrong = teach.check_myths({"a": "yes", "b": True}, evidence)
    assert not wrong.ok and "Look again at: a." in wrong.message and "Hint" in wrong.message
    assert "False" not in wrong.message, "a first wrong try gets a hint, not what the run says"
    again = teach.check_myths({"a": True, "b": True}, evidence)
    assert not again.ok and "The runs say: a: False" in again.message
    assert "not 'maybe'" in teach.check_myths({"a": "maybe", "b": True}, evidence).message
    assert "missing: b" in teach.check_myths({"a": False}, evidence).message


def test_myths_about_the_offload_folder_wrong_after_right() -> None:
    """Lesson 06's two measured offload-folder claims: right, then each wrong answer in the same kernel is still
    wrong, gets a hint first and the run's reason from the second try on."""
    accelerate, cleanup = ("offload_folder works only with accelerate installed",
                           "the offload folder can be deleted once the model has loaded")
    evidence = {accelerate: True, cleanup: False}
    reasons = {accelerate: "without accelerate a device_map raised ImportError",
               cleanup: "after the folder was deleted, the .bin model's next forward pass raised FileNotFoundError"}
    assert teach.check_myths({accelerate: True, cleanup: False}, evidence, reasons).ok
    first = teach.check_myths({accelerate: True, cleanup: True}, evidence, reasons)
    assert not first.ok and f"Look again at: {cleanup}." in first.message and "Hint" in first.message
    assert "FileNotFoundError" not in first.message, "a first wrong try gets a hint, not the run's reason"
    second = teach.check_myths({accelerate: False, cleanup: False}, evidence, reasons)
    assert not second.ok and f"{accelerate}: True (without accelerate a device_map raised ImportError)" in \
        second.message and cleanup not in second.message
    both = teach.check_myths({accelerate: "no", cleanup: "yes"}, evidence, reasons)
    assert not both.ok and "FileNotFoundError" in both.message and "ImportError" in both.message
    assert teach.check_myths({accelerate: "yes", cleanup: "no"}, evidence, reasons).ok, "and right again after"


def _unsafe(path: Path) -> Any:
    import torch

    return torch.load(path, weights_only=False)


def _accepting(path: Path) -> Any:
    return {}


def _refusing(path: Path) -> Any:
    raise ValueError("I trust no file")


def _safe(path: Path) -> Any:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def test_safe_loader_must_load_a_harmless_bin_and_refuse_the_hostile_one(small_bin_checkpoint: Path) -> None:
    right = teach.check_safe_loader(_safe, small_bin_checkpoint)
    assert right.ok and "refused the hostile file" in right.message, right.message
    # Each wrong loader after the right one, in the same process:
    refusing = teach.check_safe_loader(_refusing, small_bin_checkpoint)
    assert not refusing.ok and "I trust no file" in refusing.message and "harmless" in refusing.message
    ran = teach.check_safe_loader(_unsafe, small_bin_checkpoint)
    assert not ran.ok and "payload ran" in ran.message, ran.message
    accepting = teach.check_safe_loader(_accepting, small_bin_checkpoint)
    assert not accepting.ok and "did not return the tensors" in accepting.message, accepting.message
    assert not teach.check_safe_loader("torch.load").ok


# ------------------------------------------------------------------------------------ facts the lessons use


def test_embedding_table(small_checkpoint: Path) -> None:
    from widgetlib.core.checkpoints import inspect_checkpoint

    name, n_bytes = teach.embedding_table(small_checkpoint)
    assert name.endswith("embed_tokens.weight") and 0 < n_bytes < inspect_checkpoint(small_checkpoint).total_bytes


def test_commit_figures_name_the_overcommit_mode_on_linux() -> None:
    import sys

    figures = teach.commit_figures()
    if sys.platform.startswith("linux"):
        assert figures["overcommit_mode"] in (0, 1, 2)
