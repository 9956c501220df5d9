"""widgetlib.core.checkpoints: building checkpoints offline, the cache, and inspecting any HF folder."""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from widgetlib.core import checkpoints, weights_writer
from widgetlib.core.checkpoints import (
    MARKER_FILE,
    CheckpointInfo,
    cache_dir,
    demo_checkpoint,
    inspect_checkpoint,
    make_checkpoint,
    read_shard,
    shard_files,
    weight_map,
)
from widgetlib.core.errors import CheckpointError, OptionError


def _sha256(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# --- sizes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "target_bytes", "dtype"),
    [
        ({"size": "30MB"}, 30_000_000, "float32"),
        ({"size": "40MB", "dtype": "bfloat16"}, 40_000_000, "bfloat16"),
        ({"size": "12MB", "dtype": "float16", "format": "bin"}, 12_000_000, "float16"),
        ({"params": "10M"}, 40_000_000, "float32"),
    ],
)
def test_checkpoint_size_is_within_two_percent_of_the_target(build_checkpoint, options, target_bytes, dtype):
    info = inspect_checkpoint(build_checkpoint(**options))
    assert info.dtype == dtype and info.dtypes == {dtype: info.total_bytes}
    assert abs(info.total_bytes - target_bytes) <= 0.02 * target_bytes
    assert info.total_bytes == info.parameters * torch.empty(0, dtype=getattr(torch, dtype)).element_size()
    assert info.architectures == ("LlamaForCausalLM",) and info.model_type == "llama"
    assert info.tie_word_embeddings is False
    config = json.loads((info.folder / "config.json").read_text())
    assert config["num_hidden_layers"] >= 4 and config["hidden_size"] % 64 == 0
    assert config["num_key_value_heads"] == config["num_attention_heads"] and config["head_dim"] == 64
    assert (info.folder / "generation_config.json").is_file()


@pytest.mark.parametrize(
    ("target_params", "hidden", "layers"),
    [(1_250_000, None, 4), (62_500_000, None, None), (250_000_000, None, None), (6_500_000_000, 4096, 32)],
)
def test_planned_shapes_hit_the_target_from_5mb_to_13gb(target_params, hidden, layers):
    # Planning only (building 13 GB here would take minutes); the formula is checked against transformers
    # on every real build (_llama_tensors), which the other tests exercise.
    plan = checkpoints._plan_model(target_params)
    assert abs(plan.parameters - target_params) <= 0.005 * target_params
    assert 4 <= plan.num_layers <= 32 and plan.hidden_size % 64 == 0
    assert 2 * plan.vocab_size * plan.hidden_size <= 0.31 * plan.parameters
    assert 1.5 <= plan.intermediate_size / plan.hidden_size <= 4
    if hidden is not None:
        assert plan.hidden_size == hidden
    if layers is not None:
        assert plan.num_layers == layers


def test_too_small_or_conflicting_targets_are_refused():
    with pytest.raises(OptionError, match="100KB") as err:
        make_checkpoint(size="100KB")
    assert err.value.kind == "bad_size"
    with pytest.raises(OptionError, match="only one"):
        make_checkpoint(size="1GB", params="100M")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"format": "onnx"}, "'onnx'"),
        ({"dtype": "int8"}, "'int8'"),
        ({"shards": 0}, "shards=0"),
        ({"size": "lots"}, "'lots'"),
        ({"max_shard_size": "big"}, "'big'"),
        ({"shards": 2, "max_shard_size": "5MB"}, "max_shard_size='5MB'"),
        ({"shards": 500}, "shards=500"),
    ],
)
def test_bad_options_raise_option_error_naming_the_value(tmp_path, options, named):
    with pytest.raises(OptionError) as err:
        make_checkpoint(tmp_path / "x", **{"size": "5MB", **options})
    assert named in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()


def test_allowed_values_are_listed_in_the_error():
    with pytest.raises(OptionError, match="safetensors, bin"):
        make_checkpoint(format="pickle")
    with pytest.raises(OptionError, match="float32, bfloat16, float16"):
        make_checkpoint(dtype="float64")


