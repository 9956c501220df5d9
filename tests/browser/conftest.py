"""Real-browser fixtures: one JupyterLab server and one headless Chromium per session, a fresh page and
workspace per test, and front-end errors collected per test (an unexpected one fails the test).

The browser is an installed Chromium or Chrome (``$OFFLOAD_LAB_CHROMIUM``, else the usual names and places: see
``_chromium.py``): Playwright's own download does not work on the machines this project runs on. Where none
runs, these tests are skipped and the run's summary says so and how to get them; where they are required
(``CI=true`` or ``OFFLOAD_LAB_REQUIRE_BROWSER=1``, as ``.ci/run`` sets) the run stops with one sentence.

The Lab server runs on a temporary copy of ``notebooks/`` plus the small notebooks the tests write themselves
(see ``helper_notebooks``), with ``OFFLOAD_LAB_SIZE`` small (``$OFFLOAD_LAB_TEST_SIZE``, default 150MB) so
that a load lasts a few seconds: long enough to watch the plot grow, short enough for a test.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

# The helpers beside this file are not a package (pytest runs with --import-mode=importlib, which puts nothing
# on sys.path), so this folder goes on the path for them.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _chromium import browser_required, chromium_problem, find_chromium  # noqa: E402
from _lab import LabServer, running_lab  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# The notebooks learners open; $OFFLOAD_LAB_TEST_NOTEBOOKS points the tests at another folder of them.
NOTEBOOKS = Path(os.environ.get("OFFLOAD_LAB_TEST_NOTEBOOKS") or REPO / "notebooks")
LAB_SIZE = os.environ.get("OFFLOAD_LAB_TEST_SIZE", "150MB")

KERNEL_IDLE = "Python 3 (ipykernel) | Idle"
# A wait on the page fails after this long without any change on it (see LabPage.wait_with_progress).
# 120 s: under a load average of 11 on 2 cores a child's first samples came 90 s after Run, with nothing
# else on the page moving meanwhile.
STALL_S = float(os.environ.get("OFFLOAD_LAB_TEST_STALL_S", "120"))

# Everything that moves while a notebook runs, as one JSON-able value: cells finished (their prompt shows a
# number), outputs, points per plot trace, and the text of the widgets' status lines, cards and tables.
PROGRESS_JS = """() => {
    const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
    if (!nb) return null;
    const done = [...nb.querySelectorAll('.jp-InputArea-prompt')].filter(p => /\\[\\d+\\]/.test(p.textContent)).length;
    const outputs = nb.querySelectorAll('.jp-OutputArea-output').length;
    const points = [...nb.querySelectorAll('.js-plotly-plot')]
        .map(gd => (gd.data || []).map(t => t.x ? t.x.length : 0));
    const texts = [...nb.querySelectorAll('.widget-html, .offload-lab-card, .offload-lab-table')]
        .map(e => e.textContent);
    return JSON.stringify([done, outputs, points, texts]);
}"""

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# Front-end messages that are proven harmless. Each entry: (regex on the message, why it is harmless).
# Everything else on the page's 'pageerror' channel or the console's 'error' level fails the test.
ALLOWED_ERRORS: list[tuple[str, str]] = []


# Reads a plot from the page: per trace its name, ``meta`` (MemoryPlot tags traces "<run id>:rss",
# "<run id>:events", ...), point count, highest y and drawn colour; per shape its name ("<run id>:peak") and label.
PLOT_STATE_JS = """gd => {
    const colour = o => (o && ((o.line && o.line.color) || (o.marker && o.marker.color))) || null;
    const full = gd._fullData || [];
    return {
        traces: (gd.data || []).map((t, i) => {
            const ys = t.y ? Array.from(t.y).filter(v => v !== null && v !== undefined) : [];
            return {
                name: t.name === undefined || t.name === null ? null : String(t.name),
                meta: t.meta === undefined || t.meta === null ? null : String(t.meta),
                n: t.x ? t.x.length : 0,
                ymax: ys.length ? Math.max(...ys) : null,
                color: colour(full[i]) || colour(t),
                mode: t.mode || null,
            };
        }),
        shapes: ((gd.layout || {}).shapes || []).map(s => ({
            name: s.name || null, y0: s.y0, label: (s.label && s.label.text) || null,
        })),
    };
}"""


# --- helper notebooks ---------------------------------------------------------------------------------------


def _code(source: str) -> Any:
    return nbformat.v4.new_code_cell(source)


def _notebook(*cells: str) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.cells = [_code(source) for source in cells]
    return nb


# The harness checking itself: a FigureWidget fed from a thread while a cell blocks the kernel, like a load.
# The feeder runs for up to 30 s (the first FigureWidget can take seconds to show on a busy machine); the test
# interrupts the kernel once it has seen the line grow.
HARNESS_NOTEBOOK = _notebook(
    "import threading, time\nimport plotly.graph_objects as go\n"
    "fig = go.FigureWidget()\nfig.add_scatter(x=[], y=[], name='RSS')\nfig",
    "def feed():\n"
    "    xs, ys = [], []\n"
    "    for i in range(300):\n"
    "        xs.append(i * 0.1); ys.append(i * i)\n"
    "        with fig.batch_update():\n"
    "            fig.data[0].x = xs; fig.data[0].y = ys\n"
    "        time.sleep(0.1)\n"
    "feeder = threading.Thread(target=feed, daemon=True); feeder.start()",
    "feeder.join()",
)


def panel_notebook(checkpoint: str) -> Any:
    """One StrategyPanel on ``checkpoint``, driven from the page by the tests (Run, Stop, checkpoint field)."""
    return _notebook(f"from widgetlib import StrategyPanel\npanel = StrategyPanel({checkpoint!r})\npanel")


def helper_notebooks(checkpoint: str) -> dict[str, Any]:
    """The notebooks the tests add next to the lessons' copies."""
    return {"harness_live_plot.ipynb": HARNESS_NOTEBOOK, "panel_only.ipynb": panel_notebook(checkpoint)}


