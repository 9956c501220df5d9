"""The catalogue of real model shapes and their twins.

Cheap by design: every full-size check runs on the meta device (names and shapes, nothing allocated); the files
written are twins with a handful of layers and, where the real embedding alone would be hundreds of MB, a small
vocabulary (``overrides``), so no test writes more than ~20 MB.
"""

from __future__ import annotations

import pytest

from widgetlib.cli import main
from widgetlib.core.catalogue import CATALOGUE, catalogue_config
from widgetlib.core.checkpoints import inspect_checkpoint, make_twin, twin_tensors
from widgetlib.measure.plan import plan

transformers = pytest.importorskip("transformers")


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFLOAD_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_every_entry_plans_within_three_percent_of_its_published_parameter_count(own_cache) -> None:
    for name, entry in CATALOGUE.items():
        config = catalogue_config(name)
        assert isinstance(config, transformers.PreTrainedConfig), name
        # By hub id once, by catalogue name otherwise: both reach the same config.
        result = plan(entry["hub_id"] if name == "qwen3-0.6b" else name, ram="1TB", baseline_bytes=5 * 10**8)
        assert result.from_config_only and result.info.dtype == entry["config"]["dtype"], name
        off = result.info.parameters / entry["published_parameters"] - 1
        assert abs(off) < 0.03, (name, result.info.parameters, entry["published_parameters"])
        # The twin's tensors at full size are the plan's: one count, tied weights once.
        assert sum(t.numel for t in twin_tensors(config)) == result.info.parameters, name


def test_twin_tensors_keep_the_checkpoints_names() -> None:
    gpt2 = {t.name for t in twin_tensors(catalogue_config("gpt2", layers=1))}
    assert "transformer.wte.weight" in gpt2 and "lm_head.weight" not in gpt2  # tied: stored once
    mixtral = {t.name: t.shape for t in twin_tensors(catalogue_config("mixtral-8x7b", layers=1))}
    # Stored per expert, as on the hub; transformers fuses them into experts.gate_up_proj only when it loads.
    assert mixtral["model.layers.0.block_sparse_moe.experts.7.w1.weight"] == (14336, 4096)
    assert not [name for name in mixtral if "gate_up_proj" in name]


_SMALL_MOE = {"hidden_size": 64, "intermediate_size": 64, "moe_intermediate_size": 32, "num_attention_heads": 4,
              "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 512}
TWINS = {
    # The real GPT-2 shape but for the vocabulary (50257 x 768 would be 77 MB alone): ~19 MB in bfloat16.
    "gpt2": {"vocab_size": 2048, "bos_token_id": 0, "eos_token_id": 0},
    "mixtral-8x7b": {k: v for k, v in _SMALL_MOE.items() if k != "moe_intermediate_size"},
    "qwen3-30b-a3b": _SMALL_MOE,
}


@pytest.mark.parametrize("name", TWINS)
def test_a_twin_loads_in_transformers_with_every_tensor_in_place(tmp_path, name: str) -> None:
    folder = make_twin(tmp_path / name, name, layers=1, dtype="bfloat16", overrides=TWINS[name])
    info = inspect_checkpoint(folder)
    assert info.dtype == "bfloat16" and info.total_bytes < 30 * 10**6
    _, loading = transformers.AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not loading["missing_keys"] and not loading["unexpected_keys"] and not loading["mismatched_keys"]
    # Asking again finds it complete and writes nothing.
    assert make_twin(folder, name, layers=1, dtype="bfloat16", overrides=TWINS[name]) == folder


def test_make_checkpoint_like_refuses_sizes_of_its_own(tmp_path, capsys) -> None:
    assert main(["make-checkpoint", str(tmp_path / "t"), "--like", "gpt2", "--size", "1GB"]) == 2
    assert "--like gpt2 takes its sizes from the real model" in capsys.readouterr().err
    assert main(["make-checkpoint", str(tmp_path / "t"), "--like", "no-such-model"]) == 2
    assert "is not in the catalogue" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_a_folder_with_only_a_config_can_be_twinned(tmp_path) -> None:
    transformers.Qwen2Config(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2).save_pretrained(tmp_path / "config-only")
    folder = make_twin(tmp_path / "twin", tmp_path / "config-only", layers=2)
    info = inspect_checkpoint(folder)
    assert info.model_type == "qwen2" and info.dtype == "float32"
    assert transformers.AutoConfig.from_pretrained(folder).num_hidden_layers == 2
    _, loading = transformers.AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not loading["missing_keys"] and not loading["unexpected_keys"]