# --- layout and index ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["small_checkpoint", "small_bin_checkpoint"])
def test_index_is_consistent_with_the_shard_files(request, fixture):
    folder = request.getfixturevalue(fixture)
    index_name = "model.safetensors.index.json" if "bin" not in fixture else "pytorch_model.bin.index.json"
    index = json.loads((folder / index_name).read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) == 3 and all((folder / f).is_file() for f in files)
    assert [p.name for p in shard_files(folder)] == files
    seen: dict[str, str] = {}
    total_bytes = 0
    for file in files:
        tensors = read_shard(folder / file)
        for name, tensor in tensors.items():
            assert name not in seen, f"{name} is in {seen.get(name)} and {file}"
            seen[name] = file
            total_bytes += tensor.numel() * tensor.element_size()
    assert seen == index["weight_map"] == weight_map(folder)
    assert index["metadata"]["total_size"] == total_bytes == inspect_checkpoint(folder).total_bytes


def test_tensor_names_and_shapes_are_llama_s(small_checkpoint):
    from transformers import AutoConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(AutoConfig.from_pretrained(small_checkpoint))
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {}
    for path in shard_files(small_checkpoint):
        with safe_open(path, "pt") as f:
            assert f.metadata() == {"format": "pt"}
            found.update({name: tuple(f.get_slice(name).get_shape()) for name in f.keys()})
    assert found == expected
    assert "lm_head.weight" in found and "model.layers.0.mlp.gate_proj.weight" in found


@pytest.mark.parametrize("shards", [1, 2, 5])
def test_shards_splits_into_exactly_n_files_of_roughly_equal_bytes(build_checkpoint, shards):
    info = inspect_checkpoint(build_checkpoint(size="30MB", shards=shards))
    assert len(info.shards) == shards
    if shards == 1:
        assert info.index_file is None and info.shards[0].file == "model.safetensors"
    else:
        assert info.shards[0].file == f"model-00001-of-{shards:05d}.safetensors"
        assert max(s.tensor_bytes for s in info.shards) <= 1.5 * info.total_bytes / shards


def test_tiny_checkpoints_still_split_when_the_embedding_is_big(build_checkpoint):
    # 6 shards of a 4-layer model: the embedding alone is over a sixth, yet no shard may be empty.
    info = inspect_checkpoint(build_checkpoint(size="2MB", shards=6))
    assert len(info.shards) == 6 and all(s.tensors >= 1 for s in info.shards)


def test_max_shard_size_splits_like_hugging_face(build_checkpoint):
    folder = build_checkpoint(size="30MB", max_shard_size="8MB", format="bin")
    info = inspect_checkpoint(folder)
    assert info.index_file == "pytorch_model.bin.index.json" and len(info.shards) >= 4
    assert all(s.tensor_bytes <= 8_000_000 or s.tensors == 1 for s in info.shards)
    assert info.shards[-1].file == f"pytorch_model-{len(info.shards):05d}-of-{len(info.shards):05d}.bin"


# --- loading with plain transformers ---------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["small_checkpoint", "small_bin_checkpoint"])
def test_plain_from_pretrained_loads_it_and_produces_logits(request, fixture):
    from transformers import AutoModelForCausalLM

    folder = request.getfixturevalue(fixture)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3, 4]])).logits
    assert logits.shape == (1, 4, model.config.vocab_size) and torch.isfinite(logits).all()
    # The weights are the files' weights, not a fresh random init.
    last = read_shard(shard_files(folder)[-1])
    assert torch.equal(model.lm_head.weight, last["lm_head.weight"])
    assert torch.equal(model.model.norm.weight, torch.ones_like(model.model.norm.weight))


def test_bfloat16_checkpoint_loads_as_bfloat16(build_checkpoint):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(build_checkpoint(size="8MB", dtype="bfloat16"))
    assert model.dtype == torch.bfloat16


# --- determinism -----------------------------------------------------------------------------------------------


def test_same_spec_gives_bit_identical_files(build_checkpoint):
    first = build_checkpoint(size="20MB", shards=2)
    second = build_checkpoint(size="20MB", shards=2)
    assert first != second and _sha256(first) == _sha256(second)
    other_seed = build_checkpoint(size="20MB", shards=2, seed=1)
    shard = "model-00001-of-00002.safetensors"
    assert _sha256(other_seed)[shard] != _sha256(first)[shard]


def test_bin_and_safetensors_hold_the_same_weights(small_checkpoint, small_bin_checkpoint):
    for st_path, bin_path in zip(shard_files(small_checkpoint), shard_files(small_bin_checkpoint), strict=True):
        st, pt = read_shard(st_path), read_shard(bin_path, mmap=True)
        assert st.keys() == pt.keys() and all(torch.equal(st[k], pt[k]) for k in st)


