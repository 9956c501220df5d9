"""The exercise checks: each ``check_*`` judges a learner's answer from this run's measurements and says why.

An answer still ``...`` (Ellipsis, as every exercise ships) is *not answered yet*: the check returns a hint and
never raises, even under ``OFFLOAD_LAB_STRICT_CHECKS=1``. A wrong answer gets the reason it is wrong.

>>> print(check_shard_of(..., "/nowhere", "lm_head.weight"))  # doctest: +ELLIPSIS
… not answered yet: ...
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.options import BYTES_PER_NUMBER, bytes_per_number
from ..core.sizes import parse_size
from ..measure.memory import MemorySample
from .probes import hostile_pickle
from .readings import non_reclaimable_growth, sample_at
from .verdicts import Verdict, _ratio, _verdict, _wrong, fmt, not_answered, unanswered

if TYPE_CHECKING:
    from ..core.checkpoints import CheckpointInfo
    from ..measure.report import Report

# ------------------------------------------------------------------------------------------------ predictions


def disk_share(folder: str | os.PathLike[str], max_memory: str | int) -> dict[str, int]:
    """Bytes ``from_pretrained(device_map="auto", max_memory={"cpu": max_memory})`` would place on ``cpu`` and
    on ``disk``, planned by the *same* function the load calls. ``max_memory`` is a size, as ``run`` takes it
    (``"300MB"`` or a byte count).

    transformers 5 plans with its own copy of accelerate's planner: ``modeling_utils.py`` (~4418) calls
    ``_get_device_map`` in ``transformers/integrations/accelerate.py`` (~340), which calls that module's
    ``infer_auto_device_map`` (~644), not accelerate's. It counts buffers as well as parameters, non-persistent
    rotary ``inv_freq`` included, so ``max_memory`` equal to the weights' bytes leaves the last module on disk.
    Computed on an empty (meta) model in this kernel, no weights read.
    """
    from transformers.integrations.accelerate import _get_device_map

    from ..core.strategies import build_empty_model, device_map_summary

    max_memory_bytes = parse_size(max_memory, name="max_memory")
    model = build_empty_model(folder)
    model.hf_device_map = _get_device_map(model, "auto", {"cpu": max_memory_bytes}, None)
    summary = device_map_summary(model)
    return {place: entry["bytes"] for place, entry in summary.items()}


# ----------------------------------------------------------------------------------------------- the checks


def _is_number(answer: Any) -> bool:
    return isinstance(answer, (int, float)) and not isinstance(answer, bool)


_MEMORY_KINDS = {"file-backed": "file-backed", "file": "file-backed", "anonymous": "anonymous", "anon": "anonymous"}


def _memory_kind(answer: str, variable: str) -> str | Verdict:
    """``"anonymous"`` or ``"file-backed"`` for the spellings a learner may use; else the Verdict that says so
    (not answered yet, or neither kind), naming the notebook's ``variable`` to set."""
    if unanswered(answer):
        return not_answered(f'set `{variable} = "anonymous"` or `{variable} = "file-backed"`, then run the cell.')
    chosen = _MEMORY_KINDS.get(str(answer).strip().lower().replace(" ", "-").replace("_", "-"))
    if chosen is None:
        return _verdict(False, f"{answer!r} is neither kind: answer \"anonymous\" or \"file-backed\".")
    return chosen


def check_mmap_answer(answer: str, stages: Mapping[str, MemorySample]) -> Verdict:
    """Lesson 00: which kind of RSS grew when every page of the mapped file was read, ``"anonymous"`` or
    ``"file-backed"``?

    Where the OS does not split RSS (macOS, Windows) the answer is judged against what Linux shows, and the
    verdict says that this machine could not measure it.
    """
    chosen = _memory_kind(answer, "answer")
    if isinstance(chosen, Verdict):
        return chosen
    before, after = stages["mapped"], stages["touched"]
    if before.rss_file_bytes is None or before.rss_anon_bytes is None:
        # Nothing measured to judge by: judge by how mmap works (a mapped file's pages are the page cache's).
        ok = chosen == "file-backed"
        return _verdict(ok, "This OS does not split RSS into anonymous and file-backed, so this run cannot show "
                            "it; on Linux, reading mapped pages grows the file-backed part: they are the page "
                            "cache's pages, mapped into the process"
                            + ("." if ok else ", and only a copy (the `bytearray`) makes anonymous memory."))
    file_growth = after.rss_file_bytes - before.rss_file_bytes
    anon_growth = after.rss_anon_bytes - before.rss_anon_bytes
    measured = "file-backed" if file_growth > anon_growth else "anonymous"
    why = (f"reading the mapped pages added {fmt(file_growth)} of file-backed RSS and {fmt(anon_growth)} of "
           "anonymous RSS: the pages are the page cache's, mapped into the process, not a private copy.")
    if chosen == measured:
        return _verdict(True, f"It is {measured}: {why}")
    return _verdict(False, f"You answered {chosen}, but {why} Anonymous memory appeared only at the next step, "
                           "when the `bytearray` copied the file.")


