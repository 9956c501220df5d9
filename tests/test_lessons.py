"""The lessons: paired with their notebooks, free of typed-in figures, and executed headless end to end.

``lessons/NN_topic.py`` (jupytext percent format) is the reviewed source; ``notebooks/NN_topic.ipynb`` its pair,
committed without outputs. Every exercise ships blank (``...``); its answer lives in
``lessons/solutions.py``. Each notebook is executed twice (``lesson_runs.py``: the ``executions`` fixture):

- **as shipped**, under ``OFFLOAD_LAB_PROBE=portable`` (the psutil-only probe macOS and Windows get): it must run
  to the end, and every exercise check must say "not answered yet";
- **solved**, the solutions substituted in, with the default probe: every check must pass (a wrong answer
  raises under strict checks), so a cell that asserts what the lesson teaches, or a solution that stopped being
  right, fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from lesson_runs import EXECUTE_TIMEOUT_S, LESSON_SIZE, MODES, NOTEBOOKS, Execution, solutions, solved

REPO = Path(__file__).resolve().parents[1]
LESSONS = sorted((REPO / "lessons").glob("[0-9][0-9]_*.py"))
NOT_ANSWERED = "not answered yet"


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


# ------------------------------------------------------------------------------------------------ pairing


def test_every_lesson_has_a_notebook_and_back() -> None:
    assert LESSONS, "no lessons found in lessons/"
    assert [p.stem for p in LESSONS] == [p.stem for p in NOTEBOOKS], (
        "lessons/*.py and notebooks/*.ipynb must pair one to one; run `make sync-lessons` "
        "(jupytext --sync lessons/*.py) after adding or renaming a lesson"
    )


def test_jupytext_config_pairs_lessons_with_notebooks() -> None:
    """The pairing lives in pyproject.toml; jupytext itself must resolve lessons/X.py <-> notebooks/X.ipynb."""
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file
    from jupytext.paired_paths import paired_paths

    config_file = find_jupytext_configuration_file(str(REPO / "lessons"))
    assert config_file is not None and Path(config_file).name == "pyproject.toml"
    config = load_jupytext_configuration_file(config_file)
    lesson = LESSONS[0]
    paths = dict((fmt["extension"], Path(path)) for path, fmt in
                 paired_paths(str(lesson), "py:percent", config.default_formats(str(lesson))))
    assert paths[".ipynb"] == REPO / "notebooks" / f"{lesson.stem}.ipynb"


@pytest.mark.parametrize("lesson", LESSONS, ids=_ids(LESSONS))
def test_notebook_has_the_same_cells_as_its_lesson(lesson: Path) -> None:
    notebook_path = REPO / "notebooks" / f"{lesson.stem}.ipynb"
    text, notebook = jupytext.read(lesson), jupytext.read(notebook_path)
    assert _cells(text) == _cells(notebook), (
        f"{notebook_path.name} is out of sync with {lesson.name}; run `make sync-lessons`"
    )
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3", "the notebook must name its kernel"


@pytest.mark.parametrize("notebook_path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_without_outputs(notebook_path: Path) -> None:
    notebook = nbformat.read(notebook_path, as_version=4)
    for k, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"cell {k} has outputs: clear them"
    assert "widgets" not in notebook.metadata, "saved widget state (megabytes of plotly) must not be committed"


# ------------------------------------------------------------------------------------- no typed-in figures

# A number followed by a unit of memory, time or ratio ("1.3 GB", "513MB", "2x", "50 %", "0.5 s"), or a
# multiplier written the other way round ("x2"). Plain numbers ("lesson 01", "error 1455") are not figures.
_UNIT = r"(?:[kKMGTP]i?B|bytes?|B|%|x|×|ms|µs|s|secs?|seconds?|min|minutes?)"
TYPED_FIGURE = re.compile(
    rf"(?<![\w.])\d+(?:[.,]\d+)?\s?{_UNIT}(?![\w])"
    r"|(?<![\w.])[x×]\s?\d+(?:\.\d+)?(?![\w.])"
)


@pytest.mark.parametrize("text", [
    "peaks at 1.3 GB", "about 513 MB", "a 2x peak", "2 × the model", "x2 the RAM", "~1.5GiB", "50% of it",
    "took 0.5 s", "120 ms later", "a 7B model", "4 GB laptop", "≈2.0x", "1,5 GB",
])
def test_typed_figure_regex_catches(text: str) -> None:
    assert TYPED_FIGURE.search(text), text


@pytest.mark.parametrize("text", [
    "Lesson 01 · Normal loading", "error 1455", "shard 1/6", "float32 and bfloat16", "transformers 4.x",
    "64-bit systems", "x86_64", "2 shards", "3 strategies", "Python 3 (ipykernel)", "`max_memory` in bytes",
    "step 3.", "0x1f",
])
def test_typed_figure_regex_leaves_alone(text: str) -> None:
    assert not TYPED_FIGURE.search(text), TYPED_FIGURE.search(text)


@pytest.mark.parametrize("lesson", LESSONS, ids=_ids(LESSONS))
def test_markdown_has_no_typed_in_figures(lesson: Path) -> None:
    """Every figure a lesson quotes is computed in a cell from this run's Report; markdown types none."""
    found = [
        (k, match.group(0))
        for k, cell in enumerate(jupytext.read(lesson).cells)
        if cell.cell_type == "markdown"
        for match in TYPED_FIGURE.finditer(cell.source)
    ]
    assert not found, f"typed-in figures in {lesson.name} (cell index, text): {found}"


