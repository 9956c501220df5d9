"""How the browser tests find a browser, and what a run without one does. No browser needed: these always run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _chromium import chromium_problem, find_chromium  # beside this file; conftest.py puts it on sys.path

BROWSER_TESTS = str(Path(__file__).with_name("test_lessons_in_lab.py"))
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="the fake browsers are shell scripts")


def _fake_browser(folder: Path, name: str, version_line: str, status: int = 0) -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{version_line}'\nexit {status}\n")
    path.chmod(0o755)
    return path


@posix_only
def test_google_chrome_on_path_is_taken_without_the_word_chromium(tmp_path: Path) -> None:
    chrome = _fake_browser(tmp_path, "google-chrome", "Google Chrome 131.0.6778.85")
    env = {"PATH": str(tmp_path)}
    assert find_chromium(env) == chrome
    assert chromium_problem(env) is None


@posix_only
def test_the_environment_variable_wins_and_a_broken_browser_is_named(tmp_path: Path) -> None:
    _fake_browser(tmp_path, "chromium", "Chromium 156.0")
    broken = _fake_browser(tmp_path, "my-browser", "cannot open display", status=3)
    env = {"PATH": str(tmp_path), "OFFLOAD_LAB_CHROMIUM": str(broken)}
    assert find_chromium(env) == broken
    problem = chromium_problem(env)
    assert problem is not None and str(broken) in problem and "exit status 3" in problem, problem


def _pytest_without_a_browser(require: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OFFLOAD_LAB_CHROMIUM="/nonexistent/chromium", OFFLOAD_LAB_REQUIRE_BROWSER=require)
    env.pop("CI", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", BROWSER_TESTS, "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


def test_without_a_browser_the_run_passes_and_says_what_it_skipped() -> None:
    done = _pytest_without_a_browser("0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tail = done.stdout.strip().splitlines()[-4:]
    assert any("5 browser test(s) skipped. No browser at /nonexistent/chromium" in line for line in tail), tail
    assert any("make test" in line for line in tail), tail


def test_where_the_browser_is_required_a_missing_one_fails_in_one_sentence() -> None:
    done = _pytest_without_a_browser("1")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout[-3000:]
    lines = [line for line in done.stdout.splitlines() if "No browser at /nonexistent/chromium" in line]
    assert len(lines) == 1 and "OFFLOAD_LAB_REQUIRE_BROWSER=1" in lines[0], done.stdout[-3000:]
    assert "passed" not in done.stdout
