"""Which Chromium (or Chrome) the browser tests drive, and whether a missing one is a skip or a failure.

The real-browser tests (``tests/browser``) drive an installed Chromium or Google Chrome through Playwright;
Playwright's own browser download does not work on the machines this project runs on. The browser is, in
order: ``$OFFLOAD_LAB_CHROMIUM`` when set (and then only that: a wrong path is reported, never replaced by
a guess), else the first of the usual names on ``PATH`` (``chromium``, ``chromium-browser``,
``google-chrome``, ``google-chrome-stable``), else the usual install locations on Linux, macOS and Windows.

Where none runs, ``make test`` runs every other test and its summary says the browser tests were skipped and
how to get them; where they are required (``CI=true`` or ``OFFLOAD_LAB_REQUIRE_BROWSER=1``, as ``.ci/run``
sets; ``OFFLOAD_LAB_REQUIRE_BROWSER=0`` turns that off) the run fails with one sentence instead.

Nothing here imports anything heavy: the root of the test session imports it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "ENV_VAR",
    "INSTALL_HINT",
    "REQUIRE_ENV_VAR",
    "browser_required",
    "candidate_paths",
    "chromium_problem",
    "find_chromium",
]

ENV_VAR = "OFFLOAD_LAB_CHROMIUM"
REQUIRE_ENV_VAR = "OFFLOAD_LAB_REQUIRE_BROWSER"
NAMES_ON_PATH = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "install Chromium (Debian/Ubuntu: `apt-get install -y chromium`) or Google Chrome, "
    f"or set {ENV_VAR} to the browser's executable"
)


def _usual_locations(environ: Mapping[str, str]) -> list[Path]:
    """Where Chromium and Chrome install themselves on Linux, macOS and Windows (whether they exist or not)."""
    places = [Path("/usr/bin") / name for name in NAMES_ON_PATH]
    places += [Path("/snap/bin/chromium")]
    places += [
        Path("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"),
        Path("/Applications/Chromium.app/Contents/MacOS/Chromium"),
    ]
    # Windows: per machine (64- and 32-bit Program Files) and per user (LOCALAPPDATA).
    for var in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA"):
        base = environ.get(var)
        if base:
            places.append(Path(base) / "Google" / "Chrome" / "Application" / "chrome.exe")
            places.append(Path(base) / "Chromium" / "Application" / "chrome.exe")
    return places


def candidate_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Every place looked at, in order: ``$OFFLOAD_LAB_CHROMIUM`` alone when set, else PATH, then the usual spots.

    >>> [p.as_posix() for p in candidate_paths({"OFFLOAD_LAB_CHROMIUM": "/opt/chrome/chrome"})]
    ['/opt/chrome/chrome']
    >>> Path("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome") in candidate_paths({"PATH": ""})
    True
    """
    environ = os.environ if environ is None else environ
    chosen = environ.get(ENV_VAR)
    if chosen:
        return [Path(chosen).expanduser()]
    found = [shutil.which(name, path=environ.get("PATH", "")) for name in NAMES_ON_PATH]
    places = [Path(p) for p in found if p]
    places += [p for p in _usual_locations(environ) if p not in places]
    return places


def find_chromium(environ: Mapping[str, str] | None = None) -> Path | None:
    """The first candidate that is an executable file, or None.

    >>> find_chromium({"OFFLOAD_LAB_CHROMIUM": "/nonexistent/chromium"}) is None
    True
    """
    for path in candidate_paths(environ):
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def chromium_problem(environ: Mapping[str, str] | None = None, timeout_s: float = 60.0) -> str | None:
    """None when a browser is found and runs ``--version``, else one sentence saying what is wrong and the fix.

    Any browser that answers ``--version`` with exit status 0 is taken: Chrome says "Google Chrome 131...",
    not "Chromium". (On Windows ``chrome.exe --version`` prints nothing and may open a window, so there the
    file's existence is the check.)

    >>> print(chromium_problem({"OFFLOAD_LAB_CHROMIUM": "/nonexistent/chromium"}))  # doctest: +ELLIPSIS
    No browser at /nonexistent/chromium (from OFFLOAD_LAB_CHROMIUM), so the browser tests cannot run: install ...
    """
    environ = os.environ if environ is None else environ
    path = find_chromium(environ)
    if path is None:
        chosen = environ.get(ENV_VAR)
        names = ", ".join(NAMES_ON_PATH)
        where = f"at {chosen} (from {ENV_VAR})" if chosen else f"on PATH ({names}) or in the usual places"
        return f"No browser {where}, so the browser tests cannot run: {INSTALL_HINT}."
    if sys.platform == "win32":
        return None
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return (
            f"The browser at {path} did not run `--version` ({type(exc).__name__}), "
            f"so the browser tests cannot run: {INSTALL_HINT}."
        )
    if done.returncode != 0:
        detail = ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1]
        return (
            f"The browser at {path} failed `--version` (exit status {done.returncode}: {detail}), "
            f"so the browser tests cannot run: {INSTALL_HINT}."
        )
    return None


def browser_required(environ: Mapping[str, str] | None = None) -> bool:
    """True where a missing browser must fail the run: ``OFFLOAD_LAB_REQUIRE_BROWSER=1``, or ``CI`` set and
    ``OFFLOAD_LAB_REQUIRE_BROWSER`` not ``0``.

    >>> browser_required({}), browser_required({"CI": "true"})
    (False, True)
    >>> browser_required({"CI": "true", "OFFLOAD_LAB_REQUIRE_BROWSER": "0"})
    False
    """
    environ = os.environ if environ is None else environ
    explicit = environ.get(REQUIRE_ENV_VAR, "").strip().lower()
    if explicit:
        return explicit not in ("0", "false", "no", "off")
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