def check_model_bytes(answer: int, info: CheckpointInfo) -> Verdict:
    """Lesson 00: how many bytes do the weights take in RAM once loaded in the checkpoint's dtype?"""
    if unanswered(answer):
        return not_answered("write an expression of `info`, e.g. `info.parameters * <bytes per number>`.")
    if not _is_number(answer):
        return _verdict(False, f"The answer should be a number of bytes, not {type(answer).__name__}.")
    itemsize = bytes_per_number(info.dtype)
    expected = info.parameters * itemsize
    why = (f"{info.parameters:,} parameters × {itemsize} bytes ({info.dtype}) = {fmt(expected)}; the checkpoint's "
           f"tensors are {fmt(info.total_bytes)} on disk: one copy of the model is one checkpoint's worth of RAM.")
    if abs(int(answer) - expected) <= 0.01 * expected:
        return _verdict(True, why)
    hint = "`info.parameters` numbers, each in `info.dtype`: how many bytes does one such number take?"
    if abs(int(answer) - info.parameters) <= 0.01 * info.parameters:
        return _wrong("model_bytes", "That is the number of parameters, not of bytes.", hint, why)
    other = [name for name, size in BYTES_PER_NUMBER.items() if size != itemsize
             and abs(int(answer) - info.parameters * size) <= 0.01 * info.parameters * size]
    if other:
        return _wrong("model_bytes", f"That is the size in {other[0]}, but this checkpoint is {info.dtype}.",
                      "look at `info.dtype`.", why)
    return _wrong("model_bytes", f"You answered {fmt(int(answer))}, which is not the weights' size in RAM.", hint,
                  why)


def check_normal_peak(answer: int, report: Report, tolerance: float = 0.35) -> Verdict:
    """Lesson 01: predict normal loading's peak above baseline, in bytes, before looking at the plot."""
    if unanswered(answer):
        return not_answered("write your prediction in bytes, as an expression of `info` (e.g. a multiple of "
                            "`info.total_bytes`).")
    if not _is_number(answer):
        return _verdict(False, f"The prediction should be a number of bytes, not {type(answer).__name__}.")
    measured = report.peak_above_baseline_bytes
    if measured is None:
        return _verdict(False, f"The normal run has no peak to compare with ({report.outcome}); run it again.")
    why = (f"the run measured {fmt(measured)} above baseline ({_ratio(report.peak_ratio)} the checkpoint): a "
           "random-weight model and the whole state dict are both in RAM while load_state_dict copies one into "
           "the other.")
    if abs(int(answer) - measured) <= tolerance * measured:
        return _verdict(True, f"You predicted {fmt(int(answer))}; {why}")
    # A first wrong try gets the reason and a hint, not the measured peak (it would give the answer away).
    if report.checkpoint_bytes and abs(int(answer) - report.checkpoint_bytes) <= 0.25 * report.checkpoint_bytes:
        reason = f"You predicted {fmt(int(answer))}, about one checkpoint: that is the *result* of the load."
        hint = "the peak comes earlier, while the freshly built model and the state dict read from disk both exist."
    else:
        reason = f"You predicted {fmt(int(answer))}, more than {tolerance:.0%} away from the measured peak."
        hint = ("count the copies of the weights in RAM at the worst moment: the model built with random weights, "
                "and what `load_state_dict` is given.")
    return _wrong("normal_peak", reason, hint, f"The answer: {why[0].upper()}{why[1:]}")


