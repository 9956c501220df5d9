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
3. a transient systemd scope: a learner's Linux laptop (cgroup v2, systemd) whose user manager delegates the
   memory controller, where a login shell cannot make a cgroup next to itself. The user manager's D-Bus
   ``StartTransientUnit`` with ``PIDs=`` (through ``busctl --user``, which ships with systemd) moves the
   already running child (forked from the zygote, as in the other modes) into a scope with ``MemoryMax``;
   ``systemd-run --scope`` could only start a new command there, a fresh interpreter holding far more at the
   load start than a forked child.

The child is moved in (its pid written to ``cgroup.procs``, or handed to systemd) before it receives its job, and
the folder is removed once it has exited, also after a cancel or a crash (a scope: by systemd, when it is empty).
What is charged: pages the child brings in after it entered the cgroup — its new anonymous memory and the page
cache it faults in first. A page another process already had (the pages a forked child shares with the zygote, a
checkpoint already in the page cache) is charged to that other process's cgroup, which is why the runner sets the
limit to the budget minus what the child already holds, and why ``cold_cache=True`` (drop the checkpoint's pages
first) makes a file-backed load pay its re-reads here.

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
import sys
import time
import uuid
from pathlib import Path

from ..core.errors import OptionError

__all__ = ["MemoryLimit", "choose_mode", "cold_cache", "mode_reason", "scope_limit_command", "scope_start_command",
           "v2_path"]

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


def _user_manager_controllers() -> str | None:
    """The controllers the user's systemd manager was given (its cgroup's ``cgroup.controllers``), or None."""
    uid = os.getuid()
    path = Path(f"/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers")
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _systemd_probe() -> tuple[bool, str]:
    """Whether a transient scope with ``MemoryMax`` really limits memory here, and if not, why.

    A user manager without the memory controller still starts the scope and accepts MemoryMax, silently
    unenforced; so the probe puts a waiting process in such a scope, as the runner does with its child, and
    reads the ``memory.max`` of the cgroup it landed in.
    """
    if shutil.which("busctl") is None:
        return False, "busctl is not installed (it ships with systemd), so no systemd scope can be made"
    limit = 2**30
    try:
        waiting = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    except OSError as exc:
        return False, f"no process could be started for the probe ({exc})"
    try:
        try:
            scope = MemoryLimit.start_scope(waiting.pid, limit, wait_s=20)
        except OSError as exc:
            return False, str(exc)
        if scope._read_int("memory.max") == limit:
            return True, "a transient systemd scope with MemoryMax: the user manager has the memory controller"
    finally:
        assert waiting.stdin is not None
        waiting.stdin.close()  # it reads EOF and exits; systemd then ends and unloads the empty scope
        try:
            waiting.wait(10)
        except subprocess.TimeoutExpired:
            waiting.kill()
            waiting.wait()
    controllers = _user_manager_controllers()
    return False, (
        "systemd starts a scope, but your user manager does not have the memory controller "
        f"(user@{os.getuid()}.service has: {controllers or 'unknown'}), so MemoryMax would not be enforced; "
        "an administrator enables it with a drop-in /etc/systemd/system/user@.service.d/delegate.conf holding "
        "'[Service]' and 'Delegate=pids memory cpu', then a new login"
    )


def _systemd_available() -> bool:
    return _systemd_probe()[0]


_mode_cache: str | None = None
_mode_why: str = ""


def choose_mode(budget_bytes: int | None) -> str | None:
    """How a budget will be enforced here: ``"cgroup"``, ``"systemd"`` (a transient systemd scope),
    ``"watchdog"``, or None when there is no budget. ``OFFLOAD_LAB_BUDGET_MODE`` can force ``watchdog``.

    >>> import os; os.environ["OFFLOAD_LAB_BUDGET_MODE"] = "watchdog"
    >>> choose_mode(10**9)
    'watchdog'
    >>> del os.environ["OFFLOAD_LAB_BUDGET_MODE"]
    """
    global _mode_cache, _mode_why
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
        v2, v1 = _v2_parent(), _v1_parent()
        if v2 is not None or v1 is not None:
            _mode_cache, _mode_why = "cgroup", f"a memory cgroup made under {v2 or v1}"
        else:
            found, why = _systemd_probe()
            _mode_cache = "systemd" if found else "watchdog"
            _mode_why = why if found else (
                f"no writable memory cgroup next to this process ({_own_cgroup(None) or 'no cgroup v2 path'}), "
                f"and {why}")
    if forced == "cgroup" and _mode_cache == "watchdog":
        raise OptionError(
            f"OFFLOAD_LAB_BUDGET_MODE=cgroup but no memory cgroup can be made here ({_mode_why}); unset it to "
            "use the watchdog.",
            kind="bad_option",
        )
    return _mode_cache


def mode_reason() -> str:
    """Why :func:`choose_mode` chose what it chose (empty before it has chosen): for a learner whose budget fell
    back to the watchdog, what is missing and what would enable a real limit.

    >>> isinstance(mode_reason(), str)
    True
    """
    return _mode_why


