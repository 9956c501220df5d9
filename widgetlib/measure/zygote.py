"""The zygote: one process that imports torch and transformers once, then forks a fresh child per run.

Importing torch and transformers takes seconds (about 5 s on a 2-core machine); a fork of a process that has
already imported them takes milliseconds. So the runner starts this process once per kernel
(``python -m widgetlib.measure.zygote``, in the background, when a widget is created or at the first run) and
asks it for a child per measured run. Each child is its own process: a crash or an out-of-memory kill ends it,
never the zygote or the kernel.

What a forked child's RSS includes: right after the fork the child maps every page the zygote had resident
(Python, torch's and transformers' code and data, ~0.5-0.9 GB), shared copy-on-write with the zygote. Those
pages count in the child's RSS (and so in its baseline), exactly as in a freshly started Python that imported
the same libraries; what a load adds on top is the child's own. The child resets its kernel high-water mark
after the fork (``/proc/self/clear_refs``), so its ``VmHWM`` is its own. A page the child writes is copied
(then private to it); USS (memory only this process holds) is therefore small right after a fork and grows
with the load. Under a memory cgroup, the shared pages stay charged to the zygote's cgroup: the child is
charged for what it brings in after the fork.

Protocol (JSON lines; kinds in :mod:`widgetlib.measure.protocol`): the zygote says ``zygote_ready`` (protocol
version, fingerprint of the code it imported); the runner writes ``{"socket": PATH}``; the zygote forks, the
child connects to PATH and speaks the child protocol there; the zygote reports ``{"type": "exit", "pid",
"code"}`` when that child ends (negative code: killed by that signal). The runner may also write ``{"check":
FOLDER, "id": N}``: the zygote answers ``{"type": "checked", "id": N, "class_name": ...}`` or ``..."error":
{"kind", "message"}}`` (:func:`widgetlib.core.strategies.check_architecture`, which needs transformers: asked
here, the learner's kernel never imports it). The zygote exits when its stdin closes.
The zygote starts no threads of its own (forking a multi-threaded process is unsafe): it waits with
``select``. The one other thread it has is an idle native thread that ``import torch`` starts (checked:
/proc/<pid>/task lists 2 after the import, 1 before); torch's own DataLoader workers fork after the same import.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import select
import sys
from pathlib import Path

from .protocol import MSG_CHECKED, MSG_EXIT, MSG_ZYGOTE_READY, PROTOCOL_VERSION, remove_process_dir

__all__ = ["code_fingerprint", "main"]


def code_fingerprint() -> str:
    """A short hash of widgetlib's source files' sizes and mtimes: a zygote started from other code differs.

    >>> len(code_fingerprint())
    12
    """
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


def _send(line: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send({"type": MSG_EXIT, "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def _check(request: dict[str, object]) -> dict[str, object]:
    """Answer a ``check`` request; a failure of the check itself is answered too (the runner then checks locally)."""
    from ..core.errors import OffloadLabError
    from ..core.strategies import check_architecture

    answer: dict[str, object] = {"type": MSG_CHECKED, "id": request.get("id")}
    try:
        answer["class_name"] = check_architecture(str(request["check"]))
    except OffloadLabError as exc:
        answer["error"] = {"kind": exc.kind, "message": exc.message}
    except Exception as exc:  # not a learner's mistake: say so, and let the runner's own check raise it
        answer["failed"] = f"{type(exc).__name__}: {exc}"
    return answer


def _fork_child(socket_path: str, stdin_fd: int, stdout_fd: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    # In the child: its own session (a kill reaches its helpers, a Ctrl-C in the kernel does not reach it),
    # and none of the zygote's pipes, so the runner sees EOF from the zygote only when the zygote goes.
    code = 1
    try:
        os.setsid()
        os.close(stdin_fd)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(stdout_fd)
        sys.stdout = sys.stderr
        from .child import serve_forked

        code = serve_forked(socket_path)
    except BaseException:  # the runner sees the socket close without a result and reports a crash
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)  # never run the zygote's loop, atexit handlers or teardown in a child


def main() -> int:
    # The protocol keeps the real stdout; fd 1 is pointed at stderr so no library print can break it.
    stdout_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(stdout_fd, "w", encoding="utf-8")
    fingerprint = code_fingerprint()
    import_error = None
    try:
        import torch

        from .child import import_libraries, warm_up

        import_libraries()
        # Record torch's default, then warm up on one thread: no OpenMP pool exists at the fork, which keeps
        # the children's own thread pools sound; each child sets the default (or its job's threads) back.
        os.environ["OFFLOAD_LAB_TORCH_THREADS"] = str(torch.get_num_threads())
        torch.set_num_threads(1)
        warm_up(None, "keep")  # imports the demo checkpoints' architecture too (a hub model's comes per child)
        # Python's documented advice for a process that forks without exec (the gc module's freeze()): what is
        # alive now goes to a generation the collector never visits, so a child's collections do not write to
        # (and so copy) the pages of the zygote's objects, which would count as memory the load added.
        gc.collect()
        gc.freeze()
    except Exception as exc:  # a child reports it (spawned children do the same import and fail the same way)
        import_error = f"{type(exc).__name__}: {exc}"
    _send({"type": MSG_ZYGOTE_READY, "protocol": PROTOCOL_VERSION, "fingerprint": fingerprint,
           "pid": os.getpid(), "import_error": import_error})
    stdin_fd = sys.stdin.fileno()
    buffer = b""
    while True:
        ready, _, _ = select.select([stdin_fd], [], [], 0.02)
        _reap()
        if not ready:
            continue
        chunk = os.read(stdin_fd, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            if "check" in request:
                _send(_check(request))
            else:
                _fork_child(request["socket"], stdin_fd, stdout_fd)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    finally:  # only the zygote gets here: a forked child ends in _fork_child's os._exit
        remove_process_dir()
    sys.stdout.flush()
    os._exit(code)
