"""Build a read-only preview of every lesson: ``make site`` (or ``python tools/build_site.py --out site``).

Each notebook in ``notebooks/`` is executed here, in a fresh kernel, at a small checkpoint size
(``$OFFLOAD_LAB_SIZE``, ``make site`` passes 60MB), with ``OFFLOAD_LAB_STATIC_FIGURES=1`` so that every widget
also leaves a static copy of its figure (plotly.js embedded) in the cell's output; a live ``FigureWidget`` is
blank in a static page. The executed notebook is rendered with nbconvert's ``lab`` template to one HTML page
per lesson, plus ``index.html``. Every figure and number on a page comes from the run made while building it;
a banner at the top says when, at what size and on which machine.

The pages load nothing from the network: nbconvert's require.js, MathJax, Mermaid and widget-manager tags are
left out (the lessons use none of them; require.js would even hide ``window.Plotly`` from the embedded
plotly.js, which registers itself as an AMD module when ``define.amd`` exists), and the live widget views are
dropped in favour of the HTML each widget puts next to them (status, report card) and its static figure.

This is a development tool (nbclient and nbconvert come with the ``dev`` extra), not part of the installed
package.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import html
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from widgetlib.widgets._static import STATIC_FIGURES_ENV

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
DEFAULT_SIZE = "60MB"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

# The lab template minus every tag that would fetch a script from a CDN (see the module docstring), plus the
# banner that says where this page's figures came from.
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}
{{ super() }}
<p class="offload-site-banner" style="margin:1em 2em;padding:.6em 1em;background:#fff7e0;border:1px solid #e0c070">
{{ resources.offload_site_banner }}</p>
{%- endblock body_header -%}
"""


def lesson_notebooks(only: list[str] | None = None) -> list[Path]:
    """The lesson notebooks in order, or those whose name starts with one of ``only`` (``["00", "03_off"]``).

    >>> [p.name for p in lesson_notebooks(["00"])]
    ['00_memory_you_can_see.ipynb']
    >>> len(lesson_notebooks()) >= 7
    True
    """
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.stem.startswith(prefix) for prefix in only)]
    return paths


def notebook_title(notebook: Any, fallback: str) -> str:
    """The first Markdown heading of a notebook (the lesson's title), else ``fallback``.

    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 · Normal loading\\nText")])
    >>> notebook_title(nb, "x")
    '01 · Normal loading'
    """
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def drop_live_widgets(notebook: Any) -> int:
    """Remove widget views (blank without a widget front end) and the saved widget state; return how many.

    An output that had a widget view keeps its other forms (the HTML or text the widget also offers).

    >>> import nbformat
    >>> cell = nbformat.v4.new_code_cell("panel")
    >>> cell.outputs = [nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "1"},
    ...                                                                "text/html": "<b>ready</b>"})]
    >>> nb = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {}})
    >>> drop_live_widgets(nb), list(cell.outputs[0].data), "widgets" in nb.metadata
    (1, ['text/html'], False)
    """
    dropped = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                dropped += 1
                del data[WIDGET_VIEW]
                if not data:
                    continue
            kept.append(output)
        cell.outputs = kept
    notebook.metadata.pop("widgets", None)
    return dropped


