"""Will it fit? ``lab.plan`` and ``offload-lab plan``: predictions from the weights' headers or config.json alone,
through the one estimator every measured run is put beside."""

from __future__ import annotations

from pathlib import Path

import pytest

from widgetlib import estimate_peak, inspect_checkpoint, plan
from widgetlib.cli import main
from widgetlib.measure.plan import HEADROOM, config_only_info


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny real models saved by transformers (weights and config), and their config.json alone."""
    import torch
    import transformers

    configs = {
        "gpt2": transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=500),  # tied embeddings
        "mistral": transformers.MistralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                              num_attention_heads=4, num_key_value_heads=2, vocab_size=500,
                                              dtype="bfloat16"),
    }
    folders = {}
    for name, config in configs.items():
        torch.manual_seed(0)
        full = tmp_path_factory.mktemp(name)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(config, "dtype", None))
        model.save_pretrained(full, max_shard_size="100KB")
        only = tmp_path_factory.mktemp(f"{name}-config")
        (only / "config.json").write_text((full / "config.json").read_text())
        folders[name], folders[f"{name}-config"] = full, only
    return folders


@pytest.mark.parametrize("name", ["gpt2", "mistral"])
def test_config_alone_gives_the_sizes_the_saved_weights_have(saved: dict[str, Path], name: str) -> None:
    real = inspect_checkpoint(saved[name])
    guessed = config_only_info(saved[f"{name}-config"], shard_bytes=100_000)
    assert (guessed.parameters, guessed.total_bytes, guessed.dtype) == (real.parameters, real.total_bytes, real.dtype)
    assert guessed.largest_tensor_bytes == real.largest_tensor_bytes
    assert guessed.tie_word_embeddings == real.tie_word_embeddings
    # Same file limit: about as many files (save_pretrained also splits by module, so not always the same).
    assert abs(len(guessed.shards) - len(real.shards)) <= max(1, len(real.shards) // 3), (guessed.shards, real.shards)


def test_a_plan_uses_the_estimate_runs_are_checked_against(saved: dict[str, Path]) -> None:
    info = inspect_checkpoint(saved["mistral"])
    result = plan(saved["mistral"], ram="4GB", baseline_bytes=400_000_000)
    for row in result.rows:
        max_memory = result.max_memory_bytes if row.strategy == "offload_folder" else None
        assert row.estimate == estimate_peak(info, row.strategy, max_memory_bytes=max_memory)
        assert row.verdict == "fits"


def test_a_plan_says_what_does_not_fit_and_what_is_tight(saved: dict[str, Path]) -> None:
    info = inspect_checkpoint(saved["mistral"])
    normal = estimate_peak(info, "normal").peak_above_baseline_bytes
    # RAM for exactly the baseline and normal's peak: inside the last HEADROOM, so tight, not fits.
    ram = 1_000_000 + normal
    rows = {r.strategy: r for r in plan(saved["mistral-config"], ram=ram, baseline_bytes=1_000_000).rows}
    assert rows["normal"].verdict == "tight"
    assert rows["offload_folder"].verdict == "fits" and rows["offload_folder"].disk_bytes == 0  # room for all
    squeezed = plan(saved["mistral-config"], ram=ram, baseline_bytes=1_000_000, max_memory=150_000).rows
    offloaded = {r.strategy: r for r in squeezed}["offload_folder"]
    assert 0 < offloaded.disk_bytes < inspect_checkpoint(saved["mistral"]).total_bytes, offloaded
    too_small = plan(saved["mistral-config"], ram=normal // 4, baseline_bytes=1_000_000)
    assert {r.strategy: r.verdict for r in too_small.rows}["normal"] == "does not fit"
    assert HEADROOM > 0


def test_offload_lab_plan_measures_the_baseline_and_prints_the_table(saved: dict[str, Path],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(saved["gpt2-config"]), "--ram", "8GB"]) == 0
    out = capsys.readouterr().out
    assert "planned from its config.json alone" in out and "| offload_folder |" in out, out
    assert "baseline takes 0 B" not in out, out  # a measured figure, not a missing one