def test_bin_files_are_deterministic_too(build_checkpoint):
    assert _sha256(build_checkpoint(size="6MB", format="bin")) == _sha256(
        build_checkpoint(size="6MB", format="bin")
    )


# --- cache -----------------------------------------------------------------------------------------------------


def test_cache_is_reused_without_rebuilding(offload_lab_cache, monkeypatch):
    first = make_checkpoint(size="10MB", seed=101)
    assert first.parent == offload_lab_cache / "checkpoints" and (first / MARKER_FILE).is_file()
    before = _snapshot(first)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a complete cached checkpoint was rebuilt")

    monkeypatch.setattr(checkpoints, "_write_folder", no_rebuild)
    assert make_checkpoint(size="10MB", seed=101) == first
    assert _snapshot(first) == before


@pytest.mark.parametrize("damage", ["delete_shard", "truncate_shard", "delete_marker", "delete_config"])
def test_damaged_cached_checkpoint_is_removed_and_rebuilt(damage):
    folder = make_checkpoint(size="10MB", shards=2, seed=200 + len(damage))
    good = _sha256(folder)
    shard = folder / "model-00002-of-00002.safetensors"
    if damage == "delete_shard":
        shard.unlink()
    elif damage == "truncate_shard":
        with open(shard, "r+b") as f:
            f.truncate(shard.stat().st_size - 1000)
    elif damage == "delete_marker":
        (folder / MARKER_FILE).unlink()
    else:
        (folder / "config.json").unlink()
    (folder / "stray.txt").write_text("from the damaged build")
    assert make_checkpoint(size="10MB", shards=2, seed=200 + len(damage)) == folder
    assert not (folder / "stray.txt").exists()  # the damaged folder was replaced, not patched
    assert _sha256(folder) == good
    inspect_checkpoint(folder)


def test_leftover_partial_folders_are_never_used_and_stale_ones_are_removed(tmp_path):
    folder = make_checkpoint(size="6MB", seed=300)
    dead = folder.parent / f"{folder.name}.partial-999999999-deadbeef"
    live = folder.parent / f"{folder.name}.partial-{os.getppid()}-0badf00d"
    for leftover in (dead, live):
        leftover.mkdir()
        (leftover / MARKER_FILE).write_text("{}")
    (folder / MARKER_FILE).unlink()  # force a rebuild, which sweeps stale partials of this spec
    assert make_checkpoint(size="6MB", seed=300) == folder
    assert not dead.exists(), "a partial folder of a dead build was left behind"
    assert live.exists(), "a partial folder of a live process was removed"
    assert not [p for p in folder.parent.iterdir() if f"{folder.name}.partial-{os.getpid()}-" in p.name]


def test_explicit_folder_that_is_not_ours_is_refused_and_left_alone(tmp_path):
    folder = tmp_path / "my-notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OptionError) as err:
        make_checkpoint(folder, size="5MB")
    assert str(folder) in str(err.value) and err.value.kind == "folder_not_empty"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_explicit_folder_is_reused_for_the_same_spec_and_refused_for_another(tmp_path):
    folder = make_checkpoint(tmp_path / "ckpt", size="5MB")
    before = _snapshot(folder)
    assert make_checkpoint(tmp_path / "ckpt", size="5MB") == folder
    assert _snapshot(folder) == before
    with pytest.raises(OptionError, match="not empty"):
        make_checkpoint(tmp_path / "ckpt", size="6MB")
    assert _snapshot(folder) == before


def test_explicit_empty_folder_is_filled(tmp_path):
    (tmp_path / "empty").mkdir()
    folder = make_checkpoint(tmp_path / "empty", size="5MB")
    assert folder == tmp_path / "empty" and (folder / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


def test_disk_full_during_the_build_is_reported_and_cleaned_up(tmp_path, monkeypatch):
    def full_disk(path, *args, **kwargs):
        path.write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(weights_writer, "write_safetensors", full_disk)
    with pytest.raises(CheckpointError) as err:
        make_checkpoint(tmp_path / "ckpt", size="5MB")
    assert err.value.kind == "disk_full" and str(tmp_path / "ckpt") in str(err.value)
    assert "5 MB" in str(err.value)  # the bytes needed
    assert list(tmp_path.iterdir()) == []


def test_a_bin_shard_bigger_than_free_ram_is_refused(tmp_path, monkeypatch):
    import psutil

    class Memory:
        available = 10_000_000

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory())
    with pytest.raises(OptionError, match="max_shard_size") as err:
        make_checkpoint(tmp_path / "ckpt", size="20MB", format="bin")
    assert "20 MB" in str(err.value) and list(tmp_path.iterdir()) == []
    make_checkpoint(tmp_path / "ckpt", size="20MB", format="bin", shards=4)  # 5 MB shards fit
    make_checkpoint(tmp_path / "st", size="20MB")  # safetensors is streamed: no limit


