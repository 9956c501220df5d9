"""Every lesson notebook executed headless, once per session and mode, for the tests that read the results.

``tests/test_lessons.py`` judges the executions (no error, checks blank as shipped and passed when solved);
``tests/browser/test_lesson_figures.py`` draws the solved runs' figures in Chromium. Both share one session
fixture (``executions`` in ``tests/conftest.py``), so the lessons run once per test session.

Each notebook is executed with a small checkpoint (``$OFFLOAD_LAB_LESSON_SIZE``, default 60MB) and
``OFFLOAD_LAB_STRICT_CHECKS=1``:

- **as shipped**, under ``OFFLOAD_LAB_PROBE=portable`` (the psutil-only probe macOS and Windows get);
- **solved**, the solutions substituted in, with the default probe and ``OFFLOAD_LAB_STATIC_FIGURES=1``, so each
  live figure also leaves its final static copy in the saved notebook (a saved FigureWidget keeps only its
  first, empty state).
"""

from __future__ import annotations

import functools
import os
import re
import runpy
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from widgetlib.teach import STRICT_ENV
from widgetlib.widgets._static import STATIC_FIGURES_ENV

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = REPO / "lessons" / "solutions.py"
LESSON_SIZE = os.environ.get("OFFLOAD_LAB_LESSON_SIZE", "60MB")
MODES = ("shipped", "solved")
# Per notebook; the whole suite must stay well inside CI's budget (benchmarks/bench_lessons.py measures the times).
EXECUTE_TIMEOUT_S = 300
# Each notebook runs in its own process (nbclient + a fresh kernel), WORKERS at a time: every lesson is a
# sequence of measured loads, each in a child process that imports torch, and two notebooks at once use two
# cores. Memory figures are per process, so running side by side does not change what the lessons assert.
WORKERS = int(os.environ.get("OFFLOAD_LAB_LESSON_WORKERS", "2"))
_EXECUTE = """
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

source, target, timeout_s = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
notebook = nbformat.read(source, as_version=4)
client = NotebookClient(notebook, kernel_name="python3", timeout=timeout_s,
                        resources={"metadata": {"path": str(target.parent)}})
try:
    client.execute()
finally:
    nbformat.write(notebook, target)
"""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@functools.cache
def all_solutions() -> dict[str, dict[str, str]]:
    """``lessons/solutions.py``'s answers: lesson stem -> {blank as it ships: the answer}."""
    return runpy.run_path(str(SOLUTIONS))["SOLUTIONS"]


def solutions(stem: str) -> dict[str, str]:
    answers = all_solutions()
    assert stem in answers, f"{stem} has no answers in {SOLUTIONS}"
    return answers[stem]


def solved(notebook: nbformat.NotebookNode, stem: str) -> nbformat.NotebookNode:
    """``notebook`` with every blank answer replaced by its solution (each blank must occur exactly once)."""
    result = nbformat.from_dict(notebook)
    for blank, answer in solutions(stem).items():
        cells = [c for c in result.cells if c.cell_type == "code" and blank.strip() in c.source]
        assert len(cells) == 1 and cells[0].source.count(blank.strip()) == 1, (
            f"{stem}: the blank {blank.strip()!r} must occur in exactly one code cell, once")
        cells[0].source = cells[0].source.replace(blank.strip(), answer.strip())
    return result


@dataclass
class Execution:
    returncode: int
    seconds: float
    stderr: str
    executed: Path


def execute(notebook_path: Path, workdir: Path, mode: str) -> Execution:
    """Run one notebook in a fresh kernel: ``shipped`` (blank exercises, the portable probe) or ``solved``."""
    target = workdir / mode / notebook_path.stem / notebook_path.name
    target.parent.mkdir(parents=True)
    source = target.with_suffix(".source.ipynb")
    notebook = nbformat.read(notebook_path, as_version=4)
    nbformat.write(solved(notebook, notebook_path.stem) if mode == "solved" else notebook, source)
    env = {**os.environ, "OFFLOAD_LAB_SIZE": LESSON_SIZE, STRICT_ENV: "1"}
    env.pop("OFFLOAD_LAB_PROBE", None)
    env.pop(STATIC_FIGURES_ENV, None)
    if mode == "shipped":
        env["OFFLOAD_LAB_PROBE"] = "portable"
    else:
        env[STATIC_FIGURES_ENV] = "1"
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _EXECUTE, str(source), str(target), str(EXECUTE_TIMEOUT_S)],
                          env=env, capture_output=True, text=True, timeout=EXECUTE_TIMEOUT_S + 60)
    return Execution(done.returncode, time.monotonic() - start, _ANSI.sub("", done.stderr), target)


def _loads_in(notebook_path: Path) -> int:
    """About how many measured loads a lesson runs (a CompareBoard runs four, a sweep three)."""
    text = (REPO / "lessons" / f"{notebook_path.stem}.py").read_text()
    return (text.count("panel.run()") + text.count("run_live(") + 4 * text.count("board.run()")
            + 3 * text.count(".sweep("))


def execute_all(workdir: Path, notebooks: list[Path] = NOTEBOOKS) -> dict[tuple[str, str], Execution]:
    """Execute each notebook in both modes, WORKERS at a time, longest first: (stem, mode) -> Execution.

    Every lesson as shipped, then every lesson solved, so that the two executions of one lesson do not run side
    by side: each of lesson 03's cold runs drops the checkpoint's pages from the page cache for every process,
    the other execution's warm runs included (measured: 79 s each side by side, 38-44 s apart).
    """
    order = [(p, mode) for mode in MODES for p in sorted(notebooks, key=_loads_in, reverse=True)]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        done = pool.map(lambda job: execute(job[0], workdir, job[1]), order)
        results = dict(zip([(p.stem, mode) for p, mode in order], done, strict=True))
    total = time.monotonic() - start
    lines = [f"{stem} {mode}: {r.seconds:.1f} s" for (stem, mode), r in sorted(results.items())]
    print(f"\nlessons executed with {WORKERS} worker(s) in {total:.1f} s wall: " + "; ".join(lines))
    return results