def check_copies_at_peak(answer: str, report: Report, share: float = 0.8) -> Verdict:
    """Lesson 01: from which event on were both copies in RAM? Answer with the event's kind.

    Judged on the run, not on one lucky sample: an event kind is right when the RSS sampled just after its first
    occurrence had already reached ``share`` of the kernel's peak above baseline (both copies), and it came
    before the copy into the model began (``weights_assigned``). The earliest such kind is the answer; a later
    one is "both were already there".
    """
    if unanswered(answer):
        return not_answered('write an event kind as a string, e.g. `answer = "model_built"`.')
    peak = report.peak_above_baseline_bytes
    base = report.baseline_rss_bytes
    if peak is None or base is None or not report.timeline.samples:
        return _verdict(False, "The run has no peak to judge by; run it again.")
    first: dict[str, Any] = {}
    for event in report.timeline.events:
        first.setdefault(event.kind, event)
    if answer not in first:
        return _verdict(False, f"{answer!r} is not an event kind of this run; its kinds are "
                               f"{', '.join(sorted(first))}.")

    def above(kind: str) -> int:
        sample = sample_at(report, first[kind].t_s)
        return sample.rss_bytes - base if sample is not None else 0

    copy_t = first["weights_assigned"].t_s if "weights_assigned" in first else float("inf")
    both = [kind for kind, event in sorted(first.items(), key=lambda item: item[1].t_s)
            if event.t_s <= copy_t and above(kind) >= share * peak]
    level = f"{fmt(above(answer))} above baseline just after '{first[answer].label}'"
    peak_text = f"the kernel's peak was {fmt(peak)} above baseline ({_ratio(report.peak_ratio)} the checkpoint)"
    if not both:
        return _verdict(False, f"No event before the copy was sampled at the peak level; {peak_text}. Run it again.")
    if answer in both and first[answer].t_s <= first[both[0]].t_s:
        return _verdict(True, f"RSS was {level}, and {peak_text}: from here the random model and the whole "
                              "state dict were both in RAM.")
    if first[answer].t_s < first[both[0]].t_s:
        return _verdict(False, f"RSS was {level}, short of both copies ({peak_text}): the state dict was not "
                               f"all read yet. Look a little later.")
    return _verdict(False, f"Both copies were in RAM before '{first[answer].label}': already just after "
                           f"'{first[both[0]].label}' (kind {both[0]!r}). Look earlier.")


def check_low_cpu_mem_usage(answer: bool, truth: Mapping[str, Any], with_flag: Report,
                            without_flag: Report) -> Verdict:
    """Lesson 02 / 06: does ``low_cpu_mem_usage`` change anything in the installed transformers?"""
    if unanswered(answer):
        return not_answered("answer `True` or `False`.")
    chosen = _as_bool(answer)
    if chosen is None:
        return _verdict(False, f"Answer True or False, not {answer!r}.")
    a, b = with_flag.peak_above_baseline_bytes, without_flag.peak_above_baseline_bytes
    measured_same = a is not None and b is not None and abs(a - b) <= 0.15 * max(a, b, 1)
    honoured = truth.get("honoured")
    expected = bool(honoured) if honoured is not None else not measured_same
    why = (f"{truth.get('evidence')} (`{truth.get('source_file')}`, line {truth.get('source_line')}). Measured: "
           f"{fmt(a)} above baseline with the flag, {fmt(b)} without.")
    return _verdict(chosen == expected, f"The flag {'does' if expected else 'does not'} change anything "
                                        f"here: {why}")