def execute(source: Path, workdir: Path, timeout_s: int, env: dict[str, str] | None = None) -> Any:
    """Run every cell of ``source`` in a fresh ``python3`` kernel started in ``workdir``; return the notebook.

    The kernel gets this process's environment updated with ``env`` (this process's own is left alone). A
    cell that raises stops the build with nbclient's error, naming the cell.

    >>> import nbformat, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp, "nb.ipynb")
    ...     cell = nbformat.v4.new_code_cell("import os; print(os.environ['OFFLOAD_LAB_SIZE'])")
    ...     nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    ...     print(execute(path, Path(tmp), 120, {"OFFLOAD_LAB_SIZE": "42MB"}).cells[0].outputs[0].text.strip())
    42MB
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=timeout_s, resources={"metadata": {"path": str(workdir)}}
    )
    # nbclient passes these keywords on to the kernel manager's start_kernel (nbclient/client.py:550), which
    # launches the kernel with ``env`` as its whole environment.
    client.execute(env={**os.environ, **(env or {})})
    return notebook


def render(notebook: Any, title: str, banner: str) -> str:
    """One self-contained HTML page of an executed notebook (nbconvert's lab template, no CDN scripts).

    >>> import nbformat
    >>> page = render(nbformat.v4.new_notebook(), "A lesson", "built now")
    >>> "built now" in page, "require.js" in page, "<title>A lesson</title>" in page
    (True, False, True)
    """
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"offload_site.html.j2": _TEMPLATE})],
        template_file="offload_site.html.j2",
    )
    notebook.metadata["title"] = title
    body, _resources = exporter.from_notebook_node(notebook, resources={"offload_site_banner": banner})
    return body


def machine() -> str:
    """A one-line description of this machine, for the pages' banner.

    >>> platform.system() in machine()
    True
    """
    import psutil

    ram = psutil.virtual_memory().total / 2**30
    python = platform.python_version()
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, {ram:.0f} GiB RAM, Python {python}"


def build_site(
    out: Path, *, only: list[str] | None = None, size: str | None = None, timeout_s: int = 600
) -> list[Path]:
    """Execute the lessons and write ``out/<lesson>.html`` plus ``out/index.html``; return the pages written.

    ``size`` (default ``$OFFLOAD_LAB_SIZE`` or 60MB) is the demo checkpoint size every lesson runs with.
    Each lesson runs in a temporary folder, so nothing is written into the repository but ``out``.

    (tests/browser/test_site.py builds a page and looks at it in Chromium; a lesson is too slow for a doctest.)

    >>> build_site(Path("unused"), only=["99_no_such_lesson"])
    Traceback (most recent call last):
    ...
    SystemExit: No lesson in notebooks/ starts with 99_no_such_lesson; check the names.
    """
    size = size or os.environ.get("OFFLOAD_LAB_SIZE") or DEFAULT_SIZE
    # What the kernels get: the lessons' checkpoint size, and the widgets' static copies of their figures.
    kernel_env = {"OFFLOAD_LAB_SIZE": size, STATIC_FIGURES_ENV: "1"}
    notebooks = lesson_notebooks(only)
    if not notebooks:
        raise SystemExit(f"No lesson in notebooks/ starts with {', '.join(only or [])}; check the names.")
    out.mkdir(parents=True, exist_ok=True)
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = machine()
    entries: list[tuple[str, str, float]] = []
    pages: list[Path] = []
    for source in notebooks:
        started = time.monotonic()
        print(f"executing {source.name} at OFFLOAD_LAB_SIZE={size} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="offload-site-") as workdir:
            notebook = execute(source, Path(workdir), timeout_s, kernel_env)
        seconds = time.monotonic() - started
        drop_live_widgets(notebook)
        title = notebook_title(notebook, source.stem)
        banner = (
            f"Read-only preview of <code>notebooks/{html.escape(source.name)}</code>, executed {when} with "
            f"<code>OFFLOAD_LAB_SIZE={html.escape(size)}</code> on {html.escape(where)} in {seconds:.0f} s: "
            "every figure and number below comes from that run. Run it yourself (your machine, your sizes) "
            "with <code>make lab</code>. <a href=\"index.html\">All lessons</a>"
        )
        page = out / f"{source.stem}.html"
        page.write_text(render(notebook, title, banner), encoding="utf-8")
        pages.append(page)
        entries.append((page.name, title, seconds))
        print(f"wrote {page} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    index = out / "index.html"
    index.write_text(_index_html(entries, size, when, where), encoding="utf-8")
    return [*pages, index]


def _index_html(entries: list[tuple[str, str, float]], size: str, when: str, where: str) -> str:
    items = "\n".join(
        f'<li><a href="{html.escape(name)}">{html.escape(title)}</a> <small>({seconds:.0f} s)</small></li>'
        for name, title, seconds in entries
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Offload Lab lessons (preview)</title></head>
<body style="font-family: sans-serif; max-width: 50em; margin: 2em auto">
<h1>Offload Lab lessons: read-only preview</h1>
<p>Executed {html.escape(when)} with <code>OFFLOAD_LAB_SIZE={html.escape(size)}</code> on {html.escape(where)}.
The figures are static copies of that run's live plots; to run the lessons yourself, <code>make lab</code>.</p>
<ol start="0">
{items}
</ol>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    """``python tools/build_site.py --out site [--only 00 03] [--size 60MB]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "site", help="folder for the pages (default site/)")
    parser.add_argument("--only", nargs="*", help="lessons whose names start with these (default: all)")
    parser.add_argument("--size", help=f"demo checkpoint size (default $OFFLOAD_LAB_SIZE or {DEFAULT_SIZE})")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a single cell may run (default 600)")
    args = parser.parse_args(argv)
    pages = build_site(args.out, only=args.only, size=args.size, timeout_s=args.timeout)
    print(f"{len(pages) - 1} lesson page(s) and the index in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
