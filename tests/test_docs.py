"""The documents say what the code does: one lesson list with the lessons' real titles, the README's error table
is the registry of error kinds and the code raises no other, and nothing in the repository points outside it
or narrates its own history (that is what commit messages are for)."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

import widgetlib
from widgetlib.core.errors import ERROR_KINDS, error_kinds_markdown

REPO = Path(widgetlib.__file__).resolve().parents[1]
PACKAGE = REPO / "widgetlib"
README = (REPO / "README.md").read_text()
LESSONS = sorted((REPO / "lessons").glob("[0-9][0-9]_*.py"))


def _tracked_text_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    paths = [REPO / n for n in names.splitlines() if not n.endswith((".png", ".ipynb"))]
    return [p for p in paths if p.is_file()]


# ---------------------------------------------------------------------------------------------- the lessons


def _title(lesson: Path) -> str:
    match = re.search(r"^# # Lesson \d\d · (.+)$", lesson.read_text(), re.MULTILINE)
    assert match, f"{lesson.name} has no '# # Lesson NN · title' heading"
    return match.group(1).strip()


def test_the_readme_lists_every_lesson_once_with_its_real_title() -> None:
    section = README.split("\n## Lessons\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d\d) \| \[(.+?)\]\((notebooks/[^)]+)\) \|", section, re.MULTILINE)
    assert rows, "the README's Lessons section has no lesson table"
    expected = [(p.name[:2], _title(p), f"notebooks/{p.stem}.ipynb") for p in LESSONS]
    assert rows == expected
    assert all((REPO / link).is_file() for _, _, link in rows)


def test_no_other_document_keeps_a_lesson_list() -> None:
    listed = {
        str(p.relative_to(REPO)): [lesson.stem for lesson in LESSONS if lesson.stem in p.read_text()]
        for p in [*(REPO / "docs").rglob("*.md"), REPO / "lessons" / "README.md", REPO / "benchmarks" / "README.md"]
    }
    assert {doc: found for doc, found in listed.items() if len(found) > 1} == {}
    assert "README.md#lessons" in (REPO / "lessons" / "README.md").read_text()


# ----------------------------------------------------------------------------------------------- error kinds


def _kinds_in_the_code() -> dict[str, list[str]]:
    """Every error kind widgetlib can produce, found in its source: ``kind=``/``error_kind=`` arguments, ``kind``
    defaults, and the kinds ``decide_outcome`` returns for a run that did not finish."""
    found: dict[str, list[str]] = {}
    passed_on = []

    def add(kind: ast.expr, where: str) -> None:
        if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
            found.setdefault(kind.value, []).append(where)
        else:
            passed_on.append(f"{where}: {ast.unparse(kind)}")

    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        name = str(path.relative_to(REPO))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg in ("kind", "error_kind") and not _is_event(node):
                        add(keyword.value, f"{name}:{node.lineno}")
            elif isinstance(node, ast.FunctionDef):
                for arg, default in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True):
                    if arg.arg == "kind" and default is not None:
                        add(default, f"{name}:{node.lineno}")
                if node.name == "decide_outcome":
                    for ret in ast.walk(node):
                        if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Tuple):
                            add(ret.value.elts[-1], f"{name}:{ret.lineno}")
    # Forwarding a kind made elsewhere is fine; anything else would be a kind this scan cannot see.
    forwarded = {"kind", "exc.kind", "error_kind", "None", "error.get('kind', 'load_failed')"}
    unseen = [p for p in passed_on if p.split(": ", 1)[1] not in forwarded]
    assert unseen == [], f"kinds computed at run time, which no table can list: {unseen}"
    return found


def _is_event(call: ast.Call) -> bool:
    """An Event's or a child message's ``kind`` names a timeline event (ready, shard_read...), not an error."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    sends_event = name == "send" and bool(call.args) and ast.unparse(call.args[0]) == "MSG_EVENT"
    return sends_event or name in ("Event", "emit", "_add_event") or any(k.arg == "label" for k in call.keywords)


def test_the_code_raises_exactly_the_registered_error_kinds() -> None:
    found = _kinds_in_the_code()
    assert {k: v for k, v in found.items() if k not in ERROR_KINDS} == {}, "add them to ERROR_KIND_ROWS"
    assert sorted(ERROR_KINDS - set(found)) == [], "registered kinds nothing raises: drop them"


def test_the_readme_error_table_is_the_registry() -> None:
    table = error_kinds_markdown()
    assert table in README, (
        "the README's 'When something goes wrong' table differs from widgetlib.core.errors.ERROR_KIND_ROWS; "
        f"replace it with:\n{table}"
    )


# ------------------------------------------------------------------------------- what the repository says


OUTSIDE = re.compile(r"shared/notes|\.\./shared|/work/|review-20\d\d")
HISTORY = re.compile(r"\b[Ii]ssue \d{1,3}(\.\d+)?\b|\bonce was\b|\bused to be\b|\bformerly\b|\bpreviously\b|"
                     r"\bolder notebooks\b")


def test_nothing_refers_to_files_outside_the_repository() -> None:
    hits = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in _tracked_text_files() if "benchmarks/results" not in str(path)  # recorded runs' own paths
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line) and path.name != "test_docs.py"
    ]
    assert hits == []


def test_code_and_tests_do_not_narrate_their_history() -> None:
    code = [p for p in _tracked_text_files() if p.suffix == ".py" and p.name != "test_docs.py"]
    hits = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in code
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if HISTORY.search(line)
    ]
    assert hits == []


@pytest.mark.parametrize("line", ["Issue 13.3: reading headers", "(issue 11)", "as it once was", "used to be"])
def test_the_history_pattern_catches(line: str) -> None:
    assert HISTORY.search(line)


@pytest.mark.parametrize("line", ["transformers PR 38792, which cites issue 36963", "the name is used to find it",
                                  "no longer fits"])
def test_the_history_pattern_leaves_alone(line: str) -> None:
    assert not HISTORY.search(line)


def test_every_lesson_opens_by_saying_how_to_watch_its_loads() -> None:
    for lesson in sorted((REPO / "lessons").glob("[0-9][0-9]_*.py")):
        first_markdown = lesson.read_text().split("# %% [markdown]")[1].split("# %%")[0]
        assert "Shift+Enter" in first_markdown and "Run All" in first_markdown, lesson.name
    assert "Shut Down Kernel" in (REPO / "lessons" / "00_memory_you_can_see.py").read_text()
