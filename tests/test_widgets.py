"""Tests for the widgets, without a browser: drive them through their buttons and methods, check their state.

Real runs (each a fresh child process importing torch and transformers, ~5-10 s) are shared through
module-scoped fixtures, so the file runs in about a minute on two cores.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from types import SimpleNamespace

import pytest
from factories import MB, make_report, sample, timeline

from widgetlib import STRATEGIES, CompareBoard, MemoryPlot, StrategyPanel
from widgetlib.core.checkpoints import cache_dir, inspect_checkpoint
from widgetlib.core.registry import strategy_color
from widgetlib.core.sizes import format_bytes
from widgetlib.measure import runner
from widgetlib.measure.memory import Event, MemorySample
from widgetlib.measure.render import card_columns
from widgetlib.widgets import default_sweep_values, report_figures, to_mb

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def checkpoint(small_checkpoint):
    return small_checkpoint  # 24 MB, 3 shards, built once per session (tests/conftest.py)


def _wait_until(condition, timeout_s: float = 60.0, step_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step_s)


def _sample(t_s: float, rss_mb: float) -> MemorySample:
    return sample(t_s, rss_mb * MB, split=0.7)


def _figures_in(html_text: str) -> dict[str, str]:
    """The data-figure cells of a card, as printed (HTML-unescaped enough for our figures)."""
    return {k: v.replace("&amp;", "&") for k, v in re.findall(r'data-figure="([^"]+)"[^>]*>([^<]*)<', html_text)}


# ------------------------------------------------------------------------------------------ MemoryPlot


def test_memory_plot_updates_live_from_a_thread_and_throttles_redraws():
    plot = MemoryPlot()
    started_s = time.monotonic()
    run_id = plot.begin_run("normal", checkpoint_bytes=50 * MB, budget_bytes=900 * MB)
    seen_while_live = []

    def feed() -> None:  # like the runner's sampler thread: 100 samples/s for 1.2 s
        for i in range(120):
            plot.add_sample(_sample(i * 0.01, 100 + i), run_id)
            if i == 5:
                plot.add_event(Event(0.05, "imports done: baseline taken", "ready"), run_id)
            if i == 60:
                plot.add_event(Event(0.6, "shard 1/3 read", "shard_read"), run_id)
            time.sleep(0.01)

    feeder = threading.Thread(target=feed)
    feeder.start()
    while feeder.is_alive():
        seen_while_live.append(plot.point_count(run_id))
        time.sleep(0.05)
    feeder.join()
    plot.flush()
    live_s = time.monotonic() - started_s

    assert max(seen_while_live) > 0, "nothing was drawn before the run ended"
    # The five samples before "ready" are the child starting, not the load: not drawn.
    assert plot.point_count(run_id) == plot.point_count(run_id, "anon") == plot.point_count(run_id, "file") == 115
    # The throttle, against this run's own duration (however long a busy machine made it): after each redraw
    # the thread waits redraw_interval_s unless flush() asks, so at most one redraw per interval, + the flush.
    # At least two: the run's start and the flush.
    most = live_s / plot.redraw_interval_s + 2
    assert 2 <= plot.redraw_count <= most, f"{plot.redraw_count} redraws in {live_s:.2f} s (at most {most:.0f})"
    assert plot.event_count(run_id) == 2
    assert plot.event_labels(run_id)[1] == "normal: shard 1/3 read (0.55 s)"  # time zero is the load start
    assert plot.y_mode == "above_baseline"
    # Baseline guessed from the first sample of the load (105 MB) until the Report gives the real one.
    assert plot.line_y("budget", run_id) == pytest.approx(900 - 105)
    assert plot.line_y("checkpoint", run_id) == pytest.approx(50)
    assert plot.line_y("peak", run_id) is None
    report = make_report("normal", checkpoint_bytes=50 * MB, baseline_rss_bytes=104 * MB,
                    peak_rss_bytes=231_500_000)
    plot.end_run(report, run_id)
    assert plot.line_y("peak", run_id) == pytest.approx(231.5 - 104)
    assert plot.line_y("checkpoint", run_id) == 50.0
    assert plot.line_y("budget", run_id) == pytest.approx(900 - 104)
    plot.join()
    assert plot.redraw_error is None


def _trace(plot: MemoryPlot, run_id: str, series: str = "rss"):
    return next(t for t in plot.figure.data if t.meta == f"{run_id}:{series}")


def test_memory_plot_starts_at_the_load_and_states_baseline_and_start_up():
    """Today's runner: t_s counts from the request, the child's imports climb for 6 s, then "ready"."""
    plot = MemoryPlot()
    run_id = plot.begin_run("manual_shards", checkpoint_bytes=150 * MB)
    for i in range(60):  # start-up: 0 -> 800 MB
        plot.add_sample(_sample(i * 0.1, 13 * i + 10), run_id)
    plot.flush()
    assert plot.point_count(run_id) == 0, "start-up must not be drawn as RAM growth"
    plot.add_event(Event(6.0, "imports done: baseline 800 MB", "ready"), run_id)
    for i in range(31):  # the load: +150 MB in 3 s
        plot.add_sample(_sample(6.0 + i * 0.1, 800 + 5 * i), run_id)
    plot.add_event(Event(7.0, "shard 1/2 read", "shard_read"), run_id)
    plot.add_event(Event(8.0, "shard 2/2 read", "shard_read"), run_id)
    plot.end_run(make_report("manual_shards", checkpoint_bytes=150 * MB,
                        baseline_rss_bytes=800 * MB, peak_rss_bytes=951 * MB), run_id)
    rss = _trace(plot, run_id)
    assert rss.x[0] == pytest.approx(0.0) and rss.x[-1] == pytest.approx(3.0)
    assert rss.y[0] == pytest.approx(0.0) and rss.y[-1] == pytest.approx(150.0)
    assert plot.figure.layout.yaxis.title.text == "RAM above baseline (MB)"
    assert plot.figure.layout.xaxis.title.text == "seconds since the load started"
    title = plot.figure.layout.title.text
    assert "baseline (Python + torch + transformers, before the load): 800 MB" in title
    assert "process started in 6.0 s (not drawn)" in title
    assert plot.line_y("peak", run_id) == pytest.approx(151.0)
    # One run: its peak is written on its line; event markers name their phase.
    peak = next(s for s in plot.figure.layout.shapes if s.name == f"{run_id}:peak")
    assert peak.label.text == "manual_shards peak 951 MB (+151 MB)"
    assert plot.event_texts(run_id) == ["", "shard 1/2", "shard 2/2"]
    assert plot.legend_names() == ["manual_shards · +151 MB = 1.01x"]
    # A view that renders only now (late, on a busy machine) starts from the drawn figure, not an empty one.
    snapshot = {t["meta"]: len(t["x"]) for t in plot.figure._widget_data}
    assert snapshot[f"{run_id}:rss"] == 31 and "951 MB" in str(plot.figure._widget_layout["shapes"])
    plot.join()


def test_memory_plot_with_load_start_at_zero_and_start_up_streamed_before_it():
    """The runner that counts t_s from the load start: start-up samples have t_s < 0, "ready" is at 0."""
    plot = MemoryPlot()
    run_id = plot.begin_run("normal", checkpoint_bytes=10 * MB)
    for i in range(5):
        plot.add_sample(_sample(-0.5 + 0.1 * i, 100 + i), run_id)
    plot.add_event(Event(0.0, "imports done", "ready"), run_id)
    for i in range(5):
        plot.add_sample(_sample(0.1 * i, 200 + i), run_id)
    plot.flush()
    rss = _trace(plot, run_id)
    assert list(rss.x) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert rss.y[0] == 0.0  # baseline guessed from the first sample of the load
    assert "process started in 0.5 s (not drawn)" in plot.figure.layout.title.text
    plot.end_run(make_report("normal", checkpoint_bytes=10 * MB, baseline_rss_bytes=200 * MB,
                        peak_rss_bytes=204 * MB), run_id)
    plot.join()


def test_memory_plot_of_this_kernel_draws_rss_at_once():
    """teach.watch_this_kernel: no child, no "ready", no baseline: RSS from the first sample on."""
    plot = MemoryPlot(title="this kernel")
    run_id = plot.begin_run("this kernel")
    plot.add_sample(_sample(0.0, 300), run_id)
    plot.add_event(Event(0.0, "one shard mapped", "phase"), run_id)
    plot.flush()
    assert plot.point_count(run_id) == 1 and plot.y_mode == "rss"
    assert plot.figure.layout.yaxis.title.text == "RAM, RSS (MB)"
    assert plot.event_texts(run_id) == ["one shard mapped"]  # a learner's own marks are named
    plot.join()


def test_memory_plot_of_four_runs_keeps_every_label_apart():
    plot = MemoryPlot()
    peaks = {"normal": 302, "low_cpu_mem_usage": 157, "offload_folder": 73, "manual_shards": 158}
    for strategy, above in peaks.items():
        events = [Event(0.0, "imports done", "ready")] + [
            Event(0.01 * k, f"shard {k}/6 read", "shard_read") for k in range(1, 7)] + [
            Event(0.1, "forward pass started", "forward")]
        samples = [_sample(0.02 * i, 800 + above * i / 10) for i in range(11)]
        plot.add_report(make_report(strategy, checkpoint_bytes=150 * MB,
                               baseline_rss_bytes=800 * MB, peak_rss_bytes=(800 + above) * MB,
                               timeline=timeline(samples, events)))
    # Peaks in the legend, not on lines that would print on top of each other.
    assert plot.legend_names() == [f"{s} · +{above} MB = {above / 150:.2f}x" for s, above in peaks.items()]
    peak_labels = [s.label.text for s in plot.figure.layout.shapes if s.name.endswith(":peak")]
    assert len(peak_labels) == 4 and set(peak_labels) == {""}
    # One checkpoint line shared by the four runs, not four on top of each other.
    checkpoint = [s for s in plot.figure.layout.shapes if s.name.endswith(":checkpoint")]
    assert len(checkpoint) == 1 and checkpoint[0].y0 == 150.0 and checkpoint[0].label.text == "checkpoint 150 MB"
    for run_id in plot.run_ids:
        assert plot.line_y("checkpoint", run_id) == 150.0
    # Marker names: some drawn, none overlapping (the placement keeps them apart), all in the hover text.
    named = [t for run_id in plot.run_ids for t in plot.event_texts(run_id) if t]
    assert "shard 1/6" in named and len(named) < 4 * 8
    plot.join()


def test_memory_plot_marks_a_budget_stop():
    plot = MemoryPlot()
    tl = timeline([_sample(0.1 * i, 800 + 50 * i) for i in range(8)], [Event(0.0, "imports done", "ready")])
    run_id = plot.add_report(make_report("normal", checkpoint_bytes=150 * MB, outcome="stopped_by_budget",
        baseline_rss_bytes=800 * MB, peak_rss_bytes=1150 * MB, budget_bytes=1100 * MB, stopped_by_budget=True,
        budget_stop={"t_s": 0.7, "rss_bytes": 1150 * MB}, timeline=tl))
    assert plot.line_y("budget", run_id) == pytest.approx(300.0)
    markers = _trace(plot, run_id, "events")
    assert plot.redraw_error is None
    assert list(markers.marker.symbol)[-1] == "circle-x" and markers.x[-1] == pytest.approx(0.7)
    assert plot.event_texts(run_id)[-1] == "budget stop"
    assert plot.event_labels(run_id)[-1] == "normal: stopped by the budget at 1.15 GB RSS (0.70 s)"
    # The runner's own budget_stop event is drawn as it is, not twice.
    tl.events.append(Event(0.7, "stopped: RSS over the budget", "budget_stop"))
    again = plot.add_report(make_report("normal", checkpoint_bytes=150 * MB,
                                   baseline_rss_bytes=800 * MB, budget_stop={"t_s": 0.7, "rss_bytes": 1}, timeline=tl))
    assert plot.event_texts(again).count("budget stop") == 1
    plot.join()


def test_memory_plot_projector_draws_larger():
    normal, big = MemoryPlot(), MemoryPlot(projector=True)
    for plot in (normal, big):
        plot.add_report(make_report("normal", checkpoint_bytes=MB, baseline_rss_bytes=MB,
                               peak_rss_bytes=2 * MB, timeline=timeline([_sample(0.1, 1.5)], [])))
    assert big.figure.layout.font.size >= 1.5 * normal.figure.layout.font.size
    assert big.figure.layout.height > normal.figure.layout.height
    assert _trace(big, big.run_ids[0]).line.width >= 1.5 * _trace(normal, normal.run_ids[0]).line.width
    big_panel = StrategyPanel(projector=True)
    assert big_panel.plot.projector and "font-size:150%" in big_panel.status.value
    assert CompareBoard(projector=True).sweep_figure.layout.font.size > 12
    # The standalone page of a board (offload-lab compare --html) keeps working, in projector size too.
    from widgetlib.widgets.board import write_html

    report = make_report("normal", checkpoint_bytes=MB, baseline_rss_bytes=MB,
                    peak_rss_bytes=2 * MB, timeline=timeline([_sample(0.1, 1.5)], []))
    page = write_html([report], tempfile.mkdtemp() + "/board.html", projector=True).read_text()
    assert "font-size:150%" in page and "Plotly.newPlot" in page and 'data-strategy="normal"' in page


def test_static_copy_is_shown_only_when_asked(monkeypatch):
    from widgetlib.widgets._static import STATIC_FIGURES_ENV, StaticCopy

    plot = MemoryPlot()
    plot.add_report(make_report("normal", checkpoint_bytes=MB, baseline_rss_bytes=MB,
                           peak_rss_bytes=2 * MB, timeline=timeline([_sample(0.1, 1.5)], [])))
    shown: list[tuple[str, dict]] = []

    class Handle:
        def update(self, bundle, raw):
            shown.append(("update", bundle))

    copy = StaticCopy(display=lambda bundle, raw, display_id: shown.append(("display", bundle)) or Handle())
    monkeypatch.delenv(STATIC_FIGURES_ENV, raising=False)
    assert copy.show(plot.static_figure()) is False and shown == []
    monkeypatch.setenv(STATIC_FIGURES_ENV, "1")
    assert copy.show(plot.static_figure()) and copy.show(plot.static_figure())
    assert [kind for kind, _ in shown] == ["display", "update"]  # one copy, refreshed in place
    html_text = shown[0][1]["text/html"]
    assert "Plotly.newPlot" in html_text and '"normal' in html_text  # the figure's own data, drawn by plotly.js
    plot.join()


def test_memory_plot_bounds_arrays_and_keeps_the_peak():
    plot = MemoryPlot(max_points=500, y="rss")  # the whole RSS, so the peak reads as fed
    run_id = plot.begin_run("manual_shards")
    plot.add_event(Event(0.0, "imports done", "ready"), run_id)  # the load starts at once
    for i in range(20_000):
        plot.add_sample(_sample(i * 0.01, 5000 if i == 12_345 else 100 + (i % 7)), run_id)
    plot.flush()
    assert 0 < plot.point_count(run_id) <= 500
    trace = next(t for t in plot.figure.data if t.meta == f"{run_id}:rss")
    assert max(trace.y) == 5000.0  # decimation keeps the larger sample of each pair
    assert trace.x[-1] > 190  # the whole run stays covered


def test_memory_plot_overlays_runs_one_colour_per_strategy_and_static_copy():
    plot = MemoryPlot()
    for strategy in STRATEGIES:
        tl = timeline([_sample(0.1, 100), _sample(0.2, 150)], [Event(0.15, "forward pass started", "forward")],
                      baseline_rss_bytes=100 * MB)
        plot.add_report(make_report(strategy, checkpoint_bytes=20 * MB,
                               baseline_rss_bytes=100 * MB, peak_rss_bytes=160 * MB, timeline=tl))
    assert [name.split(" · ")[0] for name in plot.legend_names()] == list(STRATEGIES)
    rss = [t for t in plot.figure.data if t.meta.endswith(":rss")]
    assert [t.line.color for t in rss] == [strategy_color(s) for s in STRATEGIES]
    anon = [t for t in plot.figure.data if t.meta.endswith(":anon")]
    assert [t.line.color for t in anon] == [strategy_color(s) for s in STRATEGIES]
    assert {t.line.dash for t in anon} == {"dash"}
    static = plot.static_figure()
    assert type(static).__name__ == "Figure" and len(static.data) == len(plot.figure.data)
    assert "MemoryPlot(normal (2 samples)" in repr(plot)
    # replace=True keeps only the newest run of a strategy (what a panel does on every Run).
    plot.add_report(make_report("normal", checkpoint_bytes=1), replace=True)
    assert [name.split(" · ")[0] for name in plot.legend_names()] == [*STRATEGIES[1:], "normal"]
    plot.clear()
    assert plot.figure.data == () and plot.run_ids == []
    plot.join()


def test_three_runs_of_one_strategy_are_distinguishable_and_the_legend_sits_under_the_plot():
    plot = MemoryPlot()
    notes = ["max_memory=8 MB", "max_memory=16 MB", "max_memory=24 MB, offload_folder=offload, dtype=bfloat16"]
    for k, note in enumerate(notes):
        tl = timeline([_sample(0.1, 100), _sample(0.2, 120 + 10 * k)], [Event(0.15, "forward pass started", "forward")],
                      baseline_rss_bytes=100 * MB)
        plot.add_report(make_report("offload_folder", checkpoint_bytes=30 * MB, baseline_rss_bytes=100 * MB,
                                    peak_rss_bytes=(125 + 10 * k) * MB, timeline=tl), note=note)
    by_run: dict[str, set[str]] = {}
    for trace in plot.figure.data:  # the line, its anon/file split and its markers: one colour per run
        color = trace.marker.color if "markers" in trace.mode else trace.line.color
        by_run.setdefault(trace.meta.split(":")[0], set()).add(color)
    peaks = {s.name.split(":")[0]: s.line.color for s in plot.figure.layout.shapes if s.name.endswith(":peak")}
    assert all(len(colors) == 1 for colors in by_run.values()) and len(by_run) == 3, by_run
    assert [next(iter(by_run[run_id])) for run_id in plot.run_ids] == [peaks[run_id] for run_id in plot.run_ids]
    assert len(set(peaks.values())) == 3
    assert next(iter(by_run[plot.run_ids[0]])) == strategy_color("offload_folder")  # the strategy's hue first
    # The legend under the plot, in a row, with short entries: the plot keeps the figure's width.
    legend = plot.figure.layout.legend
    assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"
    names = plot.legend_names()
    assert names[2] == "offload_folder · max_memory=24 MB, offload_f… · +45 MB = 1.50x"
    lines = [t for t in plot.figure.data if t.meta.endswith(":rss")]
    assert notes[2] in lines[2].hovertemplate  # the note in full where the pointer asks for it
    static = plot.static_figure()
    assert static.layout.legend.orientation == "h"
    plot.join()


def test_memory_plot_draws_gpu_samples_from_the_report():
    plot = MemoryPlot()
    tl = timeline([_sample(0.1, 100)], [], gpu_samples=[(0.1, 5 * MB), (0.2, 7 * MB)])
    run_id = plot.add_report(make_report("offload_folder", checkpoint_bytes=1, timeline=tl))
    assert plot.point_count(run_id, "gpu") == 2


def test_report_figures_use_the_shared_formatter():
    report = make_report("offload_folder", checkpoint_bytes=100 * MB,
                    baseline_rss_bytes=500 * MB, peak_rss_bytes=560 * MB, predicted_peak_rss_bytes=555 * MB,
                    load_s=1.234, forward_s=0.5, offload_folder_bytes=75 * MB, offload_folder_files=3)
    assert report_figures(report) == {
        "outcome": "ok", "peak_rss_bytes": "560 MB", "peak_above_baseline_bytes": "60 MB", "peak_ratio": "0.60x",
        "predicted_peak_rss_bytes": "555 MB", "load_s": "1.23 s", "forward_s": "0.500 s",
        "offload_written": "75 MB in 3 file(s)",
    }


def test_report_reads_well_in_a_cell():
    from widgetlib.measure.render import report_table_markdown, report_table_text

    samples = [_sample(0.01 * i, 900) for i in range(5000)]  # a long timeline must not reach the repr
    report = make_report("offload_folder", checkpoint_bytes=100 * MB,
                    baseline_rss_bytes=500 * MB, peak_rss_bytes=560 * MB, load_s=1.234, forward_s=0.5,
                    timeline=timeline(samples, []))
    line = repr(report)
    assert "\n" not in line and len(line) < 160, line
    assert line == ("<Report offload_folder: ok, peak 560 MB (+60 MB = 0.60x the checkpoint), load 1.23 s, "
                    "forward 0.500 s>")
    card = report._repr_html_()
    assert _figures_in(card) == report_figures(report, card_columns(report)) and len(card) < 5000
    # One set of figures, written four ways.
    assert report_table_text([report]).splitlines()[1].split()[:4] == ["offload_folder", "ok", "560", "MB"]
    assert "| offload_folder | ok | 560 MB | 60 MB | 0.60x |" in report_table_markdown([report])


def test_default_sweep_values_go_from_largest_tensor_to_model_size(checkpoint):
    info = inspect_checkpoint(checkpoint)
    values = default_sweep_values(info.largest_tensor_bytes, info.total_bytes)
    assert len(values) == 4 and values == sorted(values)
    assert values[0] == info.largest_tensor_bytes and values[-1] == info.total_bytes


# ------------------------------------------------------------------------------------------ StrategyPanel


@pytest.fixture(scope="module")
def panel_runs(checkpoint):
    """One panel, three runs: a wrong path, a budget stop, then a good run started with the Run button."""
    panel = StrategyPanel("/no/such/offload-lab-folder", "manual_shards")
    bad = SimpleNamespace(report=panel.run(), message=panel.message, html=panel.html_text())

    panel.checkpoint_text.value = str(checkpoint)
    panel.budget_text.value = "150MB"  # below the child's baseline: stopped while importing
    budget_report = panel.run()
    budget = SimpleNamespace(report=budget_report, message=panel.message, html=panel.html_text())

    panel.budget_text.value = ""
    # A forked run of this checkpoint loads in a tenth of a second: 300 forwards after the load keep it going
    # for seconds, so "busy after the click" and "the plot grew while running" do not depend on the scheduler.
    short_start = runner.start
    runner.start = lambda *args, **options: short_start(*args, **{**options, "forwards": 300})
    try:
        clicked_at = time.monotonic()
        panel.run_button.click()
        click_s = time.monotonic() - clicked_at
        busy_after_click = panel.busy  # the click returned while its run still went on
        points_while_running = []
        while panel.busy:
            if panel.report is None or panel.report is budget_report:
                points_while_running.append(panel.plot.point_count())
            time.sleep(0.05)
        panel.wait()
    finally:
        runner.start = short_start
    return SimpleNamespace(panel=panel, bad=bad, budget=budget, report=panel.report, click_s=click_s,
                           busy_after_click=busy_after_click, points_while_running=points_while_running)


def test_panel_bad_path_shows_one_message_naming_it(panel_runs):
    bad = panel_runs.bad
    assert bad.report is None
    assert "/no/such/offload-lab-folder" in bad.message and "\n" not in bad.message
    assert bad.html.count('class="offload-lab-error"') == 1
    assert "Traceback" not in bad.html and "/no/such/offload-lab-folder" in bad.html


def test_panel_report_with_an_error_outcome_shows_its_message(panel_runs):
    budget = panel_runs.budget
    assert budget.report.outcome == "stopped_by_budget"
    assert budget.message == budget.report.error and "budget" in budget.message
    assert budget.html.count('class="offload-lab-error"') == 1 and "Traceback" not in budget.html


def test_panel_run_button_does_not_block_and_draws_live(panel_runs):
    # Not a wall-clock bound on the click (a loaded machine can take a second to start a thread): a click that
    # blocked until the load ended would come back with the panel no longer busy.
    assert panel_runs.busy_after_click, f"the click returned after the run ended ({panel_runs.click_s:.1f} s)"
    assert max(panel_runs.points_while_running) > 0, "the plot did not grow while the run was going"


def test_panel_run_plot_holds_samples_events_and_peak(panel_runs):
    panel, report = panel_runs.panel, panel_runs.report
    assert report.outcome == "ok" and panel.message is None
    plot = panel.plot
    # Both runs stay on the plot, named by what sets them apart (the budget) and told apart by shade; the
    # legend gives each run's peak above baseline where it has one (the budget stop comes as the load starts:
    # whether the child read its peak before it was stopped is the scheduler's call).
    stopped, finished = plot.legend_names()
    assert stopped.startswith("manual_shards · budget=150 MB") and "+-" not in stopped
    assert finished == (f"manual_shards · +{format_bytes(report.peak_above_baseline_bytes)} = "
                        f"{report.peak_above_baseline_bytes / report.checkpoint_bytes:.2f}x")
    colors = [t.line.color for t in plot.figure.data if t.meta.endswith(":rss")]
    assert len(colors) == 2 and colors[0] != colors[1]
    assert plot.point_count() > 0
    assert plot.point_count() <= plot.max_points
    assert plot.y_mode == "above_baseline"
    assert plot.line_y("peak") == pytest.approx(to_mb(report.peak_above_baseline_bytes))
    assert plot.line_y("checkpoint") == pytest.approx(to_mb(report.checkpoint_bytes))
    ready = next(e.t_s for e in report.timeline.events if e.kind == "ready")
    assert plot.event_count() == sum(e.t_s >= ready for e in report.timeline.events) > 0
    rss = next(t for t in plot.figure.data if t.meta == f"{plot.latest_run_id}:rss")
    assert min(rss.x) >= 0 and min(rss.y) > -to_mb(report.checkpoint_bytes)  # the load, from its start
    assert "manual_shards: shard 1/3 read" in " ".join(plot.event_labels())


def test_panel_result_card_shows_the_reports_figures(panel_runs):
    panel, report = panel_runs.panel, panel_runs.report
    shown = _figures_in(panel.result.value)
    assert shown == report_figures(report, card_columns(report))
    assert shown["major_faults"] == str(report.major_faults)  # Linux: the child's own count, 0 included
    assert shown["peak_rss_bytes"] == format_bytes(report.peak_rss_bytes)
    assert shown["peak_ratio"] == f"{report.peak_ratio:.2f}x"
    assert shown["load_s"] == f"{report.load_s:.2f} s"
    assert "Traceback" not in panel.html_text()
    assert "manual_shards" in repr(panel) and "ok" in repr(panel)
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "StrategyPanel(" in bundle["text/plain"]


def test_panel_stop_cancels_and_a_second_panel_is_refused(checkpoint, tmp_path, monkeypatch):
    run_tmp = tmp_path / "tmp"
    run_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(run_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    first = StrategyPanel(checkpoint, "normal")
    second = StrategyPanel(checkpoint, "low_cpu_mem_usage")
    # Seconds of forwards after the load, so that Stop lands during the run however fast the load is.
    long_start = runner.start
    monkeypatch.setattr(runner, "start", lambda *args, **options: long_start(*args, **{**options, "forwards": 1000}))

    first.run_button.click()
    _wait_until(lambda: first.plot.point_count() > 0)  # the child is running and sampled
    assert len(list(run_tmp.glob("offload-lab-run-*"))) == 1
    second.run_button.click()
    assert second.wait(30)
    assert "already in progress" in second.message and "normal" in second.message
    assert second.plot.run_ids == [] and second.report is None  # nothing interleaved into its plot
    assert first.busy

    first.clear_button.click()  # refused while running: the curve being drawn stays
    assert "in progress" in first.message and first.plot.run_ids == [first.plot.latest_run_id]

    first.stop_button.click()
    assert first.wait(60)
    assert first.report.outcome == "cancelled"
    assert first.message == first.report.error
    assert first.plot.run_ids == [first.plot.latest_run_id]
    assert list(run_tmp.glob("offload-lab-run-*")) == []
    assert not first.run_button.disabled and first.stop_button.disabled
    first.clear_button.click()  # once the run has ended, Clear empties the plot and the card
    assert first.plot.run_ids == [] and first.report is None and first.result.value == "" and not first.message


def test_panel_builds_a_checkpoint_with_a_progress_bar_then_runs():
    panel = StrategyPanel(size="8MB", shards=2, strategy="manual_shards")
    progress = []
    panel.build_progress.observe(lambda change: progress.append(change["new"]), names="value")
    panel.run_button.click()
    # The run of an 8 MB checkpoint forked from the zygote takes well under a second: wait for it to end rather
    # than race a Stop against it (Stop during a run is tested on its own, here and in the browser).
    assert panel.wait(60)
    folder = panel.checkpoint_text.value
    assert folder.startswith(str(cache_dir())) and inspect_checkpoint(folder).total_bytes > 0
    assert progress and progress[-1] == 1.0
    assert panel.build_progress.layout.display == "none"  # the bar is shown only while building
    assert panel.report.outcome == "ok" and panel.report.checkpoint == folder
    assert panel.plot.point_count() > 0


def test_panel_stop_while_building_abandons_the_build():
    def partials() -> set[str]:
        return {p.name for p in (cache_dir() / "checkpoints").glob("*partial*")}

    # Other tests may leave deliberate stale partials in the shared session cache; only ours must not stay.
    before = partials()
    panel = StrategyPanel(size="30MB", shards=3)
    # Press Stop from the first progress update: the next one ends the build (deterministic, no sleeping).
    panel.build_progress.observe(lambda change: panel.stop() if change["new"] > 0 else None, names="value")
    panel.run_button.click()
    assert panel.wait(120)
    assert panel.message == "Stopped while building the checkpoint; nothing was run."
    assert panel.report is None and panel.plot.run_ids == [] and panel.checkpoint_text.value == ""
    assert partials() - before == set()
    assert not panel.busy and not panel.run_button.disabled


# ------------------------------------------------------------------------------------------ CompareBoard


def test_compare_board_runs_all_four_and_overlays_them(checkpoint):
    board = CompareBoard(checkpoint)
    reports = board.run()
    assert [r.strategy for r in reports] == list(STRATEGIES)
    assert [r.outcome for r in reports] == ["ok"] * 4, board.message
    assert board.reports == reports
    rss = [t for t in board.plot.figure.data if t.meta.endswith(":rss")]
    assert [t.name.split(" · ")[0] for t in rss] == list(STRATEGIES)
    assert all(len(t.x) > 0 for t in rss)
    for run_id, report in zip(board.plot.run_ids, reports, strict=True):
        assert board.plot.line_y("peak", run_id) == pytest.approx(to_mb(report.peak_above_baseline_bytes))
    # Every peak is readable: in the legend (and the table), never as four labels on top of each other.
    shapes = board.plot.figure.layout.shapes
    assert {s.label.text for s in shapes if s.name.endswith(":peak")} == {""}
    for name, report in zip(board.plot.legend_names(), reports, strict=True):
        assert f"+{format_bytes(report.peak_above_baseline_bytes)}" in name
    rows = re.findall(r'<tr data-strategy="([^"]+)">(.*?)</tr>', board.table.value)
    assert [s for s, _ in rows] == list(STRATEGIES)
    for (_, row), report in zip(rows, reports, strict=True):
        assert _figures_in(row) == report_figures(report)
    assert "Traceback" not in board.html_text()
    board.plot.join()


def test_compare_board_sweep_increases_max_memory_and_draws_points(checkpoint):
    info = inspect_checkpoint(checkpoint)
    board = CompareBoard(checkpoint)
    reports = board.sweep([info.total_bytes, info.largest_tensor_bytes * 2])  # out of order on purpose
    assert [r.max_memory_bytes for r in reports] == [info.largest_tensor_bytes * 2, info.total_bytes]
    assert [r.strategy for r in reports] == ["offload_folder"] * 2
    ok = sum(r.ok for r in reports)
    assert ok >= 1, [r.error for r in reports]
    assert board.sweep_points() == {"peak above baseline": ok, "forward latency": ok}
    peak = board.sweep_figure.data[0]  # the basis of the table under it and of the load plot: above baseline
    done = [r for r in reports if r.ok]
    assert list(peak.y) == pytest.approx([to_mb(r.peak_above_baseline_bytes) for r in done])
    assert len(board.plot.run_ids) == 2
    assert all(name.startswith("offload_folder · max_memory") for name in board.plot.legend_names())