def test_too_little_free_space_is_reported_before_writing(tmp_path, monkeypatch):
    class Usage:
        free = 1_000_000

    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: Usage())
    with pytest.raises(CheckpointError, match="needs about 20 MB") as err:
        make_checkpoint(tmp_path / "ckpt", size="20MB")
    assert err.value.kind == "disk_full" and list(tmp_path.iterdir()) == []


def test_progress_callback_sees_every_byte_in_order(tmp_path):
    calls: list[tuple[int, int, str]] = []
    make_checkpoint(tmp_path / "ckpt", size="20MB", shards=2, progress=lambda *call: calls.append(call))
    done = [c[0] for c in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1] == inspect_checkpoint(tmp_path / "ckpt").total_bytes
    assert {c[2] for c in calls} == {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}


def test_demo_checkpoint_uses_offload_lab_size_and_six_shards(offload_lab_cache, monkeypatch):
    monkeypatch.setenv("OFFLOAD_LAB_SIZE", "60MB")
    folder = demo_checkpoint()
    info = inspect_checkpoint(folder)
    assert folder.parent == offload_lab_cache / "checkpoints"
    assert len(info.shards) == 6 and abs(info.total_bytes - 60_000_000) <= 0.02 * 60_000_000
    assert demo_checkpoint("60MB") == folder
    tiny = inspect_checkpoint(demo_checkpoint("3MB"))
    assert len(tiny.shards) == 4  # 4 layers: fewer shards, each still holding a layer