def check_empty_model(model: Any, config: Any) -> Verdict:
    """Lesson 02: is ``model`` an empty model *of* ``config`` that can be filled and run: the parameters that
    config's model has (same names, same shapes), on meta, and its buffers real?

    >>> import torch
    >>> from transformers import LlamaConfig
    >>> config = LlamaConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
    ...                      num_key_value_heads=2, vocab_size=32)
    >>> check_empty_model(torch.nn.Linear(3, 3, device="meta"), config).ok
    False
    """
    if unanswered(model):
        return not_answered("build a model of `config` so that no weight takes RAM, and assign it to `my_empty`.")
    if not hasattr(model, "parameters") or not hasattr(model, "named_buffers"):
        return _verdict(False, f"`my_empty` should be a torch module, not {type(model).__name__}.")
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        expected = {name: tuple(p.shape) for name, p in AutoModelForCausalLM.from_config(config).named_parameters()}
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    if shapes != expected:
        differ = sorted(set(shapes) ^ set(expected)) or [n for n in expected if shapes[n] != expected[n]]
        return _verdict(False, f"It is not the model of `config`: it has {len(shapes)} parameter tensors where "
                               f"that model has {len(expected)}, and they differ at {differ[0]}. Build it from "
                               "`config` (`AutoModelForCausalLM.from_config(config)`).")
    params = {p.device.type for p in model.parameters()}
    meta_buffers = [name for name, b in model.named_buffers() if b.device.type == "meta"]
    if params != {"meta"}:
        return _verdict(False, f"Its parameters are on {sorted(params)}: they were allocated. Build it under "
                               "`torch.device(\"meta\")` or `init_empty_weights()` so no weight takes RAM before "
                               "the checkpoint is read.")
    if meta_buffers:
        return _verdict(False, f"Its buffers {meta_buffers[:2]} are on meta too. They are not in the checkpoint "
                               "(non-persistent), so nothing will fill them and forward will fail: re-create them "
                               "on the CPU, as transformers does, or build under `init_empty_weights()`, which "
                               "keeps buffers real.")
    n_buffers = sum(1 for _ in model.buffers())
    return _verdict(True, f"It is the model of `config`, all its parameters are on meta (no RAM used) and its "
                          f"{n_buffers} buffer(s) are real, so after the weights are assigned, forward works.")


def check_max_memory(answer: int, folder: str | os.PathLike[str], low: float = 0.3, high: float = 0.7) -> Verdict:
    """Lesson 03: pick a ``max_memory`` that puts roughly half the weights on disk (planned by
    :func:`disk_share`, the planner ``from_pretrained`` itself runs)."""
    if unanswered(answer):
        return not_answered("write a number of bytes, e.g. a fraction of `info.total_bytes`.")
    if not _is_number(answer) or answer < 0:
        return _verdict(False, f"max_memory should be a number of bytes (0 or more), not {answer!r}.")
    places = disk_share(folder, int(answer))
    total = sum(places.values()) or 1
    share = places.get("disk", 0) / total
    ok = low <= share <= high
    text = (f"max_memory={fmt(int(answer))} puts {fmt(places.get('disk', 0))} of {fmt(total)} ({share:.0%}) on "
            f"disk and {fmt(places.get('cpu', 0))} in RAM")
    if ok:
        return _verdict(True, text + ".")
    direction = "lower" if share < low else "raise"
    return _verdict(False, f"{text}; aim for between {low:.0%} and {high:.0%} on disk: {direction} max_memory.")


def check_offload_writes(answer: Mapping[str, bool], reports: Mapping[str, Report]) -> Verdict:
    """Lesson 03: for each way of offloading, does it write files into the offload folder?"""
    if unanswered(answer):
        return not_answered("replace each `...` in the dict with `True` (it writes files) or `False`.")
    wrong = []
    facts = []
    for name, report in reports.items():
        wrote = report.offload_folder_files > 0
        facts.append(f"{name}: {report.offload_folder_files} file(s), {fmt(report.offload_folder_bytes)}")
        if name not in answer or _as_bool(answer[name]) != wrote:
            wrong.append(name)
    text = "Measured — " + "; ".join(facts) + "."
    if not wrong:
        return _verdict(True, text)
    return _wrong("offload_writes", f"Check {', '.join(wrong)}.",
                  "look at what each run left in its offload folder (`runs[name].offload_folder_files`): the format "
                  "and the library that offloads decide it.", text)


_YES = frozenset({"true", "yes", "y", "1"})
_NO = frozenset({"false", "no", "n", "0"})


