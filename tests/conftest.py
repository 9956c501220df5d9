"""Fixtures shared by the tests: small checkpoints built once per session (in the isolated cache that the
repository's root ``conftest.py`` sets up for tests and doctests alike). Hand-built Reports, samples and runner
records come from ``factories.py``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The test factories (factories.py beside this file) are imported by name; pytest's --import-mode=importlib puts
# nothing on sys.path, so this folder goes there.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def small_checkpoint(offload_lab_cache: Path) -> Path:
    """A 24 MB, 3-shard float32 safetensors LLaMA in the session cache. Read it; never modify it."""
    from widgetlib.core.checkpoints import make_checkpoint

    return make_checkpoint(size="24MB", shards=3)


@pytest.fixture(scope="session")
def small_bin_checkpoint(offload_lab_cache: Path) -> Path:
    """The same weights as :func:`small_checkpoint`, as 3 ``pytorch_model-*.bin`` shards. Never modify it."""
    from widgetlib.core.checkpoints import make_checkpoint

    return make_checkpoint(size="24MB", shards=3, format="bin")


@pytest.fixture
def build_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """Build a checkpoint into a fresh folder under ``tmp_path`` (yours to damage): ``build_checkpoint(size=...)``."""
    from widgetlib.core.checkpoints import make_checkpoint

    counter = iter(range(1_000_000))

    def build(**options: Any) -> Path:
        if options.get("params") is None:
            options.setdefault("size", "20MB")
        return make_checkpoint(tmp_path / f"checkpoint-{next(counter)}", **options)

    return build


@pytest.fixture(scope="session")
def gpt2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 saved by transformers itself: another architecture, with tied embeddings."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("gpt2")
    config = GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=500, n_positions=64)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def fresh_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point TMPDIR (ours and every run's child's) at an empty folder, to prove runs leave nothing there.

    The zygote is started first, under the old TMPDIR: its own temporary folder lives as long as it does (the
    whole session), not as long as a run. ``tests/test_errors.py`` checks that it goes when the zygote does.
    """
    from widgetlib.measure.processes import prewarm

    prewarm()
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    return folder


@pytest.fixture(scope="session")
def executions(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Any]:
    """Every lesson notebook executed once per session as shipped and solved (see ``lesson_runs.py``)."""
    from lesson_runs import execute_all

    return execute_all(tmp_path_factory.mktemp("executed-lessons"))