# --- session fixtures ---------------------------------------------------------------------------------------


@functools.cache
def browser_problem() -> str | None:
    """Why the browser tests cannot run here (one sentence), or None; checked once per session."""
    if importlib.util.find_spec("playwright") is None:
        return (
            "Playwright is not installed, so the browser tests cannot run: `make test` installs it "
            "(or `pip install -e '.[dev]'`)."
        )
    return chromium_problem()


_SKIPPED = pytest.StashKey[tuple[int, str]]()


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: only browser tests that would run count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """No usable browser: skip the browser tests (and say so at the end), or stop the run where they are required."""
    browser_items = [item for item in items if item.get_closest_marker("browser")]
    problem = browser_problem() if browser_items else None
    if problem is None:
        return
    if browser_required():
        why = "OFFLOAD_LAB_REQUIRE_BROWSER=1" if os.environ.get("OFFLOAD_LAB_REQUIRE_BROWSER") else "CI is set"
        pytest.exit(f"{problem.rstrip('.')} (this run requires them: {why}).", returncode=pytest.ExitCode.USAGE_ERROR)
    skip = pytest.mark.skip(reason="no browser to drive (why and how to get one: the last lines of this run)")
    for item in browser_items:
        item.add_marker(skip)
    config.stash[_SKIPPED] = (len(browser_items), problem)


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: printed after pytest's own short summary
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> Iterator[None]:
    """The last words of a run without a browser: what was skipped, why, and how to get those tests."""
    yield
    count, problem = config.stash.get(_SKIPPED, (0, ""))
    if count:
        terminalreporter.write_sep("=", "browser tests skipped", yellow=True, bold=True)
        terminalreporter.write_line(f"{count} browser test(s) skipped. {problem}")
        terminalreporter.write_line('Then `make test` runs them too (`make test PYTEST_ARGS="-m browser"`: only them).')


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    problem = browser_problem()
    if problem is not None:  # only reachable when the collection hook above did not run (it skips or stops)
        pytest.fail(problem, pytrace=False)
    return str(find_chromium())


