"""``make site``: a lesson executed and rendered to a read-only page, opened in headless Chromium.

One small lesson (01, one measured load) is built with ``tools/build_site.py`` at 60MB, so the test stays
short; the page must draw its figure from the static copy the widgets leave when
``OFFLOAD_LAB_STATIC_FIGURES=1`` (plotly.js embedded: an ``svg.main-svg`` with drawn trace paths), load
nothing from the network, and say how it was made.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LESSON = "01_normal_loading"
SIZE = "60MB"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

# Per plot on the page: how many traces plotly drew as SVG paths with a real shape, and the data behind them.
DRAWN_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
    svgs: gd.querySelectorAll('svg.main-svg').length,
    drawn_paths: Array.from(gd.querySelectorAll('.scatterlayer .trace path.js-line'))
        .filter(p => (p.getAttribute('d') || '').length > 20).length,
    points: (gd.data || []).reduce((n, t) => n + (t.x ? t.x.length : 0), 0),
}))"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_site.py"), "--out", str(out), "--only", LESSON, "--size", SIZE],
        capture_output=True, text=True, timeout=540,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    return out


def test_the_site_draws_the_lessons_figure_offline(site: Path, browser_context: Any) -> None:
    page = browser_context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto((site / f"{LESSON}.html").as_uri())  # returns after the load event: inline scripts have run
        assert page.locator(".js-plotly-plot").count() > 0, (
            "no plotly figure on the page: the widgets left no static copy under OFFLOAD_LAB_STATIC_FIGURES=1"
        )
        page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=30_000)
        plots = page.evaluate(DRAWN_JS)
        banner = page.inner_text(".offload-site-banner")
    finally:
        page.close()
    assert plots, "no plotly figure on the page"
    assert any(p["drawn_paths"] >= 1 and p["points"] > 10 for p in plots), plots
    # Read-only and self-contained: everything the page needs is in the file.
    assert all(url.startswith(("file:", "data:", "about:")) for url in requests), requests
    assert f"OFFLOAD_LAB_SIZE={SIZE}" in banner and "make lab" in banner
    index = (site / "index.html").read_text(encoding="utf-8")
    assert f'href="{LESSON}.html"' in index
