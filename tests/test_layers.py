"""The import direction holds: core <- measure <- widgets <- teach <- the package's top (``widgetlib``, the CLI),
no module-level import cycle anywhere in widgetlib, and core and measure never pull in the widgets, ipywidgets or
plotly, nor the kernel's side of a run torch.

The graph is read from the source (``ast``), so a cycle is caught even where import order happens to make it
work today. An import under ``if TYPE_CHECKING:`` never runs; one inside a function runs when the function is
called, after every module has loaded: neither can make a module-level cycle. Both still count for the layer
direction (a function that imports upwards ties a lower layer to a higher one).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import widgetlib

pytestmark = pytest.mark.timeout(120)

PACKAGE = Path(widgetlib.__file__).resolve().parent
WIDGET_MODULES = ("ipywidgets", "plotly", "anywidget", "widgetlib.widgets")
# Lowest first: a module may import from its own layer and the layers before it.
LAYERS = ("widgetlib.core", "widgetlib.measure", "widgetlib.widgets", "widgetlib.teach", "widgetlib")


# ------------------------------------------------------------------------------------------- the import graph


@dataclass(frozen=True)
class Import:
    """One import of a module of the package: who imports what, on which line, and when it runs."""

    source: str
    target: str
    line: int
    scope: str  # "module" (runs when the module is imported), "function" or "type_checking"


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root / package``, by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(nodes: list[ast.stmt], scope: str):
    """Yield (import node, scope) for the statements, descending into blocks; a def's body is "function"."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, scope
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _walk(node.body, "function" if scope == "module" else scope)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.body, "type_checking")
            yield from _walk(node.orelse, scope)
        else:  # class bodies, if/try/with/for at module level run at import time
            for field in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    yield from _walk([n for n in block if isinstance(n, ast.AST)], scope)


def import_graph(root: Path, package: str) -> list[Import]:
    """Every import from a module of ``package`` (under ``root``) of another module of the same package.

    ``from x import name`` is an import of ``x.name`` when that is a module, else of ``x`` (its ``__init__``
    runs to find the name).
    """
    modules = _modules(root, package)
    found = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node, scope in _walk(ast.parse(path.read_text(), str(path)).body, "module"):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = name.split(".")
                    anchor = parts if is_package else parts[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.append(submodule if submodule in modules else base)
            for target in dict.fromkeys(targets):
                if target in modules and target != name:
                    found.append(Import(name, target, node.lineno, scope))
    return found


def module_level_cycles(imports: list[Import]) -> list[list[Import]]:
    """The module-level import cycles, each as the imports that close it (Tarjan's strongly connected
    components; one cycle is shown per component, through its first module)."""
    edges: dict[str, list[Import]] = {}
    for imp in imports:
        if imp.scope == "module":
            edges.setdefault(imp.source, []).append(imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for imp in edges.get(node, []):
            if imp.target not in index:
                visit(imp.target)
                low[node] = min(low[node], low[imp.target])
            elif imp.target in stack:
                low[node] = min(low[node], index[imp.target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    cycles = []
    for component in components:
        start = min(component)
        path, seen, node = [], {start}, start
        while True:  # walk inside the component until back at the start
            step = next(i for i in edges[node] if i.target in component and (i.target == start or i.target not in seen))
            path.append(step)
            if step.target == start:
                break
            seen.add(step.target)
            node = step.target
        cycles.append(path)
    return cycles


def _layer(module: str, layers: tuple[str, ...]) -> int:
    return next(i for i, prefix in enumerate(layers) if module == prefix or module.startswith(prefix + "."))


def upward_imports(imports: list[Import], layers: tuple[str, ...]) -> list[Import]:
    """The imports (any scope but ``TYPE_CHECKING``) from a lower layer of one in a higher layer."""
    return [imp for imp in imports if imp.scope != "type_checking"
            and _layer(imp.target, layers) > _layer(imp.source, layers)]


def _describe(imports: list[Import]) -> list[str]:
    return [f"{i.source} -> {i.target} (line {i.line}, {i.scope})" for i in imports]


def test_widgetlib_has_no_module_level_import_cycle():
    cycles = module_level_cycles(import_graph(PACKAGE.parent, "widgetlib"))
    assert [_describe(cycle) for cycle in cycles] == []


def test_no_import_runs_up_the_layers():
    assert _describe(upward_imports(import_graph(PACKAGE.parent, "widgetlib"), LAYERS)) == []


def test_the_checker_sees_a_cycle_and_an_upward_import_in_a_package_made_for_it(tmp_path):
    files = {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "from . import b\nX = 1\n",
        "low/b.py": "from .a import X\n",
        # Neither of these closes a cycle: one never runs, the other runs after both modules loaded.
        "low/c.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from .d import Y
            def late():
                from .d import Y
                return Y
            """,
        "low/d.py": "from .c import late\nY = 2\n",
        "high/__init__.py": "",
        "high/e.py": "from ..low.a import X\n",
        "low/f.py": "def up():\n    from ..high import e\n    return e\n",
    }
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    imports = import_graph(tmp_path, "pkg")
    cycles = module_level_cycles(imports)
    assert [[(i.source, i.target) for i in cycle] for cycle in cycles] == [
        [("pkg.low.a", "pkg.low.b"), ("pkg.low.b", "pkg.low.a")]
    ]
    assert {(i.source, i.target, i.scope) for i in imports if i.source == "pkg.low.c"} == {
        ("pkg.low.c", "pkg.low.d", "type_checking"), ("pkg.low.c", "pkg.low.d", "function")
    }
    up = upward_imports(imports, ("pkg.low", "pkg.high", "pkg"))
    assert [(i.source, i.target, i.scope) for i in up] == [("pkg.low.f", "pkg.high.e", "function")]
    # The same modules with the cycle broken: nothing to report.
    (tmp_path / "pkg" / "low" / "a.py").write_text("X = 1\n")
    assert module_level_cycles(import_graph(tmp_path, "pkg")) == []


# -------------------------------------------------------------------------------------- what a layer pulls in


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level])
                base = f"{package}.{base}" if base else package
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("layer", ["core", "measure"])
def test_lower_layers_do_not_import_widgets_in_source(layer):
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.startswith(WIDGET_MODULES))
        for path in sorted((PACKAGE / layer).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_core_and_runner_leaves_widget_libraries_unloaded():
    code = (
        "import json, sys\n"
        "import widgetlib, widgetlib.core.strategies, widgetlib.measure.runner\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'plotly', "
        "'anywidget') or m.startswith('widgetlib.widgets'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize(
    "module", ["widgetlib.measure.protocol", "widgetlib.measure.runner", "widgetlib.widgets.panel",
               "widgetlib.core.registry", "widgetlib.core.options", "widgetlib.cli"]
)
def test_the_run_side_of_the_kernel_does_not_import_torch(module):
    # The runner and the panel live in the learner's kernel: torch (2-5 s to import) belongs to the child.
    code = f"import sys, {module}; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100, check=True)
    assert out.stdout.split() == ["False", "False"], module


def test_widgets_are_re_exported_lazily_from_the_package():
    from widgetlib import CompareBoard, MemoryPlot, StrategyPanel

    assert {cls.__module__.rsplit(".", 1)[0] for cls in (CompareBoard, MemoryPlot, StrategyPanel)} == {
        "widgetlib.widgets"
    }
    import widgetlib.widgets as widgets

    assert widgets.StrategyPanel is StrategyPanel and widgets.CompareBoard is CompareBoard
