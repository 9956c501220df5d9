"""``explain_call`` / ``offload-lab explain``: every verdict on a learner's from_pretrained call is checked against
what a real load of a tiny checkpoint does (loaded here, in this process, with transformers itself), so a wrong
verdict fails; the measured comparisons are checked against their own runs.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from widgetlib.cli import main
from widgetlib.core import from_pretrained_source
from widgetlib.core.calls import call_values, literal_value, parse_call
from widgetlib.core.errors import OptionError
from widgetlib.core.from_pretrained_source import CallReading, read_call
from widgetlib.measure.explain import AS_WRITTEN, explain_call


@pytest.fixture(scope="module")
def tiny(offload_lab_cache: Path) -> Path:
    """An 8 MB float32 safetensors LLaMA (one file): loads in a fraction of a second."""
    from widgetlib.core.checkpoints import make_checkpoint

    return make_checkpoint(size="8MB")


@pytest.fixture(scope="module")
def tiny_bin(offload_lab_cache: Path) -> Path:
    """The same as ``.bin``: weights sent to disk must be written again, into the offload folder."""
    from widgetlib.core.checkpoints import make_checkpoint

    return make_checkpoint(size="8MB", format="bin")


# ----------------------------------------------------------------------------------------- a real load, here


@dataclass
class Loaded:
    model: Any = None
    error: BaseException | None = None
    logged: list[str] = field(default_factory=list)
    folder: Path | None = None

    @property
    def folder_made(self) -> bool | None:
        return self.folder.exists() if self.folder is not None else None

    @property
    def files_written(self) -> int:
        return sum(1 for p in self.folder.rglob("*") if p.is_file()) if self.folder_made else 0  # type: ignore[union-attr]

    @property
    def places(self) -> set[str]:
        device_map = getattr(self.model, "hf_device_map", None) or {}
        return {str(v) for v in device_map.values()}


def load(code: str, checkpoint: Path, scratch: Path) -> Loaded:
    """Run ``code``'s call with transformers in this process, as a learner would: the checkpoint for their model
    name, a fresh folder under ``scratch`` for their offload folder. Keeps the error and what was logged."""
    import transformers
    from transformers.utils import logging as hf_logging

    call = parse_call(code)
    name = call.class_name
    cls = getattr(transformers, name) if name and name[:1].isupper() else transformers.AutoModelForCausalLM
    target = scratch / f"offload-{len(list(scratch.iterdir())) if scratch.exists() else 0}"
    scratch.mkdir(parents=True, exist_ok=True)
    args, kwargs = call_values(call, checkpoint, target)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("transformers")
    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    logger.addHandler(handler)
    loaded = Loaded()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded.model = cls.from_pretrained(*args, **kwargs)
    except Exception as exc:  # what the learner would see
        loaded.error = exc
    finally:
        logger.removeHandler(handler)
        hf_logging.set_verbosity(before)
    loaded.logged = [str(w.message) for w in caught] + [r.getMessage() for r in records]
    loaded.folder = target if call.keyword("offload_folder") else None
    return loaded


def same_model(a: Loaded, b: Loaded) -> bool:
    """The same weights (values and dtypes), the same config, the same placement."""
    if a.model is None or b.model is None:
        return False
    sa, sb = a.model.state_dict(), b.model.state_dict()
    if sa.keys() != sb.keys():
        return False
    for key in sa:
        x, y = sa[key], sb[key]
        if x.dtype != y.dtype or x.device.type != y.device.type or (x.device.type != "meta" and not x.equal(y)):
            return False
    config_a = {k: v for k, v in a.model.config.to_dict().items() if k != "_name_or_path"}
    config_b = {k: v for k, v in b.model.config.to_dict().items() if k != "_name_or_path"}
    return config_a == config_b and a.places == b.places


def check_verdicts_hold(reading: CallReading, checkpoint: Path, scratch: Path) -> dict[str, Loaded]:
    """Every verdict must say what a real load does. Each argument said to break the call must break it alone,
    added to the call without them (which must load); every other verdict is checked on that call."""
    call = reading.call
    base = call
    breaking = [v for v in reading.verdicts if v.kind in ("fails", "removed") and v.position is None]
    for verdict in breaking:
        base = base.without(verdict.argument)
    found = {AS_WRITTEN: load(call.source, checkpoint, scratch)}
    loaded = found["base"] = load(base.source, checkpoint, scratch)
    for verdict in reading.verdicts:
        # every citation is a real line of the installed source
        for citation in verdict.citations:
            assert Path(citation.path).read_text(encoding="utf-8").splitlines()[citation.line - 1].strip() == \
                citation.text, citation
        assert "transformers " + reading.transformers_version in verdict.says or verdict.position == 0
        if verdict.position is not None:
            continue
        if verdict in breaking:
            alone = load(base.source[:-1] + f", {verdict.written})", checkpoint, scratch)
            assert isinstance(alone.error, TypeError) and f"'{verdict.argument}'" in str(alone.error)
            assert str(alone.error) in verdict.says  # the verdict quotes the very error a learner sees
            continue
        assert loaded.error is None, (base.source, loaded.error)
        if verdict.kind in ("ignored", "no_effect"):
            without = found[verdict.argument] = load(base.without(verdict.argument).source, checkpoint, scratch)
            assert without.error is None and same_model(loaded, without), verdict
            assert not loaded.folder_made, verdict  # an offload folder that does nothing is not even made
        elif verdict.kind == "renamed":
            renamed = load(base.renamed(verdict.argument, verdict.renamed_to).source, checkpoint, scratch)
            assert renamed.error is None and same_model(loaded, renamed)
        elif verdict.kind == "config":
            value = literal_value(call.keyword(verdict.argument).source)[1]  # type: ignore[union-attr]
            assert getattr(loaded.model.config, verdict.argument) == value
    return found


# ---------------------------------------------------------------------- the calls learners copy from advice pages


def test_the_notes_own_call_low_cpu_mem_usage_and_offload_folder_do_nothing(tiny: Path, tmp_path: Path) -> None:
    code = "model = AutoModelForCausalLM.from_pretrained(model_path, low_cpu_mem_usage=True, offload_folder=tmp)"
    reading = read_call(code, tiny)
    assert [(v.argument, v.kind) for v in reading.verdicts] == [
        ("model_path", "used"), ("low_cpu_mem_usage", "ignored"), ("offload_folder", "no_effect")]
    ignored = reading.verdict("low_cpu_mem_usage")
    assert "Not used anymore" in ignored.says and "low_cpu_mem_usage" in ignored.citations[0].text
    offload = reading.verdict("offload_folder")
    assert "device_map is not None" in offload.says and "`device_map`" in offload.says  # its docstring, quoted
    loads = check_verdicts_hold(reading, tiny, tmp_path)
    assert loads[AS_WRITTEN].folder_made is False and loads[AS_WRITTEN].places == set()


def test_offload_state_dict_is_popped_and_ignored(tiny: Path, tmp_path: Path) -> None:
    reading = read_call("AutoModelForCausalLM.from_pretrained(p, offload_state_dict=True)", tiny)
    assert reading.verdict("offload_state_dict").kind == "ignored"
    check_verdicts_hold(reading, tiny, tmp_path)


def test_load_in_8bit_fails_in_the_model_init_and_the_replacement_is_read_from_the_source(
        tiny: Path, tmp_path: Path) -> None:
    reading = read_call("AutoModelForCausalLM.from_pretrained(p, load_in_8bit=True)", tiny)
    verdict = reading.verdict("load_in_8bit")
    assert verdict.kind == "removed" and reading.model_class == "LlamaForCausalLM"
    assert verdict.advice == "pass `quantization_config=BitsAndBytesConfig(load_in_8bit=True)` instead"
    assert any(c.file.endswith("quantization_config.py") and "load_in_8bit" in c.text for c in verdict.citations)
    assert any(c.file.endswith("modeling_llama.py") and "def __init__" in c.text for c in verdict.citations)
    check_verdicts_hold(reading, tiny, tmp_path)
    # Without a checkpoint the model's config is unknown: the verdict says so and still names the replacement.
    blind = read_call("AutoModelForCausalLM.from_pretrained(p, load_in_8bit=True)").verdict("load_in_8bit")
    assert blind.kind == "removed" and "give checkpoint= to decide" in blind.says and blind.advice == verdict.advice


def test_torch_dtype_is_renamed_and_its_deprecation_message_is_the_one_logged(tiny: Path, tmp_path: Path) -> None:
    reading = read_call("AutoModelForCausalLM.from_pretrained(p, torch_dtype=torch.float16)", tiny)
    verdict = reading.verdict("torch_dtype")
    assert verdict.kind == "renamed" and verdict.renamed_to == "dtype"
    message = "`torch_dtype` is deprecated! Use `dtype` instead!"
    assert message in verdict.says and any(message in c.text for c in verdict.citations)
    loads = check_verdicts_hold(reading, tiny, tmp_path)
    assert str(loads[AS_WRITTEN].model.dtype) == "torch.float16" and message in loads[AS_WRITTEN].logged
    # Written as the class itself, the same verdict: the flag fills dtype there too.
    direct = read_call("LlamaForCausalLM.from_pretrained(p, torch_dtype=torch.float16)", tiny)
    assert direct.verdict("torch_dtype").kind == "renamed"
    check_verdicts_hold(direct, tiny, tmp_path)
    # Given both, dtype wins and torch_dtype does nothing.
    both = read_call("AutoModelForCausalLM.from_pretrained(p, dtype='bfloat16', torch_dtype='float16')", tiny)
    assert both.verdict("torch_dtype").kind == "no_effect" and both.verdict("dtype").kind == "used"
    loads = check_verdicts_hold(both, tiny, tmp_path)
    assert str(loads[AS_WRITTEN].model.dtype) == "torch.bfloat16"


def test_offload_folder_and_max_memory_without_device_map_do_nothing(tiny: Path, tmp_path: Path) -> None:
    reading = read_call("AutoModelForCausalLM.from_pretrained(p, offload_folder='x', max_memory={'cpu': 1})", tiny)
    assert reading.verdict("offload_folder").kind == "no_effect"
    assert reading.verdict("max_memory").kind == "no_effect"
    assert "`device_map is not None`" in reading.verdict("max_memory").says
    loads = check_verdicts_hold(reading, tiny, tmp_path)  # one byte of max_memory, and every weight in RAM
    assert loads[AS_WRITTEN].error is None and loads[AS_WRITTEN].places == set()


def test_device_map_auto_with_and_without_offload_folder_and_max_memory(tiny: Path, tiny_bin: Path,
                                                                         tmp_path: Path) -> None:
    alone = read_call("AutoModelForCausalLM.from_pretrained(p, device_map='auto')", tiny)
    assert alone.verdict("device_map").kind == "used"
    # With a device map, offload_folder is read only where weights go to disk: decided when it runs.
    with_folder = read_call("AutoModelForCausalLM.from_pretrained(p, device_map='auto', offload_folder='x')", tiny)
    assert with_folder.verdict("offload_folder").kind == "depends"
    assert "'disk'" in with_folder.verdict("offload_folder").says
    roomy = load(with_folder.call.source, tiny, tmp_path)
    assert roomy.error is None and "disk" not in roomy.places and roomy.folder_made is False  # it all fit in RAM
    code = ("AutoModelForCausalLM.from_pretrained(p, device_map='auto', max_memory={'cpu': 3_000_000}, "
            "offload_folder='x')")
    tight = read_call(code, tiny)
    assert tight.verdict("max_memory").kind == "used" and tight.verdict("offload_folder").kind == "depends"
    small_ram = load(code, tiny_bin, tmp_path)
    assert "disk" in small_ram.places  # max_memory was used: weights went to disk
    assert small_ram.files_written > 0  # and the .bin weights sent there were written into the offload folder
    in_place = load(code, tiny, tmp_path)
    assert "disk" in in_place.places and in_place.files_written == 0  # safetensors are read where they are
    failed = load(tight.call.without("offload_folder").source, tiny_bin, tmp_path)
    assert isinstance(failed.error, ValueError) and "offload_folder" in str(failed.error)


def test_a_misspelt_keyword_is_named_with_the_nearest_real_one(tiny: Path, tmp_path: Path) -> None:
    reading = read_call("AutoModelForCausalLM.from_pretrained(p, low_cpu_mem_usge=True)", tiny)
    verdict = reading.verdict("low_cpu_mem_usge")
    assert verdict.kind == "fails" and verdict.nearest == "low_cpu_mem_usage"
    assert "nearest real argument is `low_cpu_mem_usage` (popped and ignored here)" in verdict.says
    check_verdicts_hold(reading, tiny, tmp_path)
    blind = read_call("AutoModelForCausalLM.from_pretrained(p, low_cpu_mem_usge=True)").verdict("low_cpu_mem_usge")
    assert blind.kind == "unknown" and blind.nearest == "low_cpu_mem_usage"


def test_an_extra_positional_argument_goes_to_the_model_init(tiny: Path, tmp_path: Path) -> None:
    reading = read_call("AutoModelForCausalLM.from_pretrained(p, 'extra')", tiny)
    first, extra = reading.verdicts
    assert first.kind == "used" and first.position == 0 and "pretrained_model_name_or_path" in first.says
    assert extra.kind == "fails" and extra.position == 1
    real = load(reading.call.source, tiny, tmp_path)
    assert isinstance(real.error, TypeError) and str(real.error) in extra.says


def test_a_class_and_a_variable_in_front_of_from_pretrained(tiny: Path, tmp_path: Path) -> None:
    direct = read_call("LlamaForCausalLM.from_pretrained(p, use_cache=False, low_cpu_mem_usage=True)", tiny)
    assert direct.model_class == "LlamaForCausalLM" and not direct.notes
    assert direct.verdict("use_cache").kind == "config"
    assert any(c.text == "if hasattr(config, key):" for c in direct.verdict("use_cache").citations)
    check_verdicts_hold(direct, tiny, tmp_path)
    variable = read_call("model_class.from_pretrained(p, use_cache=False, low_cpu_mem_usage=True)", tiny)
    assert "read as AutoModelForCausalLM" in variable.notes[0] and variable.model_class == "LlamaForCausalLM"
    assert [v.kind for v in variable.verdicts] == [v.kind for v in direct.verdicts]
    check_verdicts_hold(variable, tiny, tmp_path)


def test_another_architecture_reads_its_own_config_and_init(gpt2_checkpoint: Path, tmp_path: Path) -> None:
    reading = read_call("AutoModelForCausalLM.from_pretrained(p, use_cache=False, output_attention=True, "
                        "offload_state_dict=True)", gpt2_checkpoint)
    assert reading.model_class == "GPT2LMHeadModel"
    assert [v.kind for v in reading.verdicts[1:]] == ["config", "fails", "ignored"]
    assert "GPT2Config" in reading.verdict("use_cache").says
    assert reading.verdict("output_attention").nearest == "output_attentions"
    check_verdicts_hold(reading, gpt2_checkpoint, tmp_path)


@pytest.mark.parametrize("code, says", [
    ("print('hello')", "is not a from_pretrained(...) call"),
    ("AutoModelForCausalLM.from_pretrained(p", "is not Python this checker can read"),
    ("AutoTokenizer.from_pretrained('gpt2')", "loads a AutoTokenizer, not a model"),
    ("a = X.from_pretrained(p); b = Y.from_pretrained(q)", "holds 2 from_pretrained calls"),
    ("   ", "is empty"),
])
def test_a_line_that_is_not_one_model_call_is_refused_in_one_sentence(code: str, says: str) -> None:
    with pytest.raises(OptionError) as refused:
        explain_call(code)
    message = refused.value.message
    assert refused.value.kind == "not_a_call" and says in message
    assert "\n" not in message and message.endswith(".")


def test_a_source_without_the_patterns_is_not_guessed_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "transformers"
    fake.mkdir()
    (fake / "modeling_utils.py").write_text("class PreTrainedModel:\n    def save_pretrained(self):\n        pass\n")
    monkeypatch.setattr(from_pretrained_source, "transformers_root", lambda: fake)
    reading = read_call("AutoModelForCausalLM.from_pretrained(p, low_cpu_mem_usage=True, load_in_8bit=True)")
    assert {v.kind for v in reading.verdicts} == {"not_found"}
    assert all("not found in the installed transformers" in v.says and v.says.endswith("measure it.")
               for v in reading.verdicts)


# ------------------------------------------------------------------------------------------------ measured


def test_measured_the_notes_call_shows_that_both_arguments_change_nothing(tiny: Path) -> None:
    code = "AutoModelForCausalLM.from_pretrained(model_path, low_cpu_mem_usage=True, offload_folder=tmp)"
    explanation = explain_call(code, tiny, measure=True)
    labels = [m.label for m in explanation.runs]
    assert labels == [AS_WRITTEN, "without low_cpu_mem_usage", "without offload_folder",
                      "without low_cpu_mem_usage, offload_folder"]
    assert all(m.report.ok for m in explanation.runs), [m.report.error for m in explanation.runs]
    assert len({m.report.logits_sha256 for m in explanation.runs}) == 1
    written = explanation.runs[0].report
    assert written.offload_folder_bytes == 0 and written.details["offload_folder_made"] is False
    assert set(written.device_map) == {"cpu"}
    sentences = explanation.comparisons()
    assert len(sentences) == 3 and all(s.endswith("changed nothing here, measured.") for s in sentences)
    text = explanation.text()
    assert "Measured on" in text and "without offload_folder" in text and "offload folder written" in text


def test_measured_a_failing_call_shows_the_error_the_fix_and_what_the_rest_changes(tiny: Path) -> None:
    code = ("AutoModelForCausalLM.from_pretrained(p, load_in_8bit=True, offload_state_dict=True, "
            "torch_dtype=torch.float16)")
    explanation = explain_call(code, tiny, measure=True)
    as_written, fixed, *rest = explanation.runs
    assert not as_written.report.ok and fixed.report.ok and fixed.label == "without load_in_8bit"
    assert as_written.learner_error == ("TypeError: LlamaForCausalLM.__init__() got an unexpected keyword argument "
                                        "'load_in_8bit'")
    why = explanation.why_it_fails()
    assert why[0] == f"As written the call fails with `{as_written.learner_error}`."
    assert "pass `quantization_config=BitsAndBytesConfig(load_in_8bit=True)` instead" in why[1]
    assert all(m.against == fixed.label and m.report.ok for m in rest)
    renamed = explanation.run("without load_in_8bit; dtype= for torch_dtype=")
    assert renamed.report.logits_sha256 == fixed.report.logits_sha256
    deprecated = "`torch_dtype` is deprecated! Use `dtype` instead!"
    assert deprecated in fixed.warnings and deprecated not in renamed.warnings
    sentences = dict(zip([m.label for m in explanation.runs if m.against], explanation.comparisons(), strict=True))
    assert sentences["without load_in_8bit"].endswith("`load_in_8bit` broke it.")
    assert sentences["without load_in_8bit, offload_state_dict"].endswith("changed nothing here, measured.")
    assert sentences[renamed.label].endswith("changed nothing here but the log, measured.")


def test_measured_offload_folder_matters_for_a_bin_checkpoint_sent_to_disk(tiny_bin: Path) -> None:
    code = ("AutoModelForCausalLM.from_pretrained(p, device_map='auto', max_memory={'cpu': 3_000_000}, "
            "offload_folder=o)")
    explanation = explain_call(code, tiny_bin, measure=True)
    written, without = explanation.runs
    assert written.report.ok and written.report.offload_folder_files > 0 and "disk" in written.placement
    assert not without.report.ok and "offload_folder" in without.learner_error
    assert explanation.comparisons()[0].endswith("`offload_folder` is needed here.")


def test_a_value_the_measured_process_cannot_rebuild_is_not_run(tiny: Path) -> None:
    explanation = explain_call("AutoModelForCausalLM.from_pretrained(p, quantization_config=bnb)", tiny, measure=True)
    assert explanation.runs == [] and explanation.not_measured.startswith("quantization_config=bnb names a value")
    assert "Not measured:" in explanation.text()
    with pytest.raises(OptionError, match="measure=True loads the call, so it needs checkpoint="):
        explain_call("AutoModelForCausalLM.from_pretrained(p)", measure=True)


# ------------------------------------------------------------------------------------------ CLI and layers


def test_cli_explain_prints_verdicts_with_citations_and_measures(tiny: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["explain", "AutoModelForCausalLM.from_pretrained(p, offload_state_dict=True)"]) == 0
    out = capsys.readouterr().out
    assert "offload_state_dict=True: popped and ignored" in out and "transformers/modeling_utils.py:" in out
    assert main(["explain", "AutoModelForCausalLM.from_pretrained(p, max_memory={'cpu': 1})", "--checkpoint",
                 str(tiny), "--measure", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["verdicts"][1]["kind"] == "no_effect" and document["transformers"]
    assert [r["label"] for r in document["runs"]] == [AS_WRITTEN, "without max_memory"]
    assert document["comparisons"][0].endswith("changed nothing here, measured.")
    assert main(["explain", "print(1)"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 'print(1)' is not a from_pretrained(...) call")


def test_reading_a_call_imports_neither_torch_nor_transformers() -> None:
    code = ("import sys, widgetlib as lab; "
            "e = lab.explain_call('AutoModelForCausalLM.from_pretrained(p, low_cpu_mem_usage=True)'); "
            "assert e.reading.verdicts[1].kind == 'ignored'; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("argument, wrong_kind", [("max_memory", "no_effect"), ("device_map", "ignored"),
                                                  ("offload_folder", "fails")])
def test_a_wrong_verdict_is_caught_by_the_real_load(argument: str, wrong_kind: str, tiny: Path,
                                                    tmp_path: Path) -> None:
    from dataclasses import replace

    reading = read_call("AutoModelForCausalLM.from_pretrained(p, device_map='auto', max_memory={'cpu': 3_000_000}, "
                        "offload_folder='x')", tiny)
    wrong = tuple(replace(v, kind=wrong_kind) if v.argument == argument else v for v in reading.verdicts)
    with pytest.raises(AssertionError):
        check_verdicts_hold(replace(reading, verdicts=wrong), tiny, tmp_path)