def test_building_holds_one_piece_not_the_whole_checkpoint_in_ram(tmp_path):
    # A single 120 MB file: a writer that kept it all in RAM would grow the peak by >= 120 MB.
    script = f"""
import resource, torch
from widgetlib.core.checkpoints import make_checkpoint
make_checkpoint({str(tmp_path / "warm")!r}, size="1MB")  # imports and first-call costs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
make_checkpoint({str(tmp_path / "big")!r}, size="120MB")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert int(out.split()[-1]) < 60_000_000


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OFFLOAD_LAB_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("OFFLOAD_LAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform != "win32":
        assert cache_dir() == tmp_path / "xdg" / "offload-lab"
        monkeypatch.delenv("XDG_CACHE_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert cache_dir() == tmp_path / "home" / ".cache" / "offload-lab"
    repo = Path(checkpoints.__file__).resolve().parents[2]
    monkeypatch.setenv("OFFLOAD_LAB_CACHE", str(repo / "cache"))
    with pytest.raises(OptionError, match="OFFLOAD_LAB_CACHE"):
        cache_dir()


# --- inspecting any Hugging Face folder --------------------------------------------------------------------------


def test_inspect_reports_a_gpt2_folder_with_tied_weights(gpt2_checkpoint):
    info = inspect_checkpoint(gpt2_checkpoint)
    assert info.model_type == "gpt2" and info.architectures == ("GPT2LMHeadModel",)
    assert info.tie_word_embeddings is True and info.format == "safetensors" and info.index_file is None
    with safe_open(gpt2_checkpoint / "model.safetensors", "pt") as f:
        names = list(f.keys())
        expected_params = sum(torch.Size(f.get_slice(n).get_shape()).numel() for n in names)
    assert "lm_head.weight" not in names  # tied: saved once, as the input embedding
    assert info.parameters == expected_params and info.total_bytes == 4 * expected_params
    assert info.largest_tensor == "transformer.wte.weight" and info.largest_tensor_bytes == 500 * 64 * 4
    assert info.shards[0].tensors == len(names)
    assert info.shards[0].file_bytes == (gpt2_checkpoint / "model.safetensors").stat().st_size


def test_to_dict_is_json_ready(small_checkpoint):
    info = inspect_checkpoint(small_checkpoint)
    data = json.loads(json.dumps(info.to_dict()))
    assert data["folder"] == str(small_checkpoint) and data["format"] == "safetensors"
    assert [s["file"] for s in data["shards"]] == [s.file for s in info.shards]
    assert data["largest_shard"] == data["shards"][[s.file for s in info.shards].index(info.largest_shard.file)]
    assert set(data) == set(CheckpointInfo.__dataclass_fields__)


def test_inspect_and_read_write_nothing_into_the_folder(small_checkpoint, small_bin_checkpoint):
    for folder in (small_checkpoint, small_bin_checkpoint):
        before = _snapshot(folder)
        inspect_checkpoint(folder)
        weight_map(folder)
        for path in shard_files(folder):
            read_shard(path)
            read_shard(path, mmap=True)
        assert _snapshot(folder) == before


def test_safetensors_preferred_when_both_formats_are_present(tmp_path, small_checkpoint, small_bin_checkpoint):
    both = tmp_path / "both"
    both.mkdir()
    for source in (small_checkpoint, small_bin_checkpoint):
        for path in source.iterdir():
            if path.name != MARKER_FILE:
                (both / path.name).write_bytes(path.read_bytes())
    assert inspect_checkpoint(both).format == "safetensors"


def _break(folder: Path, how: str) -> Path:
    """Damage a fresh copy of a checkpoint ``how``; return the path the error message must name."""
    index = folder / "model.safetensors.index.json"
    shard = folder / "model-00002-of-00002.safetensors"
    if how == "missing_folder":
        return folder / "does-not-exist"
    if how == "no_config":
        (folder / "config.json").unlink()
        return folder
    if how == "no_weights":
        for path in folder.glob("model*"):
            path.unlink()
        return folder
    if how == "index_not_json":
        index.write_text("{not json")
        return index
    if how == "index_without_weight_map":
        index.write_text(json.dumps({"metadata": {"total_size": 1}}))
        return index
    if how == "missing_shard":
        shard.unlink()
        return shard
    if how == "truncated_shard":
        with open(shard, "r+b") as f:
            f.truncate(shard.stat().st_size // 2)
        return shard
    if how == "garbage_header":
        shard.write_bytes(b"\xff" * 64)
        return shard
    if how == "index_mismatch":
        data = json.loads(index.read_text())
        data["weight_map"]["model.layers.99.mlp.up_proj.weight"] = shard.name
        index.write_text(json.dumps(data))
        return index
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "kind"),
    [
        ("missing_folder", "missing_folder"),
        ("no_config", "not_a_checkpoint"),
        ("no_weights", "not_a_checkpoint"),
        ("index_not_json", "bad_index"),
        ("index_without_weight_map", "bad_index"),
        ("missing_shard", "missing_shard"),
        ("truncated_shard", "corrupt_shard"),
        ("garbage_header", "corrupt_shard"),
        ("index_mismatch", "index_mismatch"),
    ],
)
def test_inspect_errors_have_a_kind_and_name_the_path(build_checkpoint, how, kind):
    folder = build_checkpoint(size="6MB", shards=2)
    named = _break(folder, how)
    with pytest.raises(CheckpointError) as err:
        inspect_checkpoint(named if how == "missing_folder" else folder)
    message = str(err.value)
    assert err.value.kind == kind and str(named) in message
    assert "\n" not in message and "Traceback" not in message
    if kind == "not_a_checkpoint":
        assert "config.json" in message and "model.safetensors" in message
    if kind in ("corrupt_shard", "missing_shard"):
        assert "rebuild" in message


def test_read_shard_reports_a_truncated_safetensors_file(build_checkpoint):
    path = shard_files(build_checkpoint(size="5MB"))[0]
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 10)
    with pytest.raises(CheckpointError) as err:
        read_shard(path)
    assert err.value.kind == "corrupt_shard" and str(path) in str(err.value)


@pytest.mark.parametrize("cut", ["half", "empty"])
def test_read_shard_reports_a_truncated_bin_file(build_checkpoint, cut):
    path = shard_files(build_checkpoint(size="5MB", format="bin"))[0]
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2 if cut == "half" else 0)
    for mmap in (False, True):
        with pytest.raises(CheckpointError) as err:
            read_shard(path, mmap=mmap)
        assert err.value.kind == "corrupt_shard" and str(path) in str(err.value) and "rebuild" in str(err.value)


class _Hostile:
    """Unpickling this runs code: it writes a marker file. A weights-only loader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).write_text('pwned')",))


