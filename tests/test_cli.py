"""The ``offload-lab`` command: make-checkpoint and inspect, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from widgetlib.cli import build_parser, main


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


def test_make_checkpoint_then_inspect_json(tmp_path, capsys):
    folder = tmp_path / "x"
    assert main(["make-checkpoint", str(folder), "--size", "30MB", "--shards", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(folder)
    summary = err.strip().splitlines()[-1]
    assert "LlamaForCausalLM" in summary and "30 MB in 3 safetensors files" in summary

    assert main(["inspect", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert abs(info["total_bytes"] - 30_000_000) <= 0.02 * 30_000_000
    assert [s["file"] for s in info["shards"]] == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert info["index_file"] == "model.safetensors.index.json" and info["dtype"] == "float32"


def test_make_checkpoint_passes_format_dtype_params_and_max_shard_size(tmp_path, capsys):
    folder = tmp_path / "y"
    argv = ["make-checkpoint", str(folder), "--params", "3M", "--format", "bin", "--dtype", "bfloat16",
            "--max-shard-size", "2MB", "--seed", "7"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["inspect", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "bin" and info["dtype"] == "bfloat16"
    assert abs(info["parameters"] - 3_000_000) <= 0.02 * 3_000_000
    assert len(info["shards"]) >= 3 and info["index_file"] == "pytorch_model.bin.index.json"


def test_inspect_prints_a_readable_table(small_checkpoint, capsys):
    assert main(["inspect", str(small_checkpoint)]) == 0
    table = capsys.readouterr().out
    for expected in ("safetensors", "float32", "parameters", "total size", "largest shard", "largest tensor",
                     "model.embed_tokens.weight", "model-00003-of-00003.safetensors", "LlamaForCausalLM"):
        assert expected in table


def test_inspect_table_of_another_architecture(gpt2_checkpoint, capsys):
    assert main(["inspect", str(gpt2_checkpoint)]) == 0
    table = capsys.readouterr().out
    assert "gpt2 (GPT2LMHeadModel)" in table and "tied embeddings: True" in table


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["make-checkpoint", "{tmp}/x", "--size", "lots"], "'lots'"),
        (["make-checkpoint", "{tmp}/x", "--size", "5MB", "--format", "onnx"], "'onnx'"),
        (["make-checkpoint", "{tmp}/x", "--size", "5MB", "--shards", "0"], "shards=0"),
        (["make-checkpoint", "{tmp}/x", "--size", "5MB", "--shards", "abc"], "'abc'"),
        (["make-checkpoint", "{tmp}/x", "--size", "5MB", "--params", "1M"], "--params"),
        (["make-checkpoint", "{tmp}/x", "--demo"], "--demo"),
        (["inspect", "{tmp}/nope"], "{tmp}/nope"),
        (["inspect"], "DIR"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_mistakes_exit_2_with_one_line(tmp_path, capsys, argv, named):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert named.replace("{tmp}", str(tmp_path)) in _one_error_line(err)
    assert not (tmp_path / "x").exists()


def test_foreign_folder_is_refused_by_the_cli(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["make-checkpoint", str(tmp_path), "--size", "5MB"]) == 2
    assert str(tmp_path) in _one_error_line(capsys.readouterr().err)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_demo_builds_into_the_cache_and_is_reused(offload_lab_cache, monkeypatch, capsys):
    monkeypatch.setenv("OFFLOAD_LAB_SIZE", "8MB")
    assert main(["make-checkpoint", "--demo"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder.parent == offload_lab_cache / "checkpoints" and (folder / "config.json").is_file()
    assert main(["make-checkpoint", "--demo"]) == 0
    assert Path(capsys.readouterr().out.strip()) == folder


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "make-checkpoint" in capsys.readouterr().out
    assert main(["make-checkpoint", "--help"]) == 0
    assert "--max-shard-size" in capsys.readouterr().out


def test_no_subcommand_shows_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_subcommands_are_registered_for_extension():
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"make-checkpoint", "inspect"} <= set(subcommands)


def test_python_m_widgetlib_runs_the_cli(small_checkpoint):
    done = subprocess.run([sys.executable, "-m", "widgetlib", "inspect", str(small_checkpoint), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["format"] == "safetensors"
    failed = subprocess.run([sys.executable, "-m", "widgetlib", "inspect", "/no/such/offload-lab-dir"],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and _one_error_line(failed.stderr).endswith("make_checkpoint().")


def test_version_and_load_options_reach_the_report(small_checkpoint, capsys):
    from widgetlib import __version__

    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    argv = ["load", str(small_checkpoint), "--strategy", "manual_shards", "--dtype", "bfloat16", "--cold-cache",
            "--forwards", "2", "--forward-tokens", "5", "--threads", "1", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["options"]["dtype"] == "bfloat16" and report["options"]["cold_cache"] is True
    assert report["options"]["forwards"] == 2 and report["options"]["forward_tokens"] == 5
    assert len(report["details"]["forward_times_s"]) == 2 and report["steady_forward_s"] > 0
    assert report["startup_s"] > 0 and report["peak_source"]
    assert main(["load", str(small_checkpoint), "--strategy", "normal", "--forwards", "0"]) == 2
    assert "forwards=0" in capsys.readouterr().err
