"""``explain_call``: what the installed transformers does with every argument of a learner's own
``from_pretrained(...)`` line, read from its source (:mod:`widgetlib.core.from_pretrained_source`), then, with
``measure=True``, shown: the call as written and the call without each argument found to do nothing (or to
break it), each loaded in its own measured process like every strategy, side by side.

>>> explanation = explain_call("AutoModelForCausalLM.from_pretrained(path, offload_state_dict=True)")
>>> explanation.reading.verdict("offload_state_dict").label
'popped and ignored'
>>> "transformers/modeling_utils.py:" in explanation.text()
True
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from typing import Any

from ..core.calls import ParsedCall, parse_call, unmeasurable
from ..core.errors import OptionError
from ..core.from_pretrained_source import CallReading, read_call
from ..core.sizes import format_bytes
from .render import report_table_markdown, report_table_text
from .report import Report

__all__ = ["CALL_STRATEGY", "CallExplanation", "MeasuredCall", "explain_call"]

# The registered strategy that runs a learner's line as written (core/registry.py).
CALL_STRATEGY = "from_pretrained_call"
AS_WRITTEN = "as written"


@dataclass
class MeasuredCall:
    """One measured run of a variant of the call: ``label`` ("as written", "without offload_folder"), the call
    it ran, its Report, the arguments it leaves out or renames (``changed``) and the label of the run it is
    compared with (``against``: the call as written, or the call that loads once what breaks it is gone)."""

    label: str
    call: str
    report: Report
    changed: tuple[str, ...] = ()
    against: str | None = None

    @property
    def learner_error(self) -> str | None:
        """The error a learner running this call sees: the last line of its traceback (``TypeError: ...``), or
        the run's own sentence when there is no traceback; None when it loaded.

        >>> r = Report(strategy=CALL_STRATEGY, checkpoint="/ck", checkpoint_bytes=1, outcome="error",
        ...            error="The load failed with TypeError: x", details={"traceback": "Traceback...\\nTypeError: x"})
        >>> MeasuredCall(AS_WRITTEN, "from_pretrained(p)", r).learner_error
        'TypeError: x'
        """
        if self.report.ok:
            return None
        lines = [line for line in str(self.report.details.get("traceback", "")).splitlines() if line.strip()]
        return lines[-1].strip() if lines else self.report.error

    @property
    def placement(self) -> dict[str, int]:
        """Bytes of weights per place (``cpu``, ``disk``, ``cuda:0``) after the load."""
        return {place: entry["bytes"] for place, entry in sorted(self.report.device_map.items())}

    @property
    def warnings(self) -> list[str]:
        """What the call warned or logged at WARNING and above, in order."""
        return list(self.report.details.get("warnings") or [])


def _placement_text(placement: dict[str, int]) -> str:
    return ", ".join(f"{place} {format_bytes(n)}" for place, n in placement.items()) or "nothing"


def _quoted(texts: list[str]) -> str:
    return "; ".join(f'"{t}"' for t in texts)


def _compare(base: MeasuredCall, other: MeasuredCall) -> str:
    """What changed from ``base`` to ``other``, measured: logits, placement, offload folder, log; peaks shown."""
    names = ", ".join(f"`{name}`" for name in other.changed)
    head = other.label[:1].upper() + other.label[1:]
    if base.label != AS_WRITTEN:
        head += f" (against {base.label})"
    a, b = base.report, other.report
    if not a.ok or not b.ok:
        if not a.ok and b.ok:
            return (f"{head} it loads ({format_bytes(b.peak_above_baseline_bytes)} above the baseline, load "
                    f"{b.load_s:.2f} s); {base.label} it fails with `{base.learner_error}`: {names} broke it.")
        if a.ok:
            return f"{head} the call fails with `{other.learner_error}`: {names} is needed here."
        return f"{head} it still fails, with `{other.learner_error}`."
    differences = []
    if a.logits_sha256 != b.logits_sha256:
        differences.append("different logits")
    if base.placement != other.placement:
        differences.append(f"weights placed {_placement_text(other.placement)} instead of "
                           f"{_placement_text(base.placement)}")
    if a.offload_folder_bytes != b.offload_folder_bytes:
        differences.append(f"{format_bytes(b.offload_folder_bytes)} written to the offload folder instead of "
                           f"{format_bytes(a.offload_folder_bytes)}")
    peaks = (f"peaks {format_bytes(a.peak_above_baseline_bytes)} and {format_bytes(b.peak_above_baseline_bytes)} "
             "above the baseline")
    gone = [w for w in base.warnings if w not in other.warnings]
    new = [w for w in other.warnings if w not in base.warnings]
    logs = (f"; the log line {_quoted(gone)} appears only in \"{base.label}\"" if gone else "") + (
        f"; new in the log: {_quoted(new)}" if new else "")
    if differences:
        return f"{head}: {'; '.join(differences)} ({peaks}){logs}. {names} made that difference."
    same = (f"{head}: the same logits, the same placement ({_placement_text(base.placement)}), "
            f"{format_bytes(a.offload_folder_bytes)} written to the offload folder both times; {peaks}{logs}.")
    return same + (f" {names} changed nothing here but the log, measured." if gone or new else
                   f" {names} changed nothing here, measured.")


@dataclass
class CallExplanation:
    """The verdicts on a call (``reading``) and, when measured, one run per variant (``runs``, the call as
    written first). ``not_measured`` says why nothing was run when ``measure=True`` could not run the call."""

    reading: CallReading
    checkpoint: str | None = None
    runs: list[MeasuredCall] = field(default_factory=list)
    not_measured: str | None = None

    @property
    def call(self) -> ParsedCall:
        """The call as parsed."""
        return self.reading.call

    def run(self, label: str) -> MeasuredCall:
        """The measured run called ``label`` ("as written", "without offload_folder", ...)."""
        for measured in self.runs:
            if measured.label == label:
                return measured
        raise KeyError(f"no run labelled {label!r}; the runs are {[m.label for m in self.runs]}")

    # ------------------------------------------------------------------------------- the measured story

    def comparisons(self) -> list[str]:
        """One sentence per variant against the run it is compared with, from the figures of both."""
        runs = {m.label: m for m in self.runs}
        return [_compare(runs[m.against], m) for m in self.runs if m.against in runs]

    def why_it_fails(self) -> list[str]:
        """For a call that failed as written: the error a learner sees, and one sentence per argument that the
        installed source says breaks it, with what to write instead."""
        if not self.runs or self.runs[0].report.ok:
            return []
        version = f"transformers {self.reading.transformers_version}"
        model = self.reading.model_class or "the model"
        lines = [f"As written the call fails with `{self.runs[0].learner_error}`."]
        for verdict in self.reading.verdicts:
            if not verdict.breaks:
                continue
            if verdict.position:
                why = f"`{verdict.written}` is passed on to {model}.__init__, which takes only the config"
            else:
                why = (f"`{verdict.argument}` is not a from_pretrained argument in {version}, so it reaches "
                       f"{model}.__init__, which takes no `{verdict.argument}`")
            lines.append(f"{why}{': ' + verdict.advice if verdict.advice else ''}.")
        return lines

    # ------------------------------------------------------------------------------------- rendering

    def _header(self) -> list[str]:
        reading = self.reading
        model = f"; the model class: {reading.model_class}" if reading.model_class else ""
        return [f"Read from transformers {reading.transformers_version} ({reading.source_root}){model}.",
                *reading.notes]

    def text(self, width: int = 110) -> str:
        """Plain text, for a terminal (``offload-lab explain``)."""
        out = [self.call.source, *self._header(), ""]
        for verdict in self.reading.verdicts:
            out.append(f"{verdict.written}: {verdict.label}")
            out += textwrap.wrap(verdict.says, width=width, initial_indent="    ", subsequent_indent="    ")
            out += [f"    {c}  {c.text}" for c in verdict.citations]
        out += self._measured_text(width)
        return "\n".join(out)

    def _measured_text(self, width: int) -> list[str]:
        if self.not_measured:
            return ["", f"Not measured: {self.not_measured}"]
        if not self.runs:
            return []
        out = ["", f"Measured on {self.checkpoint}, each call in its own process:",
               report_table_text([m.report for m in self.runs], [m.label for m in self.runs]), ""]
        for sentence in [*self.why_it_fails(), *self.comparisons()]:
            out += textwrap.wrap(sentence, width=width, initial_indent="- ", subsequent_indent="  ")
        out += ["", "The calls run:"] + [f"  {m.label}: {m.call}" for m in self.runs]
        return out

    def markdown(self) -> str:
        """Markdown, for a notebook (what ``display(explanation)`` shows)."""
        out = [f"`{self.call.source}`", "", *(f"{line}  " for line in self._header()), ""]
        for verdict in self.reading.verdicts:
            out.append(f"- **`{verdict.written}`**: *{verdict.label}*. {verdict.says}")
            out += [f"  - `{c}`: `{c.text}`" for c in verdict.citations]
        if self.not_measured:
            out += ["", f"Not measured: {self.not_measured}"]
        elif self.runs:
            out += ["", f"Measured on `{self.checkpoint}`, each call in its own process:", "",
                    report_table_markdown([m.report for m in self.runs], [m.label for m in self.runs]), ""]
            out += [f"- {sentence}" for sentence in [*self.why_it_fails(), *self.comparisons()]]
            out += ["", "The calls run:", ""] + [f"- {m.label}: `{m.call}`" for m in self.runs]
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __str__(self) -> str:
        return self.text()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the reading and, per run, its label, call and Report."""
        return {
            **self.reading.to_dict(),
            "checkpoint": self.checkpoint,
            "not_measured": self.not_measured,
            "runs": [{"label": m.label, "call": m.call, "changed": list(m.changed), "against": m.against,
                      "learner_error": m.learner_error, "report": m.report.to_dict()} for m in self.runs],
            "comparisons": self.comparisons(),
        }


