"""Where the browser tests leave their screenshots.

out/screenshots (git-ignored) by default, so a test run leaves the tree clean; ``make screenshots`` points
``$OFFLOAD_LAB_SCREENSHOTS_DIR`` at docs/screenshots to refresh the README's pictures, and then a test that
could not take its picture fails instead of leaving the old one.
"""

from __future__ import annotations

import os
from pathlib import Path

SCREENSHOTS_ENV = "OFFLOAD_LAB_SCREENSHOTS_DIR"
SCREENSHOTS = Path(os.environ.get(SCREENSHOTS_ENV) or Path(__file__).resolve().parents[2] / "out" / "screenshots")


def pictures_requested() -> bool:
    """True under ``make screenshots``: the README's pictures are being refreshed."""
    return bool(os.environ.get(SCREENSHOTS_ENV))