@pytest.mark.parametrize("lesson", LESSONS, ids=_ids(LESSONS))
def test_lesson_shape(lesson: Path) -> None:
    """Versions first; what you will learn; at least one checked exercise; a summary."""
    notebook = jupytext.read(lesson)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "teach.print_versions()" in code[0], "the first code cell prints the versions in use"
    assert "What you will learn" in markdown and "## Summary" in markdown
    assert any("teach.check_" in c for c in code), "each lesson has an exercise with a check function"


@pytest.mark.parametrize("lesson", LESSONS, ids=_ids(LESSONS))
def test_lesson_imports_only_the_public_api(lesson: Path) -> None:
    """Lessons import from ``widgetlib`` and ``widgetlib.teach`` only, so the internals can move under them."""
    tree = ast.parse(lesson.read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    internals = {name for name in imported if name.startswith("widgetlib")} - {"widgetlib", "widgetlib.teach"}
    assert not internals, f"{lesson.name} imports {sorted(internals)}; export what it needs from widgetlib instead"


def _experiment_cell(notebook: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """The markdown cell headed "## Experiment" and the code cell right after it."""
    cells = notebook.cells
    found = [k for k, c in enumerate(cells) if c.cell_type == "markdown" and re.search(r"^## Experiment$", c.source,
                                                                                      re.MULTILINE)]
    assert len(found) == 1 and found[0] + 1 < len(cells), "one '## Experiment' heading, followed by its cell"
    return cells[found[0]], cells[found[0] + 1]


@pytest.mark.parametrize("lesson", LESSONS, ids=_ids(LESSONS))
def test_experiment_is_a_ready_cell(lesson: Path) -> None:
    """Each Experiment is a code cell that runs as it ships (the executions below run it like any other cell):
    its first line sets the one variable to change, which the text names, and the text says what to expect."""
    heading, cell = _experiment_cell(jupytext.read(lesson))
    assert cell.cell_type == "code", f"{lesson.name}: the Experiment must be a ready code cell, not prose"
    first = ast.parse(cell.source).body[0]
    assert isinstance(first, ast.Assign) and len(first.targets) == 1 and isinstance(first.targets[0], ast.Name), (
        f"{lesson.name}: the Experiment cell's first line sets its variable")
    assert f"`{first.targets[0].id}`" in heading.source, f"{lesson.name}: the text names `{first.targets[0].id}`"
    assert "Expected" in heading.source, f"{lesson.name}: the text says what to expect"
    assert "teach.check_" not in cell.source and not cell.metadata.get("tags"), "nothing marks it to be skipped"


# --------------------------------------------------------------------------------------- blank exercises


@pytest.mark.parametrize("lesson", LESSONS, ids=_ids(LESSONS))
def test_exercises_ship_blank_and_have_solutions(lesson: Path) -> None:
    """Two checked exercises per lesson, each answer a blank ``...`` in the notebook; the solutions file fills
    every blank and leaves none."""
    notebook = jupytext.read(lesson)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    checks = [c for c in code if "teach.check_" in c]
    assert len(checks) == 2, f"{lesson.name}: expected two exercise checks, found {len(checks)}"
    filled = solved(notebook, lesson.stem)
    assert len(solutions(lesson.stem)) == len(checks)
    for cell in filled.cells:  # every code cell: a blank may sit apart from its check (lessons 01 and 05)
        if cell.cell_type == "code":
            assert re.search(r"(?<![\w.])\.\.\.(?![\w.])", cell.source) is None, (
                f"{lesson.name}: a solved exercise cell still holds `...`:\n{cell.source}")


# -------------------------------------------------------------------------------------------- execution


def _check_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """The text each exercise check showed (its Verdict's Markdown or plain repr)."""
    shown = []
    for cell in notebook.cells:
        if cell.cell_type == "code" and "teach.check_" in cell.source:
            shown.append(" ".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("data", {}).get(
                "text/plain", "")) for o in cell.outputs))
    return shown


@pytest.mark.timeout(2 * len(NOTEBOOKS) * (EXECUTE_TIMEOUT_S + 60))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("notebook_path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes(notebook_path: Path, mode: str, executions: dict[tuple[str, str], Execution]) -> None:
    result = executions[(notebook_path.stem, mode)]
    assert result.returncode == 0, f"{notebook_path.name} failed:\n{result.stderr[-6000:]}"
    notebook = nbformat.read(result.executed, as_version=4)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    versions = "".join(o.get("text", "") for o in notebook.cells[1].outputs if o.output_type == "stream")
    assert re.search(rf"OFFLOAD_LAB_SIZE\s+{re.escape(LESSON_SIZE)}", versions), "the kernel did not get the size"
    _, experiment = _experiment_cell(notebook)
    assert experiment.execution_count is not None, "the Experiment cell ran"
    shown = _check_outputs(notebook)
    if mode == "shipped":
        assert shown and all(NOT_ANSWERED in text for text in shown), shown
    else:
        assert shown and not any(NOT_ANSWERED in text for text in shown), shown
