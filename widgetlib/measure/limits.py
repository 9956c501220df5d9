"""A real kernel memory limit for one measuring child: "a smaller machine" that behaves like one.

A budget enforced by watching RSS is not what a smaller machine does: clean file-backed pages (an mmap'd
safetensors shard, the page cache) are reclaimable, so under a real limit the kernel drops them and re-reads
them later (major page faults: time, not death), and kills the process only when memory it cannot drop
(anonymous and shared memory) does not fit. So, where the machine allows it, the runner puts the child in a
memory cgroup of its own, in this order of preference:

1. cgroup v2: a folder in the unified tree next to this process's own cgroup, where ``memory`` is in
   ``cgroup.controllers`` and the tree is writable; ``memory.max`` is the limit, ``memory.events`` says what the
   kernel did (``oom_kill``, ``max``), ``memory.peak`` (kernel >= 5.19) the highest charge.
2. cgroup v1: a folder in the ``memory`` hierarchy (writable as root, e.g. this project's machines);
   ``memory.limit_in_bytes``, ``memory.oom_control`` (``oom_kill``), ``memory.max_usage_in_bytes``,
   ``memory.failcnt``.
3. ``systemd-run --user --scope -p MemoryMax=...``: a learner's Linux laptop whose user manager delegates the
   memory controller; it wraps a command, so the child is started through it (a fresh interpreter).

The child is moved in (its pid written to ``cgroup.procs``) before it receives its job, and the folder is removed
once it has exited, also after a cancel or a crash. What is charged: pages the child brings in after it entered
the cgroup — its new anonymous memory and the page cache it faults in first. A page another process already
had (the pages a forked child shares with the zygote, a checkpoint already in the page cache) is charged to that
other process's cgroup, which is why the runner sets the limit to the budget minus what the child already holds,
and why ``cold_cache=True`` (drop the checkpoint's pages first) makes a file-backed load pay its re-reads here.

Where none of this works (macOS, Windows, a locked-down container), :func:`choose_mode` says ``"watchdog"``
and the runner counts the start-up RSS plus the growth of what cannot be reclaimed (Linux: RssAnon +
RssShmem; elsewhere: RSS, the only figure there is) against the budget. ``OFFLOAD_LAB_BUDGET_MODE=watchdog``
forces that path; ``=cgroup`` refuses to fall back.

>>> choose_mode(None) is None
True
>>> choose_mode(10**9) in ("cgroup", "systemd", "watchdog")
True
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from ..core.errors import OptionError

__all__ = ["MemoryLimit", "choose_mode", "cold_cache", "systemd_scope_command"]

_V1_ROOT = Path("/sys/fs/cgroup/memory")
_V2_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
_PREFIX = "offload-lab-"


def _own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup path in the v1 hierarchy of ``controller`` (or in the v2 tree when None)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller is None and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _v2_parent() -> Path | None:
    own = _own_cgroup(None)
    if own is None:
        return None
    for root in _V2_ROOTS:
        if not (root / "cgroup.controllers").exists():
            continue
        # A new cgroup next to ours, whose parent must hand it the memory controller: the parent's
        # cgroup.subtree_control must list "memory" (a process-holding cgroup cannot enable it itself).
        parent = root / own.lstrip("/")
        parent = parent.parent if parent != root else parent
        try:
            if "memory" in (parent / "cgroup.subtree_control").read_text().split() and _writable_dir(parent):
                return parent
        except OSError:
            continue
    return None


def _v1_parent() -> Path | None:
    if not (_V1_ROOT / "memory.limit_in_bytes").exists():
        return None
    own = _own_cgroup("memory")
    # Inside our own memory cgroup, so every limit above us still applies to the child.
    for candidate in ((_V1_ROOT / own.lstrip("/")) if own else None, _V1_ROOT):
        if candidate is not None and _writable_dir(candidate):
            return candidate
    return None


def _systemd_available() -> bool:
    if shutil.which("systemd-run") is None:
        return False
    try:
        probe = subprocess.run(
            ["systemd-run", "--user", "--scope", "--quiet", "-p", "MemoryMax=1G", "true"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


_mode_cache: str | None = None


def choose_mode(budget_bytes: int | None) -> str | None:
    """How a budget will be enforced here: ``"cgroup"``, ``"systemd"`` (a cgroup through systemd-run),
    ``"watchdog"``, or None when there is no budget. ``OFFLOAD_LAB_BUDGET_MODE`` can force ``watchdog``.

    >>> import os; os.environ["OFFLOAD_LAB_BUDGET_MODE"] = "watchdog"
    >>> choose_mode(10**9)
    'watchdog'
    >>> del os.environ["OFFLOAD_LAB_BUDGET_MODE"]
    """
    global _mode_cache
    if budget_bytes is None:
        return None
    forced = os.environ.get("OFFLOAD_LAB_BUDGET_MODE", "").strip().lower()
    if forced == "watchdog":
        return "watchdog"
    if forced not in ("", "cgroup", "auto"):
        raise OptionError(
            f"OFFLOAD_LAB_BUDGET_MODE={forced!r} is not known; use watchdog, cgroup or leave it unset.",
            kind="bad_option",
        )
    if _mode_cache is None:
        if _v2_parent() is not None or _v1_parent() is not None:
            _mode_cache = "cgroup"
        elif _systemd_available():
            _mode_cache = "systemd"
        else:
            _mode_cache = "watchdog"
    if forced == "cgroup" and _mode_cache == "watchdog":
        raise OptionError(
            "OFFLOAD_LAB_BUDGET_MODE=cgroup but no memory cgroup can be made on this machine; unset it to use "
            "the watchdog.",
            kind="bad_option",
        )
    return _mode_cache


def systemd_scope_command(limit_bytes: int, command: list[str]) -> list[str]:
    """``command`` wrapped in a transient systemd scope with ``MemoryMax`` (and no swap), as a list for Popen.

    >>> systemd_scope_command(2**30, ["python", "-m", "x"])[:6]
    ['systemd-run', '--user', '--scope', '--quiet', '-p', 'MemoryMax=1073741824']
    """
    return [
        "systemd-run", "--user", "--scope", "--quiet",
        "-p", f"MemoryMax={int(limit_bytes)}", "-p", "MemorySwapMax=0", *command,
    ]


class MemoryLimit:
    """One cgroup with a hard memory limit, for one child; :meth:`remove` deletes it (idempotent).

    >>> if choose_mode(64 * 2**20) == "cgroup":   # the runner then calls limit.add(child_pid)
    ...     limit = MemoryLimit.create(64 * 2**20)
    ...     assert limit.events()["oom_kill"] == 0 and limit.events()["limit_bytes"] == 64 * 2**20
    ...     limit.remove()
    ...     assert not limit.path.exists()
    """

    def __init__(self, path: Path, version: int, limit_bytes: int) -> None:
        self.path = path
        self.version = version
        self.limit_bytes = limit_bytes

    @classmethod
    def create(cls, limit_bytes: int) -> MemoryLimit:
        """Make the cgroup (v2 where possible, else v1) and set its limit; OSError if neither works."""
        name = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        limit_bytes = max(int(limit_bytes), 4096)
        parent = _v2_parent()
        if parent is not None:
            path = parent / name
            path.mkdir()
            try:
                (path / "memory.max").write_text(str(limit_bytes))
                try:
                    (path / "memory.swap.max").write_text("0")  # a smaller machine without swap
                except OSError:
                    pass
            except OSError:
                path.rmdir()
                raise
            return cls(path, 2, limit_bytes)
        parent = _v1_parent()
        if parent is None:
            raise OSError("no writable memory cgroup")
        path = parent / name
        path.mkdir()
        try:
            (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        except OSError:
            path.rmdir()
            raise
        return cls(path, 1, limit_bytes)

    def set_limit(self, limit_bytes: int) -> None:
        """Change the limit (OSError if the cgroup already holds more than the kernel can reclaim to it)."""
        limit_bytes = max(int(limit_bytes), 4096)
        (self.path / ("memory.max" if self.version == 2 else "memory.limit_in_bytes")).write_text(str(limit_bytes))
        self.limit_bytes = limit_bytes

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup (its future allocations are charged here)."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def _read_keyed(self, name: str) -> dict[str, int]:
        found: dict[str, int] = {}
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if value.strip().lstrip("-").isdigit():
                    found[key] = int(value)
        except OSError:
            pass
        return found

    def _read_int(self, name: str) -> int | None:
        try:
            return int((self.path / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def events(self) -> dict[str, int | None]:
        """What the kernel did: ``oom_kill`` (processes it killed), ``max_usage_bytes`` (highest charge),
        ``failcnt`` / ``max_hits`` (times the limit was hit and reclaim ran), ``pgmajfault`` (major faults in the
        cgroup), ``limit_bytes``."""
        # The same facts under each version's file names; v1 counts the hits as failcnt, v2 as "max" events.
        if self.version == 1:
            kills, peak_file = self._read_keyed("memory.oom_control"), "memory.max_usage_in_bytes"
            hits = ("failcnt", self._read_int("memory.failcnt"))
        else:
            kills, peak_file = self._read_keyed("memory.events"), "memory.peak"
            hits = ("max_hits", kills.get("max"))
        return {
            "oom_kill": kills.get("oom_kill"),
            "max_usage_bytes": self._read_int(peak_file),
            hits[0]: hits[1],
            "pgmajfault": self._read_keyed("memory.stat").get("pgmajfault"),
            "limit_bytes": self.limit_bytes,
        }

    def remove(self) -> None:
        """Delete the cgroup once its processes have exited (retries briefly: the kernel frees it async)."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def cold_cache(paths: list[Path]) -> dict[str, int | str]:
    """Drop the page-cache pages of every file under ``paths`` (fsync first), so the next read comes from disk.

    ``posix_fadvise(POSIX_FADV_DONTNEED)`` needs no root; pages some process still maps stay. Returns what was
    done: files and bytes advised, or a note where the OS has no posix_fadvise (macOS, Windows).

    >>> cold_cache([])["files"]
    0
    """
    if not hasattr(os, "posix_fadvise"):
        return {"files": 0, "bytes": 0, "note": "this OS has no posix_fadvise; the page cache was left as it is"}
    files = n_bytes = 0
    for root in paths:
        candidates = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
        for path in candidates:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                try:
                    os.fsync(fd)  # dirty pages cannot be dropped; write them back first
                except OSError:
                    pass
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                files += 1
                n_bytes += os.fstat(fd).st_size
            finally:
                os.close(fd)
    return {"files": files, "bytes": n_bytes}
