"""The runner's child processes: a forked child from the zygote (the default), or a spawned one (the fallback).

Both are hidden behind one small interface, :class:`Child`: ``pid``, ``send(line)``, ``lines()`` (the child's
JSON lines until it closes its end), ``wait(timeout)`` (exit code, negative = killed by that signal), ``kill``.

- **fork** (:class:`ForkedChild`: Linux, or macOS with ``OFFLOAD_LAB_START=fork``; not with ``=spawn``): the
  zygote (:mod:`widgetlib.measure.zygote`), started once per kernel, has imported torch and transformers; a run
  asks it to fork, and the child connects back over a Unix socket in the run's folder. The zygote is restarted
  when it speaks another protocol version or was started from other source files (a learner who upgraded
  widgetlib in a running kernel).
- **spawn** (:class:`SpawnedChild`: Windows, macOS by default, ``OFFLOAD_LAB_START=spawn``, a GPU run):
  ``python -m widgetlib.measure.child`` imports everything itself.
  One such child is kept spare (imported, waiting), so that path pays the import while nobody waits.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import CheckpointError
from .protocol import MSG_CHECKED, MSG_EXIT, MSG_ZYGOTE_READY, PROCESS_DIR_ENV, PROTOCOL_VERSION, TORCH_CACHE_ENV
from .zygote import code_fingerprint

__all__ = ["IDLE_EXIT_ENV", "Child", "ForkedChild", "SpawnedChild", "check_architecture", "child_env", "idle_exit_s",
           "prewarm", "run_ended", "run_started", "shutdown", "start_method"]

# How long a run waits for the zygote to finish importing (a first run of a session, on a slow machine).
_ZYGOTE_READY_TIMEOUT_S = 300.0
# The zygote (and the spawn path's spare child) hold torch and transformers imported: ~0.7 GB of RSS per open
# lesson, for nothing while no run comes. After this many seconds without a run they end; the next run starts a
# fresh one and waits for its import, which its Report's ``startup_s`` shows. 0 keeps them for the kernel's life.
IDLE_EXIT_ENV = "OFFLOAD_LAB_IDLE_EXIT_S"
_IDLE_EXIT_S = 600.0


def start_method() -> str:
    """``"fork"`` (from the pre-imported zygote) where the OS can fork, else ``"spawn"``;
    ``OFFLOAD_LAB_START=spawn`` forces the fallback (tested on Linux that way).

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"OFFLOAD_LAB_START": "spawn"}):
    ...     start_method()
    'spawn'
    >>> with mock.patch.dict(os.environ, {"OFFLOAD_LAB_START": ""}):  # the default: fork, but on macOS and Windows
    ...     start_method() == ("spawn" if sys.platform in ("darwin", "win32") else "fork")
    True
    """
    chosen = os.environ.get("OFFLOAD_LAB_START", "").strip().lower()
    if chosen == "spawn" or not hasattr(os, "fork") or not hasattr(socket, "AF_UNIX"):
        return "spawn"
    # macOS: Apple's system libraries are not fork-safe once initialised (CPython's multiprocessing defaults to
    # spawn there since 3.8 for that reason), so fork only when asked (OFFLOAD_LAB_START=fork).
    if sys.platform == "darwin" and chosen != "fork":
        return "spawn"
    return "fork"


def child_env(folder: Path | None = None) -> dict[str, str]:
    """The environment of the zygote and spawned children: offline, quiet, this same widgetlib importable, and
    with ``folder`` (the process's own temporary folder) as its TMPDIR and torch's compile cache.

    >>> env = child_env(Path("/tmp/own"))
    >>> env["HF_HUB_OFFLINE"], env["TMPDIR"], env["TORCHINDUCTOR_CACHE_DIR"]
    ('1', '/tmp/own', '/tmp/own/torchinductor')
    """
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",  # never reach for a hub: every checkpoint here is a local folder
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        TQDM_DISABLE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    if folder is not None:
        env.update({name: str(folder) for name in ("TMPDIR", "TEMP", "TMP")})
        env[TORCH_CACHE_ENV] = str(folder / "torchinductor")
        env[PROCESS_DIR_ENV] = str(folder)
    return env


class _Process(subprocess.Popen):  # type: ignore[type-arg]
    """``python -m MODULE`` with piped stdin/stdout and a temporary folder of its own (``.folder``, see
    :data:`~widgetlib.measure.protocol.PROCESS_DIR_ENV`), which :meth:`remove_folder` deletes once it is done.
    """

    def __init__(self, module: str, *, new_session: bool) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="offload-lab-process-"))
        try:
            super().__init__(
                [sys.executable, "-m", module],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # the zygote has nothing to say; a child points its stderr at the run's own file once it has a job
                stderr=subprocess.DEVNULL,
                env=child_env(self.folder),
                start_new_session=new_session,
            )
        except BaseException:
            self.remove_folder()
            raise

    def remove_folder(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Child:
    """A measuring child process, however it was started."""

    pid: int
    hello: dict[str, object]  # the child's hello message (its pid and RSS before the job)

    def send(self, line: str) -> None:
        raise NotImplementedError

    def lines(self) -> Iterator[str]:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> int | None:
        raise NotImplementedError

    def kill(self, sig: int | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------ the idle clock


def idle_exit_s() -> float | None:
    """Seconds without a run after which the zygote and the spare child end (None: never), from
    ``$OFFLOAD_LAB_IDLE_EXIT_S`` (default 600; 0 for never).

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {IDLE_EXIT_ENV: "0"}):
    ...     idle_exit_s()
    >>> with mock.patch.dict(os.environ, {IDLE_EXIT_ENV: ""}):
    ...     idle_exit_s()
    600.0
    """
    text = os.environ.get(IDLE_EXIT_ENV, "").strip()
    try:
        seconds = float(text) if text else _IDLE_EXIT_S
    except ValueError:
        seconds = _IDLE_EXIT_S  # a garbled setting must not keep a run from starting
    return seconds if seconds > 0 else None


class _IdleClock:
    """Ends the zygote and the spare child once no run has been in progress for :func:`idle_exit_s` seconds.

    A threading.Timer per idle stretch, here in the parent: the zygote itself must start no threads (it forks).
    Shutting down holds the clock's lock, and a run takes that lock before it asks for a process, so a run never
    gets a zygote that is being ended: it waits, then starts a fresh one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs = 0
        self._timer: threading.Timer | None = None

    def run_started(self) -> None:
        with self._lock:
            self._runs += 1
            self._cancel()

    def run_ended(self) -> None:
        with self._lock:
            self._runs = max(self._runs - 1, 0)
            if self._runs == 0:
                self._arm()

    def idle(self) -> None:
        """Start counting now, unless a run is in progress (a process was just started for runs to come)."""
        with self._lock:
            if self._runs == 0:
                self._arm()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._cancel()
        seconds = idle_exit_s()
        if seconds is not None:
            self._timer = threading.Timer(seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._runs or self._timer is not threading.current_thread():
                return  # a run started meanwhile, or this timer was replaced
            self._timer = None
            shutdown()


_idle_clock = _IdleClock()


def run_started() -> None:
    """A run is in progress (the runner calls it first): the idle processes are kept, and not ended meanwhile."""
    _idle_clock.run_started()


def run_ended() -> None:
    """A run has finished: once none is in progress, the idle clock starts again."""
    _idle_clock.run_ended()


# ------------------------------------------------------------------------------------------------ the zygote


class _Zygote:
    def __init__(self) -> None:
        # Its own session: a Ctrl-C in the kernel does not reach it.
        self.process = _Process("widgetlib.measure.zygote", new_session=True)
        self.fingerprint = code_fingerprint()
        self.greeting: dict[str, object] | None = None
        self.ready = threading.Event()
        self._exits: dict[int, int] = {}
        self._checked: dict[int, dict[str, object]] = {}
        self._next_check = 0
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="offload-lab-zygote", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for raw in self.process.stdout:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if message.get("type") == MSG_ZYGOTE_READY:
                    self.greeting = message
                    self.ready.set()
                elif message.get("type") == MSG_EXIT:
                    with self._cond:
                        self._exits[int(message["pid"])] = int(message["code"])
                        self._cond.notify_all()
                elif message.get("type") == MSG_CHECKED:
                    with self._cond:
                        self._checked[int(message["id"])] = message
                        self._cond.notify_all()
        self.ready.set()  # gone: nobody waits forever
        with self._cond:
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def current(self) -> bool:
        """Alive, and (once it has greeted) speaking this code's protocol from these source files."""
        if not self.alive:
            return False
        if self.greeting is None:
            return self.fingerprint == code_fingerprint()
        return (
            self.greeting.get("protocol") == PROTOCOL_VERSION and self.greeting.get("fingerprint") == code_fingerprint()
        )

    def _write(self, request: dict[str, object]) -> None:
        if not self.ready.wait(_ZYGOTE_READY_TIMEOUT_S) or not self.alive:
            raise RuntimeError("the zygote process ended before it could answer")
        assert self.process.stdin is not None
        with self._write_lock:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()

    def fork(self, socket_path: str) -> None:
        self._write({"socket": socket_path})

    def check(self, folder: str) -> dict[str, object] | None:
        """The zygote's answer to a check of ``folder`` (None: it ended, or had no answer within a minute)."""
        with self._cond:
            self._next_check += 1
            request_id = self._next_check
        try:
            self._write({"check": folder, "id": request_id})
        except (RuntimeError, OSError, ValueError):  # ended meanwhile (ValueError: its stdin was closed)
            return None
        with self._cond:
            self._cond.wait_for(lambda: request_id in self._checked or not self.alive, 60)
            return self._checked.pop(request_id, None)

    def exit_code(self, pid: int, timeout: float | None) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: pid in self._exits or not self.alive, timeout)
            return self._exits.pop(pid, None)

    def close(self) -> None:
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()  # the zygote reads EOF and exits
            except OSError:
                pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)  # it closes the zygote's stdout on EOF
        self.process.remove_folder()  # the zygote removes it as it exits; not if it had to be killed