def test_hostile_pickle_is_refused_and_its_code_never_runs(tmp_path):
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    marker = tmp_path / "pwned.txt"
    path = folder / "pytorch_model.bin"
    torch.save({"model.embed_tokens.weight": torch.zeros(2, 2), "payload": _Hostile(marker)}, path)

    # The payload is live: an unsafe load really runs it (so this test can fail).
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"
    marker.unlink()

    for attempt in (lambda: read_shard(path), lambda: read_shard(path, mmap=True),
                    lambda: inspect_checkpoint(folder), lambda: weight_map(folder)):
        with pytest.raises(CheckpointError) as err:
            attempt()
        assert err.value.kind == "unsafe_pickle" and str(path) in str(err.value)
        assert "exec" in str(err.value) and "\n" not in str(err.value)
        assert not marker.exists(), "the hostile pickle's code ran"


def test_read_shard_of_a_missing_file_names_it(tmp_path):
    for name in ("model.safetensors", "pytorch_model.bin"):
        with pytest.raises(CheckpointError) as err:
            read_shard(tmp_path / name)
        assert err.value.kind == "missing_shard" and str(tmp_path / name) in str(err.value)


def test_weight_map_of_a_single_file_maps_every_tensor_to_it(build_checkpoint):
    folder = build_checkpoint(size="5MB", format="bin")
    mapping = weight_map(folder)
    assert set(mapping.values()) == {"pytorch_model.bin"}
    assert set(mapping) == set(read_shard(folder / "pytorch_model.bin"))


def test_reading_a_folder_does_not_import_torch(small_checkpoint, tmp_path):
    """Reading headers, the index and the shard list (and looking up a hub id) leaves torch alone,
    so a learner's kernel that only inspects a checkpoint does not pay for importing it."""
    code = (
        "import sys\n"
        "from widgetlib.core.errors import CheckpointError\n"
        "from widgetlib.core.hf_folder import checkpoint_folder, inspect_checkpoint, shard_files, weight_map\n"
        f"info = inspect_checkpoint({str(small_checkpoint)!r})\n"
        f"files, names = shard_files({str(small_checkpoint)!r}), weight_map({str(small_checkpoint)!r})\n"
        "try:\n"
        "    checkpoint_folder('nobody/not-cached')\n"
        "except CheckpointError as err:\n"
        "    kind = err.kind\n"
        "print(info.parameters, len(files), len(names), kind, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty-hub-cache")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    info = inspect_checkpoint(small_checkpoint)
    assert done.stdout.split() == [str(info.parameters), "3", str(len(weight_map(small_checkpoint))), "not_cached",
                                   "False", "False"]


def test_finding_a_built_checkpoint_again_does_not_import_torch(offload_lab_cache, tmp_path):
    """A lesson's first cell asks for the demo checkpoint every time the lesson opens: once built, it is found
    from the request remembered at build time, with neither torch nor transformers imported into the kernel."""
    built = demo_checkpoint("6MB")
    explicit = make_checkpoint(tmp_path / "mine", size="6MB", shards=2)
    code = (
        "import sys\n"
        "from widgetlib.core.checkpoints import demo_checkpoint, make_checkpoint\n"
        f"print(demo_checkpoint('6MB'), make_checkpoint({str(explicit)!r}, size='6MB', shards=2))\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    env = {**os.environ, "OFFLOAD_LAB_CACHE": str(offload_lab_cache)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(built), str(explicit), "False", "False"]


@pytest.mark.parametrize("damage", ["delete_shard", "garble_request"])
def test_a_remembered_request_whose_folder_changed_is_built_again(offload_lab_cache, damage):
    folder = make_checkpoint(size="6MB", shards=2, seed=300 + len(damage))
    good = _sha256(folder)
    (request,) = [p for p in (offload_lab_cache / "requests").iterdir()
                  if json.loads(p.read_text())["spec"]["seed"] == 300 + len(damage)]
    if damage == "delete_shard":
        (folder / "model-00002-of-00002.safetensors").unlink()
    else:
        request.write_text("{not json")
    assert make_checkpoint(size="6MB", shards=2, seed=300 + len(damage)) == folder
    assert _sha256(folder) == good
    assert json.loads(request.read_text())["spec"]["seed"] == 300 + len(damage)  # remembered again