# The user manager's D-Bus API (org.freedesktop.systemd1(5)): StartTransientUnit(in s name, in s mode,
# in a(sv) properties, in a(sa(sv)) aux, out o job) and SetUnitProperties(in s name, in b runtime,
# in a(sv) properties). busctl takes a signature, then each value; an array is its length, then its items.
_MANAGER = ["busctl", "--user", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager"]
# How long systemd gets to move the child into its new scope (the start job runs after the call returns; the
# user manager asks the system manager to move a process from the login session). Milliseconds on a laptop.
_SCOPE_WAIT_S = 30.0


def scope_start_command(name: str, pid: int, limit_bytes: int) -> list[str]:
    """The ``busctl`` call that makes the transient scope ``name`` around the running process ``pid``, with
    ``MemoryMax`` and no swap.

    ``CollectMode=inactive-or-failed`` unloads the scope even when it failed (an OOM kill fails it; a failed
    transient unit otherwise stays loaded until ``systemctl --user reset-failed``), and a scope ends by itself
    once its last process has exited.

    >>> scope_start_command("offload-lab-1-ab.scope", 42, 2**30)[6:12]
    ['StartTransientUnit', 'ssa(sv)a(sa(sv))', 'offload-lab-1-ab.scope', 'fail', '4', 'PIDs']
    """
    return [*_MANAGER, "StartTransientUnit", "ssa(sv)a(sa(sv))", name, "fail",
            "4", "PIDs", "au", "1", str(int(pid)), "MemoryMax", "t", str(int(limit_bytes)),
            "MemorySwapMax", "t", "0", "CollectMode", "s", "inactive-or-failed",
            "0"]  # no auxiliary units


def scope_limit_command(name: str, limit_bytes: int) -> list[str]:
    """The ``busctl`` call that sets the running scope ``name``'s ``MemoryMax`` (until it ends: ``runtime``).

    >>> scope_limit_command("offload-lab-1-ab.scope", 2**30)[6:]
    ['SetUnitProperties', 'sba(sv)', 'offload-lab-1-ab.scope', 'true', '1', 'MemoryMax', 't', '1073741824']
    """
    return [*_MANAGER, "SetUnitProperties", "sba(sv)", name, "true", "1", "MemoryMax", "t", str(int(limit_bytes))]


def _busctl(command: list[str], *, timeout_s: float = 20.0) -> None:
    """Run one ``busctl`` call; OSError with one sentence saying what failed (and so which fallback follows)."""
    method = command[len(_MANAGER)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise OSError("busctl is not installed (it ships with systemd), so no systemd scope can be made") from None
    except subprocess.TimeoutExpired:
        raise OSError(f"busctl --user {method} did not answer within {timeout_s:g} s") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise OSError(f"systemd's user manager refused {method} ({said})")


def v2_path(proc_cgroup: str) -> str | None:
    """The cgroup v2 path in the text of a ``/proc/PID/cgroup`` file (its ``0::`` line), or None.

    >>> v2_path("12:memory:/x\\n0::/user.slice/user-1000.slice/user@1000.service/app.slice/a.scope\\n")
    '/user.slice/user-1000.slice/user@1000.service/app.slice/a.scope'
    """
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def _page_floor(limit_bytes: int) -> int:
    """``limit_bytes`` as the kernel keeps a memory limit (whole pages, one at the least), so a limit read back
    from ``memory.max`` compares equal."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    return max(int(limit_bytes) // page * page, page)


class MemoryLimit:
    """One cgroup with a hard memory limit, for one child; :meth:`remove` deletes it (idempotent).

    >>> if choose_mode(64 * 2**20) == "cgroup":   # the runner then calls limit.add(child_pid)
    ...     limit = MemoryLimit.create(64 * 2**20)
    ...     assert limit.events()["oom_kill"] == 0 and limit.events()["limit_bytes"] == 64 * 2**20
    ...     limit.remove()
    ...     assert not limit.path.exists()
    """

    def __init__(self, path: Path, version: int, limit_bytes: int, *, scope: str | None = None) -> None:
        self.path = path
        self.version = version
        self.limit_bytes = limit_bytes
        # scope: the systemd unit whose cgroup this is. The runner made no folder then: systemd removes it when
        # its last process exits (so its counters must be read while it runs: see snapshot), and its limit is
        # changed through systemd, which would otherwise write its own MemoryMax back over ours.
        self.scope = scope
        self.owned = scope is None
        self._last: dict[str, int | None] | None = None
        self._parent_kills = self._kills_in(path.parent) if not self.owned else None

    @classmethod
    def start_scope(cls, pid: int, limit_bytes: int, *, wait_s: float = _SCOPE_WAIT_S) -> MemoryLimit:
        """Ask the user's systemd manager to put the running process ``pid`` in a new transient scope with
        ``MemoryMax=limit_bytes``, and wait until it is there; OSError with one sentence if that fails.

        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"PATH": ""}):   # no busctl: the runner falls back to the watchdog
        ...     try:
        ...         MemoryLimit.start_scope(os.getpid(), 2**30)
        ...     except OSError as exc:
        ...         print(exc)
        busctl is not installed (it ships with systemd), so no systemd scope can be made
        """
        name = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}.scope"
        limit_bytes = _page_floor(limit_bytes)
        _busctl(scope_start_command(name, pid, limit_bytes))
        deadline = time.monotonic() + wait_s
        while True:
            try:
                rel = v2_path(Path(f"/proc/{pid}/cgroup").read_text())
            except OSError:
                raise OSError(f"process {pid} ended before systemd had moved it into {name}") from None
            if rel is not None and rel.rstrip("/").rsplit("/", 1)[-1] == name:
                return cls(_V2_ROOTS[0] / rel.lstrip("/"), 2, limit_bytes, scope=name)
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        try:  # a move that lands later must not limit a run the watchdog now watches
            _busctl(scope_limit_command(name, 2**64 - 1))  # UINT64_MAX: MemoryMax=infinity
        except OSError:
            pass
        raise OSError(f"systemd accepted {name} but had not moved process {pid} into it after {wait_s:g} s")

    @staticmethod
    def _kills_in(folder: Path) -> int | None:
        # memory.events is hierarchical: a kill in a child cgroup is counted in its parent's file too.
        try:
            for line in (folder / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return None

    @classmethod
    def create(cls, limit_bytes: int) -> MemoryLimit:
        """Make the cgroup (v2 where possible, else v1) and set its limit; OSError if neither works."""
        name = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        limit_bytes = max(int(limit_bytes), 4096)
        parent = _v2_parent()
        if parent is not None:
            sweep_stale(parent)
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
        sweep_stale(parent)
        path = parent / name
        path.mkdir()
        try:
            (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        except OSError:
            path.rmdir()
            raise
        return cls(path, 1, limit_bytes)

    def set_limit(self, limit_bytes: int) -> None:
        """Change the limit (OSError if the cgroup already holds more than the kernel can reclaim to it, or, for a
        scope, if systemd refused); a scope's new limit is in force when this returns."""
        limit_bytes = _page_floor(limit_bytes)
        if self.scope is not None:
            _busctl(scope_limit_command(self.scope, limit_bytes))
            # systemd applies cgroup properties from its event loop, which may be just after it has replied.
            for _ in range(250):
                if self._read_int("memory.max") == limit_bytes or not self.path.exists():
                    break
                time.sleep(0.02)
        else:
            (self.path / ("memory.max" if self.version == 2 else "memory.limit_in_bytes")).write_text(str(limit_bytes))
        self.limit_bytes = limit_bytes

    def charge(self) -> int | None:
        """What the kernel charges this cgroup now (``memory.current``; v1 ``memory.usage_in_bytes``), or None."""
        return self._read_int("memory.current" if self.version == 2 else "memory.usage_in_bytes")

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

    def snapshot(self) -> None:
        """Keep the counters as they are now (the runner calls it at each sample while the child runs), for
        :meth:`events` to fall back on once systemd has removed a scope's folder."""
        found = self._read_events()
        if found["oom_kill"] is not None:  # None: the folder went away during the read; keep the last one
            self._last = found

    def events(self) -> dict[str, int | None]:
        """What the kernel did: ``oom_kill`` (processes it killed), ``max_usage_bytes`` (highest charge),
        ``failcnt`` / ``max_hits`` (times the limit was hit and reclaim ran), ``pgmajfault`` (major faults in the
        cgroup), ``limit_bytes``.

        For a systemd scope, whose folder goes when the child exits: the last :meth:`snapshot`, and ``oom_kill``
        at least the increase of the parent's ``memory.events`` count since the child started (the kill that
        ends the scope happens after the last snapshot)."""
        if self.owned:
            return self._read_events()
        self.snapshot()
        found = dict(self._last or {"oom_kill": None, "max_usage_bytes": None, "max_hits": None,
                                    "pgmajfault": None, "limit_bytes": self.limit_bytes})
        now = self._kills_in(self.path.parent)
        if now is not None and self._parent_kills is not None:
            found["oom_kill"] = max(found["oom_kill"] or 0, now - self._parent_kills)
        return found

    def _read_events(self) -> dict[str, int | None]:
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
        """Delete the cgroup once its processes have exited (retries briefly: the kernel frees it async).

        A systemd scope's folder is systemd's to remove: this only waits (briefly) for it to go."""
        if not self.owned:
            for _ in range(50):
                if not self.path.exists():
                    return
                time.sleep(0.02)
            return
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def sweep_stale(parent: Path) -> list[str]:
    """Remove the empty cgroups Offload Lab made under ``parent`` for processes that no longer exist.

    A runner killed mid-run (a crashed or restarted Jupyter kernel) cannot remove its child's folder; the
    next run here does. A folder that still holds a process is left (rmdir refuses it).
    """
    removed = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(_PREFIX) and p.is_dir()]
    except OSError:
        return removed
    for path in candidates:
        owner = path.name[len(_PREFIX):].split("-", 1)[0]
        if not owner.isdigit() or int(owner) == os.getpid() or Path(f"/proc/{owner}").exists():
            continue
        try:
            path.rmdir()
            removed.append(path.name)
        except OSError:
            pass
    return removed


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