_zygote: _Zygote | None = None
_zygote_lock = threading.Lock()


def _get_zygote() -> _Zygote:
    global _zygote
    with _zygote_lock:
        if _zygote is None or not _zygote.current:
            old, _zygote = _zygote, _Zygote()
            if old is not None:
                threading.Thread(target=old.close, daemon=True).start()
        return _zygote


def check_architecture(folder: str | Path) -> str:
    """:func:`widgetlib.core.strategies.check_architecture`, asked of the zygote where runs fork from it.

    The check reads ``config.json`` through transformers, and importing transformers imports torch: done in the
    learner's kernel it would hold ~0.5 GB there for the kernel's whole life, for a check. The zygote has both
    imported already. Where there is no zygote (spawn), or it cannot answer, the check runs here.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> check_architecture(make_checkpoint(size="5MB"))
    'LlamaForCausalLM'
    """
    if start_method() == "fork":
        # Counted as a run while it waits (the zygote may be importing); the clock starts again after it, so a
        # check that no run follows (an option refused next) does not keep the zygote for good.
        _idle_clock.run_started()
        try:
            answer = _get_zygote().check(str(folder))
        finally:
            _idle_clock.run_ended()
        if answer is not None and "class_name" in answer:
            return str(answer["class_name"])
        error = answer.get("error") if answer is not None else None
        if isinstance(error, dict):  # the error check_architecture raised in the zygote, raised here
            kind = str(error["kind"])
            raise CheckpointError(str(error["message"]), kind=kind)
    from ..core.strategies import check_architecture as check_here

    return check_here(folder)


