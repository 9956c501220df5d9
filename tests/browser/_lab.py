"""A throw-away JupyterLab server for the real-browser tests.

:func:`running_lab` copies a folder of notebooks into a temporary directory, starts ``jupyter lab`` on
127.0.0.1 on a free port with a random token, with its own config, runtime, data, settings and workspaces
folders (nothing from the user's ``~/.jupyter`` leaks in, nothing leaks out), waits until ``/api/status``
answers, and on exit shuts it down through the REST API (kernels included), killing the process group only if
that does not finish in time. Used by ``conftest.py`` beside it (one server for the whole browser session)::

    with running_lab("notebooks", env={"OFFLOAD_LAB_SIZE": "150MB"}) as lab:
        print(lab.url_for("01_normal_loading.ipynb", workspace="t1"))

It lives with the tests, not in the installed package: learners never need it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_SETTINGS", "LabServer", "LabStartError", "free_port", "running_lab"]

# Settings every test server gets (user settings files, by plugin id). Lab's news/update check pops a
# notification over the notebook and reaches for the network: off. Notebook windowing: "none" keeps every cell
# attached and rendered; the default ("contentVisibility") skips rendering cells out of view, so after Run All
# scrolls to the end a widget output further up is "not visible" to the browser and its plot may not draw.
# Autosave: off. Lab saves an open notebook every 120 s; a test that ran that long on a loaded machine saved
# its widget outputs into the notebook, and the next test opening it got "widget model not found" errors
# for views of a kernel that was gone (seen here: run b-2, test_bad_checkpoint_path_shows_one_message).
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


class LabStartError(RuntimeError):
    """JupyterLab did not come up; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    >>> 1024 <= free_port() <= 65535
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LabServer:
    """A running JupyterLab: where it is, how to reach it, and a little of its REST API."""

    port: int
    token: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, notebook: str, *, workspace: str) -> str:
        """The page that opens ``notebook`` (relative to the root) in a fresh, named workspace.

        A unique workspace per test: otherwise Lab restores the previous test's open documents. ``reset``
        starts the workspace empty even if the name was used before.
        """
        path = urllib.parse.quote(notebook)
        ws = urllib.parse.quote(workspace, safe="")
        return f"{self.base_url}/lab/workspaces/{ws}/tree/{path}?reset&token={self.token}"

    def api(self, method: str, path: str, body: Any = None, timeout_s: float = 10.0) -> Any:
        """Call the server's REST API (``path`` like ``/api/sessions``); JSON in and out, None for no body."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/api/sessions"))

    def shutdown_sessions(self, idle_timeout_s: float = 15.0) -> None:
        """Wait (a while) for every kernel to be idle, then delete all sessions (their kernels stop too).

        Deleting a busy kernel's session works but leaves a ZMQ error in the log; waiting first keeps the log
        clean. A kernel still busy after ``idle_timeout_s`` is shut down anyway.
        """
        deadline = time.monotonic() + idle_timeout_s
        while time.monotonic() < deadline:
            states = [s.get("kernel", {}).get("execution_state") for s in self.sessions()]
            if all(state in ("idle", "dead", None) for state in states):
                break
            time.sleep(0.2)
        for session in self.sessions():
            with contextlib.suppress(urllib.error.HTTPError):
                self.api("DELETE", f"/api/sessions/{session['id']}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n_lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n_lines:])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this process when the process that started it dies (a killed pytest leaves no Lab behind;
    on SIGTERM Lab shuts its kernels down). Elsewhere: nothing."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _write_settings(settings_dir: Path, settings: Mapping[str, Mapping[str, Any]]) -> None:
    for plugin, value in settings.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def _wait_until_up(server: LabServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise LabStartError(
                f"JupyterLab exited with status {server.process.returncode} before answering; "
                f"its log ends:\n{server.log_tail()}"
            )
        with contextlib.suppress(OSError, ValueError):
            server.api("GET", "/api/status", timeout_s=2.0)
            return
        time.sleep(0.2)
    raise LabStartError(
        f"JupyterLab did not answer /api/status within {timeout_s:.0f} s; its log ends:\n{server.log_tail()}"
    )


def _stop(server: LabServer, timeout_s: float) -> None:
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            server.shutdown_sessions(idle_timeout_s=5.0)
        with contextlib.suppress(OSError, ValueError):
            server.api("POST", "/api/shutdown")
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5.0)
    # Anything left in the server's process group: gone. (Kernels run in sessions of their own; the sessions'
    # deletion and /api/shutdown above are what stop them.)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_lab(
    notebooks: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    start_timeout_s: float = 60.0,
    stop_timeout_s: float = 15.0,
) -> Iterator[LabServer]:
    """Start JupyterLab on a temporary copy of ``notebooks`` (a folder; None: an empty root), stop it after.

    ``env`` is added to the server's environment (kernels inherit it). ``settings`` (plugin id → values)
    replaces :data:`DEFAULT_SETTINGS`. ``workdir``, when given, holds the
    server's folders (``root/``, ``jupyter/``...) and is kept; by default a temporary folder is used, then
    removed.
    """
    own_tmp = workdir is None
    base = Path(tempfile.mkdtemp(prefix="offload-lab-jupyter-")) if own_tmp else Path(workdir)  # type: ignore[arg-type]
    base.mkdir(parents=True, exist_ok=True)
    root = base / "root"
    if notebooks is not None:
        shutil.copytree(
            notebooks,
            root,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
        )
    root.mkdir(exist_ok=True)
    dirs = {
        name: base / "jupyter" / name for name in ("config", "runtime", "data", "settings", "workspaces", "ipython")
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    _write_settings(dirs["settings"], DEFAULT_SETTINGS if settings is None else settings)

    server_env = dict(os.environ)
    server_env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_PLATFORM_DIRS="1",
        IPYTHONDIR=str(dirs["ipython"]),
        PYTHONUNBUFFERED="1",
    )
    server_env.update(env or {})

    token = secrets.token_hex(24)
    log_path = base / "lab.log"
    server: LabServer | None = None
    try:
        for _attempt in range(3):  # a port taken between free_port() and the bind: try another
            port = free_port()
            args = [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                f"--LabApp.user_settings_dir={dirs['settings']}",
                f"--LabApp.workspaces_dir={dirs['workspaces']}",
            ]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                args.append("--allow-root")
            log = log_path.open("ab")
            try:
                process = subprocess.Popen(
                    args,
                    cwd=root,
                    env=server_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                )
            finally:
                log.close()
            server = LabServer(port=port, token=token, root_dir=root, log_path=log_path, process=process)
            try:
                _wait_until_up(server, start_timeout_s)
                break
            except LabStartError:
                if process.poll() is not None and "already in use" in server.log_tail():
                    continue
                raise
        else:
            raise LabStartError(f"JupyterLab found no free port in 3 tries; its log ends:\n{server.log_tail()}")
        yield server
    finally:
        if server is not None:
            _stop(server, stop_timeout_s)
        if own_tmp:
            shutil.rmtree(base, ignore_errors=True)