def _as_bool(value: Any) -> bool | None:
    """A yes/no answer as a bool: ``True``/``False``, or words such as ``"yes"``/``"no"`` (``"no"`` is False,
    where ``bool("no")`` would be True); None for anything else.

    >>> _as_bool("no"), _as_bool("Yes"), _as_bool(False), _as_bool("maybe"), _as_bool(1)
    (False, True, False, None, None)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in _YES else False if word in _NO else None
    return None


def check_shard_of(answer: str, folder: str | os.PathLike[str], tensor: str) -> Verdict:
    """Lesson 04: which file holds ``tensor``, according to the index?"""
    if unanswered(answer):
        return not_answered(f"write the file name (a string) that holds {tensor}; the index's `weight_map` has it.")
    from ..core.checkpoints import weight_map

    mapping = weight_map(folder)
    actual = mapping[tensor]
    if answer == actual:
        return _verdict(True, f"The index maps {tensor} to {actual}; a loader that needs one tensor opens one file.")
    if answer not in set(mapping.values()):
        return _verdict(False, f"{answer!r} is not a file of this checkpoint; its files are "
                               f"{', '.join(sorted(set(mapping.values())))}.")
    return _wrong("shard_of", f"{answer} is a shard of this checkpoint, but not the one that holds {tensor}.",
                  f"look {tensor} up in the index's `weight_map`.", f"The index maps {tensor} to {actual}.")


def _send(fn: Any, label: str, **extra: Any) -> str | Verdict:
    """``fn`` packed for a measured child, or the Verdict that says in one sentence why it cannot be."""
    from ..core.errors import OptionError
    from ..core.learner_code import pack_function

    try:
        return pack_function(fn, label, **extra)
    except OptionError as exc:
        return _verdict(False, exc.message)


def _load_peak(report: Report, until_kind: str) -> int | None:
    """The highest RSS above baseline from the load start to the first ``until_kind`` event: the learner's
    function alone, not the forward the runner runs after it. The child's own reading at each event carries the
    kernel's high-water mark so far, reset at the load start, so a spike between two samples counts too (only
    from /proc: the portable probe's mark may include the process's start-up)."""
    base = report.baseline_rss_bytes
    end = next((e.t_s for e in report.timeline.events if e.kind == until_kind), None)
    if base is None or end is None:
        return None
    exact = report.peak_source == "VmHWM"
    levels = [max(s.rss_bytes, (s.hwm_bytes or 0) if exact else 0)
              for s in report.timeline.samples if 0 <= s.t_s <= end]
    return max(levels) - base if levels else None


def check_manual_loader(loader: Callable[[Path], Any], folder: str | os.PathLike[str], reference: Report) -> Verdict:
    """Lesson 04: run ``loader(folder)`` as the toolkit runs a strategy, in a fresh measured process (nothing
    this kernel did before counts), and judge what it did.

    Right when it read each shard itself, once (one ``shard_read`` per shard: ``read_shard``, ``load_file``,
    ``safe_open`` or ``torch.load``), assigned each (``load_state_dict``) before reading the next, its
    process grew by at most one copy plus the largest shard while it ran, and the logits are bit-identical to
    ``reference``'s.

    >>> print(check_manual_loader(lambda folder: None, "/nowhere", None))
    ✘ `my_loader` is a lambda, whose source cannot be cut out of its line; write it as `def my_loader(...):`.
    """
    if unanswered(loader):
        return not_answered("define `my_loader(folder)` that returns the loaded model, one shard at a time.")
    if not callable(loader):
        return _verdict(False, f"`my_loader` should be a function of the folder, not {type(loader).__name__}.")
    code = _send(loader, "my_loader")
    if isinstance(code, Verdict):
        return code
    from ..core.checkpoints import inspect_checkpoint
    from ..measure.runner import run

    info = inspect_checkpoint(folder)
    report = run(folder, "learner_loader", code=code, forwards=1)
    if report.outcome != "ok":
        return _verdict(False, f"Run in a fresh process on the checkpoint, `my_loader` did not finish: "
                               f"{(report.error or report.outcome).rstrip('.')}.")
    n = report.details.get("shards", len(info.shards))
    read = report.details.get("read", [])
    if not read:
        return _verdict(False, f"`my_loader` read none of the {n} shards itself: it opened none with read_shard, "
                               "load_file, safe_open or torch.load. Hint: loop over "
                               "`lab.shard_files(folder)` and read each with `lab.read_shard(path)`.")
    limit = info.total_bytes + info.largest_shard.tensor_bytes
    grew = _load_peak(report, "loader_returned")
    if grew is not None and grew > limit:
        return _verdict(False, f"While it ran, its process grew by {fmt(grew)} ({grew / info.total_bytes:.2f}× "
                               f"the checkpoint), above one copy plus the largest shard ({fmt(limit)}): the "
                               "weights were in RAM more than once at a time. Hint: start from "
                               "`lab.build_empty_model(folder)` (weights on meta) and let each shard become the "
                               "parameters with `assign=True`.")
    twice = sorted({name for name in read if read.count(name) > 1})
    if twice or len(read) != n:
        return _verdict(False, f"`my_loader` read {len(read)} shard(s) for the {n} of the checkpoint"
                               + (f" ({', '.join(twice)} more than once)" if twice else "")
                               + ". Hint: read each file of `lab.shard_files(folder)` once.")
    kinds = [e.kind for e in report.timeline.events if e.kind in ("shard_read", "shard_assigned")]
    for k in range(1, len(kinds)):
        if kinds[k] == kinds[k - 1] == "shard_read":
            shard = 1 + kinds[:k].count("shard_read")
            return _verdict(False, f"`my_loader` read shard {shard} before any load_state_dict since it read "
                                   f"shard {shard - 1}: the shards piled up in RAM before the model held them. "
                                   "Hint: assign each shard before reading the next.")
    if report.logits_sha256 != reference.logits_sha256:
        return _verdict(False, "The model runs but its logits differ from the reference run's: some tensor was not "
                               "loaded, or was loaded into the wrong place.")
    return _verdict(True, f"Run in a fresh process, it read the {n} shards one at a time, each assigned before "
                          f"the next; its process grew by {fmt(grew)} while it ran (within one copy plus the "
                          "largest shard), and the logits are bit-identical to the reference run's.")


def _limit_words(report: Report) -> str:
    """How this run's budget was enforced, as the clause a verdict quotes."""
    if report.budget_mode == "cgroup":
        return "a real kernel limit (a memory cgroup)"
    counts = report.details.get("budget_counts")
    return "the watchdog" + (f", which counts {counts}" if counts else "")


