"""Fail loudly when the browser tests cannot run: ``python -m widgetlib.testing.check_browser``.

The real-browser tests (``tests/browser``) drive Debian's Chromium through Playwright; Playwright's own
browser download does not work on the machines this project runs on. Rather than letting those tests skip
without a word, ``make test`` runs this check first: exit status 0 when the browser runs, else one sentence
on stderr saying what is missing and how to install it, and exit status 1.

``$OFFLOAD_LAB_CHROMIUM`` points at another Chromium executable; the default is ``/usr/bin/chromium``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["DEFAULT_CHROMIUM", "chromium_path", "chromium_problem", "main"]

DEFAULT_CHROMIUM = "/usr/bin/chromium"
_INSTALL_HINT = "install it with `apt-get update && apt-get install -y chromium` (or set OFFLOAD_LAB_CHROMIUM)"


def chromium_path() -> Path:
    """The Chromium executable the browser tests use: ``$OFFLOAD_LAB_CHROMIUM`` or ``/usr/bin/chromium``."""
    return Path(os.environ.get("OFFLOAD_LAB_CHROMIUM") or DEFAULT_CHROMIUM)


def chromium_problem(path: Path | None = None, timeout_s: float = 60.0) -> str | None:
    """None when ``path`` runs ``--version``, else one sentence saying what is wrong and what to do."""
    path = chromium_path() if path is None else path
    if not path.is_file():
        return f"Chromium is missing at {path}, so the browser tests cannot run: {_INSTALL_HINT}."
    if not os.access(path, os.X_OK):
        return f"Chromium at {path} is not executable, so the browser tests cannot run: {_INSTALL_HINT}."
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Chromium at {path} did not run `--version` ({type(exc).__name__}: {exc}): {_INSTALL_HINT}."
    if done.returncode != 0 or "chromium" not in done.stdout.lower():
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"Chromium at {path} failed `--version` (exit status {done.returncode}: {detail[0]}): {_INSTALL_HINT}."
    return None


def main() -> int:
    problem = chromium_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