class ForkedChild(Child):
    """A child forked by the zygote; it talks over a Unix socket at ``run_dir/child.sock``."""

    def __init__(self, run_dir: Path) -> None:
        self._zygote = _get_zygote()
        path = str(run_dir / "child.sock")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(1)
        self._zygote.fork(path)
        self._server.settimeout(60)
        conn, _ = self._server.accept()
        self._server.close()
        conn.settimeout(None)
        self._conn = conn
        self._reader = conn.makefile("r", encoding="utf-8")
        self._writer = conn.makefile("w", encoding="utf-8")
        self.hello = json.loads(self._reader.readline() or "{}")
        if "pid" not in self.hello:
            raise RuntimeError("the forked child closed its connection before saying hello")
        self.pid = int(self.hello["pid"])
        self._code: int | None = None

    def send(self, line: str) -> None:
        try:
            self._writer.write(line + "\n")
            self._writer.flush()
        except OSError:  # the child died before it could take the job: the Report will say so
            pass

    def lines(self) -> Iterator[str]:
        try:
            yield from self._reader
        except OSError:
            return

    def wait(self, timeout: float | None = None) -> int | None:
        if self._code is None:
            self._code = self._zygote.exit_code(self.pid, timeout)
        return self._code

    def kill(self, sig: int | None = None) -> None:
        if self._code is not None:
            return
        sig = sig or signal.SIGKILL
        try:
            os.killpg(self.pid, sig)  # its own session (setsid): helpers it started go too
        except ProcessLookupError:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        except PermissionError:
            pass

    def close(self) -> None:
        for stream in (self._reader, self._writer, self._conn):
            try:
                stream.close()
            except OSError:
                pass