def _label(steps: list[tuple[str, str]]) -> str:
    """``[("without", "a"), ("without", "b"), ("renamed", "dtype= for torch_dtype=")]`` ->
    ``"without a, b; dtype= for torch_dtype="``."""
    parts: list[str] = []
    for kind, text in steps:
        if kind == "without" and parts and parts[-1].startswith("without "):
            parts[-1] += f", {text}"
        else:
            parts.append(f"without {text}" if kind == "without" else text)
    return "; ".join(parts) or AS_WRITTEN


def variants(reading: CallReading) -> list[tuple[str, ParsedCall, tuple[str, ...], str | None]]:
    """The calls a measurement runs, each as (label, call, arguments changed, label of the run it is compared
    with): as written; without every argument found to break it (compared with as written); then, on the call
    that is left, without each argument found to do nothing (a renamed one written under its new name instead),
    and all of those at once when there are several.

    >>> [v[0] for v in variants(read_call("from_pretrained(p, low_cpu_mem_usage=True, max_memory={})"))]
    ['as written', 'without low_cpu_mem_usage', 'without max_memory', 'without low_cpu_mem_usage, max_memory']
    """
    call = reading.call
    found: list[tuple[str, ParsedCall, tuple[str, ...], str | None]] = [(AS_WRITTEN, call, (), None)]
    base, fixes = call, []
    broken = [v for v in reading.verdicts if v.breaks and (v.position or call.keyword(v.argument) is not None)]
    for verdict in broken:
        if verdict.position:
            base = base.without_positional(next(i for i, a in enumerate(base.positional)
                                                if a.source == verdict.written))
        else:
            base = base.without(verdict.argument)
        fixes.append(("without", verdict.argument))
    base_label = _label(fixes)
    if broken:
        found.append((base_label, base, tuple(v.argument for v in broken), AS_WRITTEN))
    changes: list[tuple[str, tuple[str, str], ParsedCall]] = []  # (argument, its step, the call)
    for verdict in reading.verdicts:
        if verdict.position is not None or verdict.breaks or call.keyword(verdict.argument) is None:
            continue
        if verdict.kind == "renamed" and verdict.renamed_to and call.keyword(verdict.renamed_to) is None:
            changes.append((verdict.argument, ("renamed", f"{verdict.renamed_to}= for {verdict.argument}="),
                            base.renamed(verdict.argument, verdict.renamed_to)))
        elif verdict.no_effect:
            changes.append((verdict.argument, ("without", verdict.argument), base.without(verdict.argument)))
    for argument, step, variant in changes:
        found.append((_label([*fixes, step]), variant, (argument,), base_label))
    if len(changes) > 1:
        every = base
        for argument, (kind, _), _ in changes:
            renamed = reading.verdict(argument).renamed_to
            every = every.without(argument) if kind == "without" else every.renamed(argument, renamed)  # type: ignore[arg-type]
        found.append((_label([*fixes, *(step for _, step, _ in changes)]), every,
                      tuple(a for a, _, _ in changes), base_label))
    return found


