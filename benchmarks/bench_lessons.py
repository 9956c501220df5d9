"""The seven lessons executed headless, one after another, as a learner runs them: time per lesson and in total.

Each notebook runs in a fresh kernel (nbclient), as shipped (blank exercises), with ``OFFLOAD_LAB_SIZE`` set
(default 150MB). The first lesson pays the kernel's first zygote start (torch and transformers imported once);
every later run in a lesson forks from it. Target: the seven lessons in <= 180 s in total on this
project's 2-core machine.

    .venv/bin/python benchmarks/bench_lessons.py                 # all seven at 150MB
    .venv/bin/python benchmarks/bench_lessons.py --size 60MB --json benchmarks/results/lessons.json

Run it alone: another job on the same cores measures itself into the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 180.0


def execute(notebook_path: Path, workdir: Path, timeout_s: int) -> float:
    """Execute one notebook in a fresh kernel from ``workdir``; return its wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(notebook_path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="150MB", help="OFFLOAD_LAB_SIZE for every lesson (default 150MB)")
    p.add_argument("--timeout", type=int, default=900, help="seconds one cell may take (default 900)")
    p.add_argument("--json", dest="json_path", default=None, help="write the figures here")
    args = p.parse_args(argv)

    os.environ["OFFLOAD_LAB_SIZE"] = args.size
    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="offload-lab-bench-lessons-") as tmp:
        for path in notebooks:
            seconds[path.stem] = round(execute(path, Path(tmp), args.timeout), 1)
            print(f"{path.stem:<40} {seconds[path.stem]:7.1f} s", flush=True)
    total = round(sum(seconds.values()), 1)
    verdict = "PASS" if total <= TARGET_S else "FAIL"
    print(f"{'total':<40} {total:7.1f} s   {verdict} (target <= {TARGET_S:.0f} s at {args.size}; "
          f"load average {os.getloadavg()[0]:.1f} at the end)")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(
            {"size": args.size, "seconds": seconds, "total_s": total, "target_s": TARGET_S, "verdict": verdict,
             "python": sys.version.split()[0]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