# ------------------------------------------------------------------------------------------- spawn fallback


def _popen() -> _Process:
    return _Process("widgetlib.measure.child", new_session=(os.name == "posix"))


_spare: _Process | None = None
_spare_lock = threading.Lock()


class SpawnedChild(Child):
    """A fresh interpreter (``python -m widgetlib.measure.child``); the spare child when there is one."""

    def __init__(self) -> None:
        global _spare
        with _spare_lock:
            process, _spare = _spare, None
        if process is not None and process.poll() is not None:
            _discard(process)
            process = None
        self._process = process or _popen()
        self.hello = self._read_hello()
        if process is not None and self.hello.get("protocol") != PROTOCOL_VERSION:
            _discard(self._process)  # a spare started by other code: never used with this code's job
            self._process = _popen()
            self.hello = self._read_hello()
        self.pid = int(self.hello.get("pid", self._process.pid))

    def _read_hello(self) -> dict[str, object]:
        assert self._process.stdout is not None
        self._stdout = self._process.stdout
        try:
            return json.loads(self._stdout.readline() or b"{}")
        except ValueError:
            return {}

    def send(self, line: str) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write((line + "\n").encode())
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def lines(self) -> Iterator[str]:
        for raw in self._stdout:
            yield raw.decode("utf-8", errors="replace")

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, sig: int | None = None) -> None:
        if self._process.poll() is not None:
            return
        try:
            if os.name == "posix":
                os.killpg(self._process.pid, sig or signal.SIGKILL)
            else:
                self._process.kill()
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        self._stdout.close()
        if self._process.stdin is not None:
            try:
                self._process.stdin.close()
            except OSError:
                pass
        self._process.remove_folder()  # the child removes it as it exits; not if it was killed


def _discard(child: _Process) -> None:
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            stream.close()  # a waiting child reads EOF on stdin and exits by itself
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    child.remove_folder()


def refill_spare() -> None:
    """In spawn mode, start a spare child now (it imports while nobody waits). ``OFFLOAD_LAB_WARM_CHILD=0``
    turns it off."""
    global _spare
    if start_method() != "spawn" or os.environ.get("OFFLOAD_LAB_WARM_CHILD", "1") == "0":
        return
    with _spare_lock:
        if _spare is None or _spare.poll() is not None:
            _spare = _popen()


def prewarm() -> None:
    """Start the zygote (fork mode) or a spare child (spawn mode) now, so the first run does not wait for
    torch's import. Returns at once (the import runs in the other process).

    >>> import widgetlib.measure.processes as processes  # its globals now, not the doctest's copy of them
    >>> prewarm()
    >>> (processes._zygote if start_method() == "fork" else processes._spare) is not None  # importing meanwhile
    True
    """
    if start_method() == "fork":
        _get_zygote()
    else:
        refill_spare()
    _idle_clock.idle()


@atexit.register
def shutdown() -> None:
    """End the zygote and the spare child, if any (at interpreter exit; harmless to call any time).

    >>> import widgetlib.measure.processes as processes  # its globals now, not the doctest's copy of them
    >>> prewarm(); shutdown()
    >>> processes._zygote is None and processes._spare is None
    True
    """
    global _spare, _zygote
    with _spare_lock:
        spare, _spare = _spare, None
    if spare is not None:
        _discard(spare)
    with _zygote_lock:
        zygote, _zygote = _zygote, None
    if zygote is not None:
        zygote.close()
