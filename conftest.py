"""Set-up shared by the tests and the doctests in ``widgetlib/`` (both collected by ``pytest``).

Every test session points ``OFFLOAD_LAB_CACHE`` at a fresh temporary folder, so the suite never reads or
fills the learner's real cache (``~/.cache/offload-lab``). Set ``OFFLOAD_LAB_TEST_CACHE`` to a folder to keep
the cached checkpoints between runs instead (faster when iterating); child processes inherit the variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# `python -m widgetlib` runs the CLI on import: not a doctest.
collect_ignore = ["widgetlib/__main__.py"]


@pytest.fixture(scope="session", autouse=True)
def offload_lab_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The checkpoint cache for this session: ``$OFFLOAD_LAB_TEST_CACHE`` or a fresh temporary folder."""
    reuse = os.environ.get("OFFLOAD_LAB_TEST_CACHE")
    folder = Path(reuse).expanduser().absolute() if reuse else tmp_path_factory.mktemp("offload-lab-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OFFLOAD_LAB_CACHE", str(folder))
        yield folder


