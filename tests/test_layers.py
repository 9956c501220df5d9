"""The import direction holds: core and measure never pull in the widgets, ipywidgets or plotly."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import widgetlib

pytestmark = pytest.mark.timeout(120)

PACKAGE = Path(widgetlib.__file__).resolve().parent
WIDGET_MODULES = ("ipywidgets", "plotly", "anywidget", "widgetlib.widgets")


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