def check_fits_prediction(answer: Iterable[str], budget_reports: Iterable[Report]) -> Verdict:
    """Lesson 05: which strategies did you predict would finish under the budget? Compared with the budgeted
    runs, and each wrong name explained from its run: what was counted, what the kernel killed or re-read.

    >>> from widgetlib.measure.report import Report
    >>> run = Report(strategy="manual_shards", checkpoint="/ck", checkpoint_bytes=1, budget_mode="cgroup",
    ...              peak_rss_bytes=90, budget_bytes=80, major_faults=7, limit_events={"oom_kill": 0})
    >>> print(check_fits_prediction(set(), [run]))  # doctest: +ELLIPSIS
    ✘ Under the budget, enforced by a real kernel limit (a memory cgroup), these finished: manual_shards; \
manual_shards finished too: ... (major faults, ...: manual_shards 7).
    """
    if unanswered(answer):
        return not_answered('write a set of strategy names, e.g. `{"manual_shards"}`.')
    if isinstance(answer, str):
        answer = {answer}
    predicted = set(answer)
    budget_reports = list(budget_reports)
    by_name = {r.strategy: r for r in budget_reports}
    fitted = {r.strategy for r in budget_reports if r.ok}
    unknown = predicted - set(by_name)
    if unknown:
        return _verdict(False, f"{', '.join(sorted(unknown))} did not run under the budget; the strategies are "
                               f"{', '.join(sorted(by_name))}.")
    limits = sorted({_limit_words(r) for r in budget_reports})
    # The limit is said once, up front, when every run had the same; each reason below then names no limit.
    text = (f"Under the budget{f', enforced by {limits[0]},' if len(limits) == 1 else ''} these finished: "
            f"{', '.join(sorted(fitted)) or 'none'}")
    if predicted == fitted:
        return _verdict(True, text + ": a limit stops what cannot be given back (anonymous memory), and makes "
                                     "file-backed pages be read again.")

    def under(r: Report) -> str:
        return "" if len(limits) == 1 else f"under {_limit_words(r)}, "

    reasons = []
    for name in sorted(predicted - fitted):
        r = by_name[name]
        killed = (r.limit_events or {}).get("oom_kill")
        how = (f"the kernel OOM-killed it (oom_kill {killed})" if r.budget_stop and r.budget_stop.get("by") == "kernel"
               else f"it was stopped ({r.outcome})")
        reasons.append(f"{name} was stopped: {under(r)}{how}; what it allocates itself (a random-weight model, a "
                       "state dict read into RAM) is anonymous memory, which nothing can reclaim")
    extra = [by_name[name] for name in sorted(fitted - predicted)]
    squeezed = [r for r in extra if r.budget_mode == "cgroup"]
    if squeezed:
        faults = [f"{r.strategy} {r.major_faults}" for r in squeezed if r.major_faults]
        reasons.append(f"{', '.join(r.strategy for r in squeezed)} finished too: {under(squeezed[0])}what counts "
                       "is the memory a run cannot give back, and a run's file-backed pages (the mapped checkpoint) "
                       "can be dropped and read again"
                       + (f" (major faults, reads from disk that cost time, not the process: {', '.join(faults)})"
                          if faults else ""))
    for r in extra:
        if r.budget_mode != "cgroup":
            over = r.peak_rss_bytes is not None and r.budget_bytes is not None and r.peak_rss_bytes > r.budget_bytes
            reasons.append(f"{r.strategy} finished too: {under(r)}what it holds stayed inside the budget"
                           + (f" although its RSS peaked at {fmt(r.peak_rss_bytes)}" if over else ""))
    return _verdict(False, text + "; " + "; ".join(reasons) + ".")


