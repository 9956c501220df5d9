"""Architectures whose checkpoints transformers converts at load time, saved by transformers' own
``save_pretrained`` (tiny configs, built offline): the hand loaders (``normal``, ``manual_shards``) apply the same
conversion ``from_pretrained`` does, through transformers' own conversion code, or say truthfully that they cannot.

- GPT-NeoX (Pythia's architecture) stores ``embed_out.weight`` for the model's ``lm_head.weight``: a renaming.
- Mixtral stores one tensor per expert, which transformers fuses into ``experts.gate_up_proj``: a conversion
  these loaders do not do; the sentence says so and names the strategies that load it, never that a file is
  broken (every shard is there).
- Qwen2 needs neither: the control.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from widgetlib import run
from widgetlib.core.errors import CheckpointError
from widgetlib.core.options import LoadOptions
from widgetlib.core.strategies import load_manual_shards, load_normal

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_SMALL = {"vocab_size": 256, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
CONFIGS = {
    "gpt_neox": lambda: transformers.GPTNeoXConfig(**_SMALL, intermediate_size=64, tie_word_embeddings=False),
    "mixtral": lambda: transformers.MixtralConfig(**_SMALL, num_key_value_heads=2, intermediate_size=48,
                                                  num_local_experts=4, num_experts_per_tok=2),
    "qwen2": lambda: transformers.Qwen2Config(**_SMALL, num_key_value_heads=2, intermediate_size=64),
}
HAND_LOADERS = {"normal": load_normal, "manual_shards": load_manual_shards}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("architectures")
    folders = {}
    for name, make_config in CONFIGS.items():
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(make_config())
        # Several shards, so manual_shards goes shard by shard and a renamed tensor sits in one of them.
        model.save_pretrained(root / name, max_shard_size="40KB")
        assert len(list((root / name).glob("*.safetensors"))) > 1
        folders[name] = root / name
    return folders


def _logits(model, vocab_size: int):
    with torch.no_grad():
        return model(torch.arange(12).remainder(vocab_size).unsqueeze(0)).logits


@pytest.mark.parametrize("loader", HAND_LOADERS)
@pytest.mark.parametrize("name", ["gpt_neox", "qwen2"])
def test_hand_loaders_give_what_from_pretrained_gives(checkpoints: dict[str, Path], name: str, loader: str) -> None:
    folder = checkpoints[name]
    if name == "gpt_neox":  # the premise: the checkpoint's name is not the model's
        import json

        names = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
        assert "embed_out.weight" in names and "lm_head.weight" not in names
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    loaded = HAND_LOADERS[loader](folder, LoadOptions(), lambda label, kind: None).model
    assert torch.equal(_logits(loaded, _SMALL["vocab_size"]), _logits(reference, _SMALL["vocab_size"]))


@pytest.mark.parametrize("loader", HAND_LOADERS)
def test_a_fused_moe_checkpoint_is_refused_truthfully(checkpoints: dict[str, Path], loader: str) -> None:
    folder = checkpoints["mixtral"]
    with pytest.raises(CheckpointError) as caught:
        HAND_LOADERS[loader](folder, LoadOptions(), lambda label, kind: None)
    assert caught.value.kind == "needs_conversion"
    message = str(caught.value)
    assert str(folder) in message and "experts.0." in message and "experts." in message
    assert "low_cpu_mem_usage or offload_folder" in message
    for false_claim in ("incomplete", "re-download", "rebuild", "broken", "corrupt"):
        assert false_claim not in message
    # ... and what it names does load that checkpoint.
    assert transformers.AutoModelForCausalLM.from_pretrained(folder) is not None


def test_the_refusal_reaches_the_report(checkpoints: dict[str, Path]) -> None:
    report = run(checkpoints["mixtral"], "manual_shards")
    assert not report.ok
    assert report.error_kind == "needs_conversion", (report.outcome, report.error)
    assert "low_cpu_mem_usage or offload_folder" in report.error
    lighter = run(checkpoints["mixtral"], "low_cpu_mem_usage")
    assert lighter.ok, lighter.error
