"""A learner's own models: a hub id resolves, offline, to its snapshot in the local Hugging Face cache.

The cache is laid out as huggingface_hub lays it out (``models--org--name/blobs/<sha256>``,
``snapshots/<commit>/<file>`` as relative symlinks into ``blobs``, ``refs/main`` holding the commit), built in
a temporary folder from a small synthetic checkpoint. Every test forbids network access in this process, so
a resolution that reached for the Hub would fail here rather than pass by luck.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from widgetlib import run
from widgetlib.cli import main as cli_main
from widgetlib.core.checkpoints import MARKER_FILE, inspect_checkpoint, make_checkpoint
from widgetlib.core.errors import CheckpointError
from widgetlib.widgets import StrategyPanel

REPO_ID = "offload-lab/tiny-llama"


@pytest.fixture(scope="module")
def source() -> Path:
    return make_checkpoint(size="40MB", shards=2)


def _lay_out_like_the_hub(cache: Path, repo_id: str, files: list[Path]) -> Path:
    """Put ``files`` into ``cache`` exactly as ``hf download repo_id`` would; return the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()  # a 40-hex commit id, like the Hub's
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in files:
        blob = hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, repo / "blobs" / blob)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", blob))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network in this process: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path, offline: None) -> Path:
    """HF_HUB_CACHE pointing at a fresh cache that holds REPO_ID; returns its snapshot folder."""
    cache = tmp_path / "hf-hub"
    snapshot = _lay_out_like_the_hub(cache, REPO_ID, [p for p in source.iterdir() if p.name != MARKER_FILE])
    for name in ("HF_HOME", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return snapshot


def test_run_loads_a_hub_id_from_the_local_cache(hub_cache: Path, source: Path) -> None:
    report = run(REPO_ID, "manual_shards")
    assert report.outcome == "ok", report.error
    assert Path(report.checkpoint) == hub_cache.resolve()
    # The same bytes as the folder the cache was built from: the same logits, bit for bit.
    assert report.logits_sha256 == run(source, "manual_shards").logits_sha256


def test_cli_load_takes_a_hub_id(hub_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["load", REPO_ID, "--strategy", "low_cpu_mem_usage", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "ok" and Path(report["checkpoint"]) == hub_cache.resolve()


def test_a_panel_takes_a_hub_id(hub_cache: Path) -> None:
    panel = StrategyPanel(REPO_ID, "manual_shards")
    report = panel.run()
    assert report is not None and report.outcome == "ok", panel.message
    assert Path(report.checkpoint) == hub_cache.resolve()


def test_hf_home_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path, offline: None) -> None:
    files = [p for p in source.iterdir() if p.name != MARKER_FILE]
    snapshot = _lay_out_like_the_hub(tmp_path / "home" / "hub", "gpt-like", files)
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    info = inspect_checkpoint("gpt-like")
    assert info.folder == snapshot.resolve() and info.total_bytes == inspect_checkpoint(source).total_bytes


def test_a_local_folder_wins_over_the_cache(
    hub_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    local = tmp_path / "here" / REPO_ID
    shutil.copytree(source, local)
    monkeypatch.chdir(tmp_path / "here")
    assert inspect_checkpoint(REPO_ID).folder == local.absolute()


def test_a_model_that_is_not_cached_says_how_to_get_it(hub_cache: Path) -> None:
    with pytest.raises(CheckpointError) as caught:
        inspect_checkpoint("Qwen/Qwen2.5-0.5B")
    message = str(caught.value)
    assert caught.value.kind == "not_cached" and "\n" not in message
    assert "`hf download Qwen/Qwen2.5-0.5B`" in message and os.environ["HF_HUB_CACHE"] in message


def test_a_partly_cached_model_says_how_to_complete_it(hub_cache: Path, source: Path) -> None:
    # What AutoConfig.from_pretrained("org/name") leaves behind: the config, no weights.
    _lay_out_like_the_hub(Path(os.environ["HF_HUB_CACHE"]), "org/config-only", [source / "config.json"])
    with pytest.raises(CheckpointError) as caught:
        run("org/config-only", "normal")
    assert caught.value.kind == "not_cached" and "`hf download org/config-only`" in str(caught.value)


def test_a_missing_path_is_still_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as caught:
        inspect_checkpoint(tmp_path / "nope")
    assert caught.value.kind == "missing_folder"