def check_what_a_limit_counts(answer: str, reports: Iterable[Report], budget_reports: Iterable[Report]) -> Verdict:
    """Lesson 05: which kind of memory decides who is stopped under a limit, ``"anonymous"`` or
    ``"file-backed"``? Judged from the unbudgeted runs' growth (``reports``) against the room each budgeted run
    had (its ``budget_bytes`` minus the baseline) and who was stopped (``budget_reports``).

    Where the probe gives no anonymous/file split, the answer is judged by how a kernel limit works, and the
    verdict says that this machine could not show it.
    """
    chosen = _memory_kind(answer, "my_kind")
    if isinstance(chosen, Verdict):
        return chosen

    budgeted = {r.strategy: r for r in budget_reports}
    rows = []
    for r in reports:
        b = budgeted.get(r.strategy)
        if b is None or b.budget_bytes is None or r.baseline_rss_bytes is None or r.peak_above_baseline_bytes is None:
            continue
        anon = non_reclaimable_growth(r)
        rows.append((r.strategy, anon, None if anon is None else r.peak_above_baseline_bytes - anon,
                     b.budget_bytes - r.baseline_rss_bytes, not b.ok))
    if not rows or any(anon is None for _, anon, _, _, _ in rows):
        ok = chosen == "anonymous"
        return _verdict(ok, "This probe does not split RSS into anonymous and file-backed, so these runs cannot "
                            "show it; a kernel limit reclaims clean file-backed pages (and re-reads them later) "
                            "and kills only when anonymous memory does not fit"
                            + ("." if ok else ": file-backed pages cost time, not the process."))
    facts = "; ".join(f"{name}: anonymous +{fmt(anon)}, file-backed +{fmt(file)}, "
                      f"{'stopped' if stopped else 'finished'}" for name, anon, file, _, stopped in rows)
    room = max(room for *_, room, _ in rows)
    separates = all((anon > room) == stopped for _, anon, _, room, stopped in rows)
    text = f"Room above baseline {fmt(room)}. Unbudgeted growth — {facts}."
    if chosen == "anonymous" and separates:
        return _verdict(True, "Anonymous: exactly the runs whose anonymous memory outgrew the room were stopped. "
                              + text)
    if chosen == "anonymous":
        return _verdict(False, "Anonymous is how a limit works, but these runs do not show it: the room does not "
                               "separate them by their anonymous growth. Run the lesson again. " + text)
    return _verdict(False, "Not file-backed: runs whose file-backed pages outgrew the room finished anyway, "
                           "because the kernel can drop those pages and read them again from the file; what it "
                           "cannot drop is anonymous memory. " + text)