def _start_demo_build() -> subprocess.Popen[str]:
    """Build (or reuse from the session's cache) the small demo checkpoint, in the background."""
    env = dict(os.environ, OFFLOAD_LAB_SIZE=LAB_SIZE)
    code = "from widgetlib import demo_checkpoint; print(demo_checkpoint())"
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab on copies of the lesson notebooks plus the helper notebooks, for the whole session.

    The demo checkpoint is built while Lab starts (both take seconds), so no test pays for it. The session's
    ``OFFLOAD_LAB_CACHE`` (tests/conftest.py) is in the environment of both, and of every kernel.
    """
    staging = tmp_path_factory.mktemp("lab-notebooks")
    if NOTEBOOKS.is_dir():
        for path in NOTEBOOKS.glob("*.ipynb"):
            (staging / path.name).write_bytes(path.read_bytes())
    build = _start_demo_build()
    try:
        with running_lab(staging, env={"OFFLOAD_LAB_SIZE": LAB_SIZE}, workdir=tmp_path_factory.mktemp("lab")) as server:
            out, err = build.communicate(timeout=300)
            if build.returncode != 0:
                pytest.fail(f"Could not build the {LAB_SIZE} demo checkpoint:\n{err[-3000:]}", pytrace=False)
            checkpoint = out.strip().splitlines()[-1]
            for name, nb in helper_notebooks(checkpoint).items():
                nbformat.write(nb, server.root_dir / name)
            yield server
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()


@pytest.fixture(scope="session")
def browser_context(chromium_executable: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="offload-lab-chromium-") as profile:
        # A user-data dir only goes through launch_persistent_context; a temp one keeps runs independent.
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


# --- per test -----------------------------------------------------------------------------------------------


@dataclass
class LabPage:
    """One browser tab on the Lab server, with the few gestures the tests need and the errors it saw."""

    page: Any
    lab: LabServer
    errors: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    marks: list[tuple[str, float]] = field(default_factory=lambda: [("start", time.monotonic())])

    def mark(self, label: str) -> None:
        """Note when a step ended; the steps' durations are printed after the test (shown with ``-s``)."""
        self.marks.append((label, time.monotonic()))

    def timings(self) -> str:
        steps = zip(self.marks, self.marks[1:], strict=False)
        return ", ".join(f"{label} {t1 - t0:.1f} s" for (_, t0), (label, t1) in steps)

    # Errors -------------------------------------------------------------------------------------------------
    def _record(self, text: str) -> None:
        for pattern, _why in ALLOWED_ERRORS:
            if re.search(pattern, text):
                self.allowed.append(text)
                return
        self.errors.append(text)

    def on_console(self, message: Any) -> None:
        if message.type == "error":
            self._record(f"console.error: {message.text}")

    def on_page_error(self, error: Any) -> None:
        self._record(f"pageerror: {error}")

    # Opening and running ------------------------------------------------------------------------------------
    def open(self, notebook: str, *, timeout_s: float = STALL_S) -> None:
        """Open ``notebook`` in a fresh workspace; return once all cells are shown and the kernel is idle."""
        n_cells = len(nbformat.read(self.lab.root_dir / notebook, as_version=4).cells)
        self.page.goto(self.lab.url_for(notebook, workspace=f"t-{uuid.uuid4().hex}"))
        self.page.wait_for_function(
            "n => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')"
            ".length === n",
            arg=n_cells,
            timeout=timeout_s * 1000,
        )
        self.wait_kernel_idle(timeout_s)
        self.mark(f"open {notebook}")

    def wait_kernel_idle(self, timeout_s: float = STALL_S) -> None:
        # The full text, not "Idle" alone: that also matches a placeholder notebook with no kernel yet.
        self.page.locator(".jp-StatusBar-Item", has_text=KERNEL_IDLE).first.wait_for(timeout=timeout_s * 1000)

    def run_all(self) -> None:
        """Run → Run All Cells from the menu (the command API returns only after the last cell finished)."""
        self.page.get_by_role("menuitem", name="Run", exact=True).click()
        self.page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        self.mark("run all")

    def interrupt_kernel(self) -> None:
        """Kernel → Interrupt Kernel, from the menu."""
        self.page.get_by_role("menuitem", name="Kernel", exact=True).click()
        # By command id: the item's accessible name also holds its shortcut ("Interrupt Kernel I, I").
        self.page.locator('.lm-Menu-item[data-command="kernelmenu:interrupt"]').click()
        self.mark("interrupt")

    def wait_all_cells_ran(self, stall_s: float = STALL_S) -> None:
        """Wait until no cell shows ``[*]`` and the kernel is idle again, for as long as the notebook progresses."""
        self.wait_with_progress(
            lambda: self.page.evaluate(
                "() => ![...document.querySelectorAll('.jp-InputArea-prompt')].some(p => p.textContent.includes('*'))"
            ),
            "every cell to finish",
            stall_s=stall_s,
        )
        self.wait_kernel_idle(stall_s)
        self.mark("all cells ran")

    # Waiting -------------------------------------------------------------------------------------------------
    def progress(self) -> Any:
        """What changes while the notebook works: finished cells, outputs, plot points, widget texts (as one value).

        Read from the page in one go; a wait below fails only once this stops changing.
        """
        return self.page.evaluate(PROGRESS_JS)

    def wait_with_progress(
        self, condition: Callable[[], Any], what: str, *, stall_s: float = STALL_S, interval_s: float = 0.2,
        progress: Callable[[], Any] | None = None,
    ) -> Any:
        """Wait until ``condition()`` is truthy (and return it), for as long as the page keeps changing.

        A loaded machine makes every step slower, by a factor nobody can bound; a fixed timeout per step then
        fails good runs. This fails only when nothing on the page (``progress``, default :meth:`progress`) has
        changed for ``stall_s`` seconds: a stuck kernel or front end, not a slow one. The test's own hard
        timeout (pytest-timeout) bounds the whole.
        """
        progress = progress or self.progress
        seen, changed_at = progress(), time.monotonic()
        while True:
            value = condition()
            if value:
                return value
            now_seen = progress()
            if now_seen != seen:
                seen, changed_at = now_seen, time.monotonic()
            elif time.monotonic() - changed_at > stall_s:
                raise AssertionError(
                    f"waiting for {what}: nothing on the page changed for {stall_s:.0f} s (last state {seen})"
                )
            time.sleep(interval_s)

    def wait_attached(self, locator: Any, what: str, *, stall_s: float = STALL_S) -> Any:
        """Wait until ``locator`` is in the page, for as long as the notebook progresses; return it."""
        self.wait_with_progress(lambda: locator.count() > 0, what, stall_s=stall_s)
        return locator

    # Finding things ------------------------------------------------------------------------------------------
    def panel(self, index: int = 0) -> Any:
        """The output of the ``index``-th panel or board on the page: an output holding a plot and a Run button."""
        page = self.page
        outputs = page.locator(".jp-OutputArea-output").filter(has=page.locator(".js-plotly-plot"))
        return outputs.filter(has=self.button(page, "Run")).nth(index)

    @staticmethod
    def button(root: Any, label: str) -> Any:
        """The button labelled ``label`` under ``root``: class ``offload-lab-<label>`` if the widgets set one,
        else by its text.

        Not ``get_by_role(name=...)``: the Font Awesome icon's ``::before`` glyph is part of the accessible name.
        """
        by_class = root.locator(f"button.offload-lab-{label.lower()}")
        by_text = root.locator("button", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
        return by_class.or_(by_text).first

    def plot_state(self, plot: Any) -> dict[str, Any]:
        """What a plotly plot (a ``.js-plotly-plot`` locator) draws now: traces and horizontal lines."""
        return plot.evaluate(PLOT_STATE_JS)

    def screenshot(self, path: Path, locator: Any = None) -> Path:
        """Save a PNG of ``locator`` (or the page), with the mouse out of the way (no hover toolbar)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.mouse.move(0, 0)
        (locator or self.page).screenshot(path=str(path), animations="disabled")
        return path


def _error_report(lab_page: LabPage) -> str:
    lines = [f"{len(lab_page.errors)} unexpected front-end error(s) in JupyterLab:"]
    lines += [f"  - {text[:1000]}" for text in lab_page.errors]
    return "\n".join(lines)


@pytest.fixture
def lab_page(
    lab: LabServer, browser_context: Any, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabPage]:
    page = browser_context.new_page()
    page.set_default_timeout(30_000)
    helper = LabPage(page=page, lab=lab)
    page.on("console", helper.on_console)
    page.on("pageerror", helper.on_page_error)
    started = time.monotonic()
    try:
        yield helper
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            # In this session's own temporary folder: sessions running side by side do not overwrite each other's.
            shot = tmp_path_factory.getbasetemp() / f"offload-lab-failed-{request.node.name}.png"
            try:
                page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot of the failing page: {shot}")
            except Exception as exc:  # noqa: BLE001 - a failed screenshot must not hide the real failure
                print(f"no screenshot of the failing page: {exc}")
            print(f"Lab server log (tail):\n{lab.log_tail(60)}")
        if helper.errors:
            print(_error_report(helper))
        page.close()
        lab.shutdown_sessions()
        print(f"{request.node.name}: {time.monotonic() - started:.1f} s in the page ({helper.timings()})")
        if helper.allowed:
            print("allowed front-end noise:\n" + "\n".join(f"  - {t[:300]}" for t in helper.allowed))
    # Errors that came after the test body's check (while the page closed) still count: a teardown error.
    call = getattr(request.node, "rep_call", None)
    if helper.errors and call is not None and call.passed:
        pytest.fail(_error_report(helper), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Front-end errors seen during a test fail that test (as a failure of the test, not of its teardown)."""
    result = yield
    lab_page = getattr(item, "funcargs", {}).get("lab_page")
    if isinstance(lab_page, LabPage) and lab_page.errors:
        raise AssertionError(_error_report(lab_page))
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
