"""Every table of reports is a choice of the one column catalogue (widgetlib/measure/columns.py): a figure has one
header, which names its basis, and one format, whichever table shows it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from factories import MB, make_report

from widgetlib import teach
from widgetlib.cli import main
from widgetlib.measure import runner
from widgetlib.measure.columns import BASES, COLUMNS, column
from widgetlib.measure.render import (
    REPORT_COLUMNS,
    card_columns,
    report_card_html,
    report_figures,
    report_table_html,
    report_table_markdown,
    report_table_text,
)

HEADERS = {c.header for c in COLUMNS.values()}
RUNS = [
    make_report("normal", baseline_rss_bytes=500 * MB, peak_rss_bytes=700 * MB, predicted_peak_rss_bytes=690 * MB,
                load_s=1.234, forward_s=0.0567, major_faults=12),
    make_report("offload_folder", baseline_rss_bytes=500 * MB, peak_rss_bytes=560 * MB,
                predicted_peak_rss_bytes=555 * MB, offload_folder_files=3, offload_folder_bytes=75 * MB,
                device_map={"cpu": {"tensors": 4, "bytes": 40 * MB}, "disk": {"tensors": 6, "bytes": 60 * MB}}),
    make_report("manual_shards", outcome="stopped_by_budget", budget_mode="cgroup", limit_events={"oom_kill": 1}),
]


def _markdown_headers(table: str) -> list[str]:
    return [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]


def test_every_rss_figure_says_its_basis_in_its_header() -> None:
    for c in COLUMNS.values():
        if c.basis is not None:
            assert c.basis in BASES and c.basis in c.header, c
        if c.unit == "bytes" and re.search(r"rss|above_baseline|kept", c.key):
            assert c.basis is not None, f"{c.key} is an RSS figure: say from where it is measured"
    assert len(HEADERS) == len(COLUMNS), "two columns with one header would read as one figure"


def test_every_table_is_a_choice_of_catalogued_columns() -> None:
    budget = 600 * MB
    markdown = {
        "widget markdown": report_table_markdown(RUNS),
        "teach.reports_table": teach.reports_table(RUNS, predicted=True),
        "teach.decision_table": teach.decision_table(RUNS, budget),
    }
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_loaders
    finally:
        sys.path.pop(0)
    rows = [(bench_loaders.ROWS[1], {**r.to_dict(), "repeats": 1}) for r in RUNS[:2]]
    markdown["benchmark"] = bench_loaders.markdown_table(rows, note_repeats=False)
    labels = {"run", "strategy", "row", f"finished under {teach.fmt(budget)}?"}
    for name, table in markdown.items():
        assert set(_markdown_headers(table)) - HEADERS <= labels, name
    html_headers = re.findall(r"<th[^>]*>([^<]*)</th>", report_table_html(RUNS) + report_card_html(RUNS[0]))
    assert set(html_headers) - HEADERS <= {"strategy"}
    assert report_table_text(RUNS).splitlines()[0].split("  ")[0] == "run"


def test_the_card_adds_the_experiments_figures_where_the_run_has_them() -> None:
    plain = make_report("normal", checkpoint_bytes=100 * MB)
    assert "budget_bytes" not in report_card_html(plain) and "disk_bytes" not in report_card_html(plain)
    offloaded = make_report("offload_folder", checkpoint_bytes=100 * MB, budget_bytes=900 * MB,
                            budget_mode="watchdog", major_faults=0,
                            device_map={"cpu": {"tensors": 3, "bytes": 40 * MB},
                                        "disk": {"tensors": 5, "bytes": 60 * MB}})
    card = report_card_html(offloaded)
    for key, cell in {"budget_bytes": "900 MB", "budget_mode": "watchdog", "major_faults": "0",
                      "disk_bytes": "60 MB"}.items():
        assert f'data-figure="{key}">{cell}<' in card, key
    assert card_columns(offloaded)[: len(REPORT_COLUMNS)] == REPORT_COLUMNS


def test_one_figure_reads_the_same_in_every_table() -> None:
    report = RUNS[1]
    for key in ("peak_rss_bytes", "peak_above_baseline_bytes", "peak_ratio", "offload_written"):
        cell = column(key).cell(report)
        assert report_figures(report)[key] == cell
        assert f'data-figure="{key}">{cell}<' in report_card_html(report)
        assert f" {cell} " in report_table_markdown([report]) and cell in report_table_text([report])
    assert "| 60 MB | 0.60x | 55 MB |" in teach.reports_table([report], predicted=True)  # above baseline, both
    assert report.summary().splitlines()[1] == "  peak RSS 560 MB (baseline 500 MB, +60 MB = 0.60x the checkpoint)"
    assert repr(report).startswith("<Report offload_folder: ok, peak 560 MB (+60 MB = 0.60x the checkpoint)")


def test_derived_figures_are_the_reports_own() -> None:
    normal, offload, stopped = RUNS
    assert normal.predicted_above_baseline_bytes == 190 * MB and stopped.predicted_above_baseline_bytes is None
    assert offload.bytes_on("disk") == 60 * MB == column("disk_bytes").value(offload) and normal.bytes_on("disk") == 0
    assert stopped.oom_kills == 1 and normal.oom_kills is None
    assert normal.to_dict()["predicted_above_baseline_bytes"] == 190 * MB
    assert column("offload_written").cell(normal) == "–"  # normal has no offload folder: not "0 B"
    assert column("offload_written").cell(offload) == "75 MB in 3 file(s)"


def test_the_lessons_tables_choose_columns_by_key() -> None:
    sweep = teach.reports_table(RUNS[:2], columns=["max_memory_bytes", "disk_bytes", "peak_above_baseline_bytes"],
                                label_header=None)
    assert sweep.splitlines()[0] == "| max_memory | weights on disk | peak above baseline |"
    assert sweep.splitlines()[3] == "| – | 60 MB | 60 MB |"
    with pytest.raises(KeyError, match="no report column 'peak'"):
        teach.reports_table(RUNS, columns=["peak"])
    with pytest.raises(ValueError, match="2 labels for 3 reports"):
        teach.reports_table(RUNS, ["a", "b"])


def test_compare_prints_the_widgets_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    made = {r.strategy: r for r in RUNS}
    made["low_cpu_mem_usage"] = make_report("low_cpu_mem_usage", baseline_rss_bytes=500 * MB,
                                            peak_rss_bytes=600 * MB)
    monkeypatch.setattr(runner, "run", lambda folder, strategy, **options: made.setdefault(
        strategy, make_report(strategy)))
    assert main(["compare", str(tmp_path)]) == 1  # one of them was stopped by its budget
    printed = capsys.readouterr().out
    reports = [made[s] for s in ("normal", "low_cpu_mem_usage", "offload_folder", "manual_shards")]
    assert printed.startswith(report_table_text(reports, label_header="strategy") + "\n")
    assert tuple(report_figures(reports[0])) == REPORT_COLUMNS
    assert "manual_shards: The run ended stopped_by_budget" in printed