def check_myths(answers: Mapping[str, bool], evidence: Mapping[str, bool],
                reasons: Mapping[str, str] | None = None) -> Verdict:
    """Lesson 06: mark each claim True or False; ``evidence`` holds what this notebook's runs showed, and
    ``reasons`` (where given) what in a run decided each claim, told from the second wrong try on.

    >>> check_myths({"a": True}, {"a": True}).ok
    True
    """
    if unanswered(answers):
        return not_answered("replace each `...` in the dict with `True` (the claim holds) or `False`.")
    missing = [claim for claim in evidence if claim not in answers]
    if missing:
        return _verdict(False, "Judge every claim; missing: " + "; ".join(missing) + ".")
    unclear = [claim for claim in evidence if _as_bool(answers[claim]) is None]
    if unclear:
        return _verdict(False, "Answer True or False for: " + "; ".join(
            f"{claim} (not {answers[claim]!r})" for claim in unclear) + ".")
    wrong = [claim for claim, truth in evidence.items() if _as_bool(answers[claim]) != truth]
    if wrong:
        return _wrong("myths", f"Look again at: {'; '.join(wrong)}.",
                      "each claim's section above ends with what its run showed; a claim holds only if the run "
                      "bears it out.",
                      "The runs say: " + "; ".join(
                          f"{claim}: {evidence[claim]}" + (f" ({reasons[claim]})" if reasons and claim in reasons
                                                           else "") for claim in wrong) + ".")
    return _verdict(True, f"All {len(evidence)} claims judged as the measurements say.")


# The harmless .bin checkpoint the safe-loader check hands the learner's function when none is given: small (the
# check judges what it refuses, not memory) and in two shards, so a loader that reads only one file is seen.
_SAFE_LOAD_CHECKPOINT: dict[str, Any] = {"size": "4MB", "shards": 2, "format": "bin"}


def check_safe_loader(load: Callable[[Path], Any], folder: str | os.PathLike[str] | None = None) -> Verdict:
    """Lesson 06: run ``load(path)`` in a fresh measured process on every shard of a harmless ``.bin``
    checkpoint (``folder``, else one built for the check) and then on a hostile ``.bin``: right when it returns
    each harmless shard's tensors and refuses the hostile file before any of its code runs.

    >>> print(check_safe_loader("torch.load"))
    ✘ `safe_load` should be a function of a path, not str.
    """
    if unanswered(load):
        return not_answered("define `safe_load(path)` that loads a `.bin` file's tensors and nothing else.")
    if not callable(load):
        return _verdict(False, f"`safe_load` should be a function of a path, not {type(load).__name__}.")
    from ..core.checkpoints import make_checkpoint
    from ..measure.runner import run

    folder = folder if folder is not None else make_checkpoint(**_SAFE_LOAD_CHECKPOINT)
    with tempfile.TemporaryDirectory(prefix="offload-lab-hostile-") as tmp:
        path, marker = hostile_pickle(tmp)
        code = _send(load, "safe_load", hostile=str(path))
        if isinstance(code, Verdict):
            return code
        report = run(folder, "learner_safe_load", code=code, forwards=1)
        ran = marker.exists()
    if report.outcome != "ok":
        return _verdict(False, f"On a harmless .bin checkpoint, `safe_load` did not finish: "
                               f"{(report.error or report.outcome).rstrip('.')}. A safe "
                               "loader refuses only what is not a tensor. Hint: torch.load has an argument for "
                               "exactly that.")
    hostile = report.details.get("hostile", {})
    if ran:
        return _verdict(False, "It loaded the harmless shards, but the hostile file's payload ran: this loader "
                               "unpickles arbitrary objects. Hint: torch.load(..., weights_only=True), or a "
                               ".safetensors file.")
    if "raised" not in hostile:
        return _verdict(False, f"It loaded the harmless shards, and the hostile file too (it returned "
                               f"{hostile.get('returned', 'something')}): a file that asks to run code must be "
                               "refused.")
    kind = hostile.get("kind")
    return _verdict(True, "Run in a fresh process, it loaded the harmless shards (the model they filled ran) and "
                          f"refused the hostile file with {hostile['raised']}" + (f" (kind {kind!r})" if kind else "")
                          + " before its payload ran: weights_only unpickles tensors and nothing else.")