def explain_call(code: str, checkpoint: str | os.PathLike[str] | None = None, *, measure: bool = False,
                 forwards: int = 1) -> CallExplanation:
    """Say what the installed transformers does with every argument of the ``from_pretrained`` call in ``code``
    (parsed with ``ast``, never run in this process), each verdict citing the file and line that decides it.

    ``checkpoint`` (a folder, or a model id in the local HF cache) tells which model class and config receive the
    keywords from_pretrained does not take. With ``measure=True`` the call is run on ``checkpoint`` as written
    and without each argument found to do nothing or to break it, each in its own measured process (``forwards``
    forward passes after each load), and the explanation shows peaks, times and what landed in the offload folder
    side by side. The learner's model name and offload folder are replaced by the checkpoint and a temporary
    folder; any other value must be written out (a literal or a torch dtype).

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> explanation = explain_call("AutoModelForCausalLM.from_pretrained(p, max_memory={'cpu': 10**6})",
    ...                            make_checkpoint(size="5MB"), measure=True)
    >>> explanation.reading.verdict("max_memory").kind, [m.label for m in explanation.runs]
    ('no_effect', ['as written', 'without max_memory'])
    >>> explanation.comparisons()[0].endswith("`max_memory` changed nothing here, measured.")
    True
    """
    call = parse_call(code)
    folder: str | None = None
    if checkpoint is not None:
        from ..core.hf_folder import inspect_checkpoint

        folder = str(inspect_checkpoint(checkpoint).folder)
    reading = read_call(call, folder)
    explanation = CallExplanation(reading, folder)
    if not measure:
        return explanation
    if folder is None:
        raise OptionError("measure=True loads the call, so it needs checkpoint= (a folder or a model id in your "
                          "local Hugging Face cache); give one.", kind="bad_option")
    reason = unmeasurable(call)
    if reason is None and call.class_name and call.class_name[:1].isupper() and reading.model_class is None:
        reason = f"{call.class_name} was not found in the installed transformers; the call cannot be run."
    if reason is not None:
        explanation.not_measured = reason
        return explanation
    from .runner import run

    for label, variant, changed, against in variants(reading):
        report = run(folder, CALL_STRATEGY, call=variant.source, forwards=forwards)
        explanation.runs.append(MeasuredCall(label, variant.source, report, changed, against))
    return explanation
