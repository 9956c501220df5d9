"""Architectures whose checkpoints transformers converts at load time, saved by transformers' own
``save_pretrained`` (tiny configs, built offline): the hand loaders (``normal``, ``manual_shards``) apply the same
conversion ``from_pretrained`` does, with transformers' own conversion code, and give the same logits.

- GPT-NeoX (Pythia's architecture) stores ``embed_out.weight`` for the model's ``lm_head.weight``: a renaming.
- Mixtral and Qwen3-MoE store one tensor per expert, which transformers combines into ``experts.gate_up_proj`` and
  ``experts.down_proj``; split over several shards, manual_shards holds the pieces until the last one is read.
- Qwen2 needs neither: the control.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from widgetlib import run
from widgetlib.core.options import LoadOptions
from widgetlib.core.strategies import load_manual_shards, load_normal

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_SMALL = {"vocab_size": 256, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
CONFIGS = {
    "gpt_neox": lambda: transformers.GPTNeoXConfig(**_SMALL, intermediate_size=64, tie_word_embeddings=False),
    "mixtral": lambda: transformers.MixtralConfig(**_SMALL, num_key_value_heads=2, intermediate_size=48,
                                                  num_local_experts=4, num_experts_per_tok=2),
    "qwen3_moe": lambda: transformers.Qwen3MoeConfig(**_SMALL, num_key_value_heads=2, intermediate_size=64,
                                                     moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
                                                     decoder_sparse_step=1),
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
@pytest.mark.parametrize("name", CONFIGS)
def test_hand_loaders_give_what_from_pretrained_gives(checkpoints: dict[str, Path], name: str, loader: str) -> None:
    import json

    folder = checkpoints[name]
    names = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    model_names = set(reference.state_dict())
    # The premise: what the checkpoint calls a tensor is not what the model calls it.
    if name == "gpt_neox":
        assert "embed_out.weight" in names and "lm_head.weight" in model_names - set(names)
    if name in ("mixtral", "qwen3_moe"):
        assert any(".experts.0." in key for key in names)
        assert any(key.endswith("experts.gate_up_proj") for key in model_names - set(names))
    loaded = HAND_LOADERS[loader](folder, LoadOptions(), lambda label, kind: None).model
    assert torch.equal(_logits(loaded, _SMALL["vocab_size"]), _logits(reference, _SMALL["vocab_size"]))


def test_manual_shards_holds_the_pieces_of_a_combined_tensor_until_the_last_is_read(
    checkpoints: dict[str, Path],
) -> None:
    import json

    folder = checkpoints["mixtral"]
    names = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    # The premise: one layer's experts are split over more than one shard.
    assert len({file for key, file in names.items() if "layers.0.block_sparse_moe.experts." in key}) > 1
    report = run(folder, "manual_shards")
    assert report.ok, report.error
    assert report.details["held_for_combining_peak_bytes"] > 0
    held = [e for e in report.timeline.events if e.kind == "pieces_held"]
    assert held and all("held until the rest are read" in e.label for e in held)
    plain = run(checkpoints["qwen2"], "manual_shards")
    assert plain.details["held_for_combining_peak_bytes"] == 0
    assert not [e for e in plain.timeline.events if e.kind == "pieces_held"]


def test_a_moe_checkpoints_logits_are_compared_with_a_stated_tolerance(checkpoints: dict[str, Path]) -> None:
    """transformers fuses the experts while it loads; the hand loader fuses them too, and the two agree to float
    rounding at least. The sentence says "bit-identical" only when the checksums match."""
    from widgetlib import teach

    reports = [run(checkpoints["mixtral"], strategy) for strategy in ("low_cpu_mem_usage", "manual_shards")]
    assert all(r.ok and r.logits_sample and len(r.logits_sample) == 256 for r in reports), [r.error for r in reports]
    assert teach.same_logits(reports)
    sentence = teach.same_logits_sentence(reports, teach.same_logits(reports))
    identical = reports[0].logits_sha256 == reports[1].logits_sha256
    assert ("bit-identical" in sentence) == identical, sentence
    assert identical or "max |diff|" in sentence, sentence
