"""The folders a run writes to: the learner's offload folder, checked before the run and measured after it."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import OptionError

__all__ = ["check_offload_folder", "snapshot", "written_since"]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its (size, mtime): compared after a run to see what it wrote.

    >>> snapshot(Path("/no/such/folder"))
    {}
    """
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            found[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return found


def written_since(folder: Path, before: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """Files and bytes that are new or changed in ``folder`` since ``before``.

    >>> written_since(Path("/no/such/folder"), {})
    (0, 0)
    """
    files = size = 0
    for name, (n_bytes, mtime) in snapshot(folder).items():
        if before.get(name) != (n_bytes, mtime):
            files += 1
            size += n_bytes
    return files, size


def check_offload_folder(value: str | os.PathLike[str]) -> Path:
    """Return ``value`` as an absolute folder that exists and is writable, or raise a learner-facing error.

    >>> import tempfile; check_offload_folder(tempfile.gettempdir()).is_dir()
    True
    """
    folder = Path(value).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise OptionError(
            f"offload_folder {folder} is a file, not a folder; give a folder path.",
            kind="offload_not_writable",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(
            f"offload_folder {folder} cannot be created ({exc.strerror}); choose a folder you can write to.",
            kind="offload_not_writable",
        ) from None
    probe = folder / f".offload-lab-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        raise OptionError(
            f"offload_folder {folder} is not writable; choose a folder you can write to.",
            kind="offload_not_writable",
        ) from None
    return folder
