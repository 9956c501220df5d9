"""What MemoryPlot writes on its figure besides the lines: short names for event markers, placed so that no two
overlap, and the horizontal lines (checkpoint size, budget, kernel peak), shared where runs agree.

Pure functions of plain values, so they are tested without a figure.
"""

from __future__ import annotations

import colorsys
import re
import sys
from collections.abc import Sequence
from typing import Any

from ..core.sizes import format_bytes, format_signed_bytes

__all__ = ["EVENT_SYMBOLS", "budget_label", "legend_note", "name_markers", "place_labels", "run_shade", "short_label"]

BYTES_PER_MB = 1_000_000

# Marker symbol per event kind; kinds not listed get a plain open circle.
EVENT_SYMBOLS = {
    "ready": "line-ns-open",
    "phase": "triangle-right",
    "model_built": "square-open",
    "state_dict_read": "circle",
    "shard_read": "circle",
    "shard_assigned": "diamond",
    "weights_assigned": "diamond",
    "pieces_held": "hourglass",
    "shard_freed": "x",
    "state_dict_freed": "x",
    "dispatch": "square",
    "loaded": "star-triangle-up",
    "forward": "star",
    "forward_done": "star-open",
    "budget_stop": "circle-x",
}

# How the k-th run of one strategy on a figure differs from the first: its hue turned this far round the colour
# wheel (a fraction of a turn), then mixed this far towards black (< 0) or white (> 0). The first three keep the
# strategy's hue, so a learner still reads "blue = manual_shards", and two runs of it (bfloat16 against float32,
# two budgets) are told apart at a glance; the later ones turn the hue a little as well, because two dark (or
# two pale) shades of one hue look alike (lesson 03 draws six offload_folder runs on one plot). Past the list
# the colours repeat and the legend's note tells runs apart.
_SHADES = ((0.0, 0.0), (0.0, -0.45), (0.0, 0.45), (0.09, -0.2), (-0.09, 0.25), (0.09, 0.5), (-0.09, -0.5),
           (0.16, 0.0))
# How much longer than the data's range plotly draws an axis (its autorange padding, a little over 5 % a side
# as measured in Chromium); the label placer works in that drawn span.
_AXIS_PAD = 1.15
# A legend entry's note is cut here: the legend sits under the plot, and an entry as long as the plot is wide
# would push the others onto rows of their own. The full label stays in the hover text.
LEGEND_NOTE_CHARS = 28


def run_shade(color: str, k: int) -> str:
    """The colour of the ``k``-th run (0 = the first) of a strategy drawn in ``color`` ("#rrggbb").

    >>> run_shade("#1f77b4", 0), run_shade("#1f77b4", 1), run_shade("#1f77b4", 2)
    ('#1f77b4', '#114163', '#84b4d6')
    >>> len({run_shade("#2ca02c", k) for k in range(len(_SHADES))}) == len(_SHADES)
    True
    """
    turn, mix = _SHADES[k % len(_SHADES)]
    rgb = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    if turn:
        hue, lightness, saturation = colorsys.rgb_to_hls(*rgb)
        rgb = list(colorsys.hls_to_rgb((hue + turn) % 1.0, lightness, saturation))
    target = 1.0 if mix > 0 else 0.0
    return "#" + "".join(f"{round(255 * (c + (target - c) * abs(mix))):02x}" for c in rgb)


def legend_note(note: str | None) -> str | None:
    """A run's note as its legend entry shows it: at most ``LEGEND_NOTE_CHARS`` characters.

    >>> legend_note("dtype=bfloat16"), legend_note("max_memory=30 MB, offload_folder=offload, dtype=bfloat16")
    ('dtype=bfloat16', 'max_memory=30 MB, offload_f…')
    """
    if not note or len(note) <= LEGEND_NOTE_CHARS:
        return note
    return note[:LEGEND_NOTE_CHARS - 1] + "…"


def budget_label(budget_bytes: int, budget_mode: str | None, above_baseline_bytes: int | None = None) -> str:
    """The budget line's label: the budget, what was counted against it (the runner's two ways of enforcing
    one, ``Report.budget_mode``), and where the line sits in the above-baseline view.

    >>> budget_label(300_000_000, "cgroup", 200_000_000)
    'budget 300 MB (what the kernel charges) = +200 MB above baseline'
    >>> budget_label(300_000_000, None)
    'budget 300 MB'
    """
    text = f"budget {format_bytes(budget_bytes)}"
    if budget_mode in ("cgroup", "systemd"):
        text += " (what the kernel charges)"
    elif budget_mode == "watchdog":
        # The watchdog counts the start-up RSS plus the growth of what the kernel cannot drop, where Linux splits
        # RSS; elsewhere the whole RSS (runner._sample, samples.non_reclaimable_bytes).
        text += " (start-up RSS + anonymous + shared)" if sys.platform.startswith("linux") else " (RSS)"
    if above_baseline_bytes is not None:
        text += f" = {format_signed_bytes(above_baseline_bytes)} above baseline"
    return text


_SHARD = re.compile(r"^shard (\d+/\d+)( loaded back)?")


def short_label(label: str, kind: str, *, phases: bool = False) -> str | None:
    """The few words written next to an event marker on the figure, or None for a marker left unnamed (its
    hover text still gives the full label). ``phases=True`` names "phase" events too (a learner's own marks).

    >>> short_label("shard 3/6 read", "shard_read"), short_label("shard 2/6 loaded back", "shard_read")
    ('shard 3/6', 'shard 2/6 back')
    >>> short_label("load_state_dict done (weights copied into the model)", "weights_assigned")
    'load_state_dict'
    >>> short_label("forward pass started", "forward"), short_label("shard 1/6 assigned", "shard_assigned") is None
    ('forward', True)
    """
    if kind == "shard_read":
        match = _SHARD.match(label)
        if match:
            return f"shard {match.group(1)}" + (" back" if match.group(2) else "")
        return "read"
    if kind == "weights_assigned":
        return "load_state_dict" if "load_state_dict" in label else label.split("(")[0].split(" ")[0]
    fixed = {"state_dict_read": "state dict", "model_built": "model built", "dispatch": "dispatched",
             "forward": "forward", "budget_stop": "budget stop"}
    if kind in fixed:
        return fixed[kind]
    if kind == "phase" and phases:
        return label if len(label) <= 28 else label[:27] + "…"
    return None


def place_labels(
    points: Sequence[tuple[float, float, str | None]], *, x_span: float, y_span: float, width_px: float,
    height_px: float, font_px: float, line_labels: Sequence[tuple[float, str, str]] = (),
) -> list[tuple[str, str]]:
    """For each ``(x, y, text)`` point, ``(text, position)`` to draw: above the marker if that overlaps no label
    kept so far, else below it, else ``("", ...)`` (left to the hover text). Earlier points win.

    ``line_labels`` are the horizontal lines' own labels, ``(y, text, position)`` with position "start",
    "middle" or "end" of the line (see :func:`hline`): they are drawn whatever happens, so a marker's name
    yields to them. Sizes are estimated from the font (a character is ~0.6 em wide): exact enough that labels
    never print on top of each other on a plot area of about ``width_px`` x ``height_px``.

    >>> place_labels([(0.0, 1.0, "shard 1/6"), (0.01, 1.0, "shard 2/6"), (0.02, 1.0, "shard 3/6")],
    ...              x_span=10, y_span=10, width_px=600, height_px=300, font_px=10)
    [('shard 1/6', 'top center'), ('shard 2/6', 'bottom center'), ('', 'top center')]
    >>> place_labels([(0.1, 5.0, "forward")], x_span=10, y_span=10, width_px=600, height_px=300, font_px=10,
    ...              line_labels=[(5.0, "checkpoint 150 MB", "start")])
    [('forward', 'bottom center')]
    """
    x_per_px = (x_span or 1.0) / max(width_px, 1.0)
    y_per_px = (y_span or 1.0) / max(height_px, 1.0)
    h = (font_px + 4) * y_per_px
    kept: list[tuple[float, float, float, float]] = []
    for y, text, position in line_labels:  # drawn just above its line, at the start, the middle or the end
        w = (len(text) * 0.6 * font_px + 4) * x_per_px
        x0 = {"start": 0.0, "middle": (x_span - w) / 2, "end": x_span - w}[position]
        kept.append((x0, x0 + w, y, y + h))
    out: list[tuple[str, str]] = []
    for x, y, text in points:
        if not text:
            out.append(("", "top center"))
            continue
        half_w = (len(text) * 0.6 * font_px / 2 + 2) * x_per_px
        placed = None
        for position, (y0, y1) in (("top center", (y + 0.3 * h, y + 1.3 * h)),
                                   ("bottom center", (y - 1.3 * h, y - 0.3 * h))):
            box = (x - half_w, x + half_w, y0, y1)
            if all(box[1] <= k[0] or box[0] >= k[1] or box[3] <= k[2] or box[2] >= k[3] for k in kept):
                kept.append(box)
                placed = (text, position)
                break
        out.append(placed or ("", "top center"))
    return out


def hline(name: str, y_mb: float, text: str, line: dict[str, Any], position: str, font_px: float) -> dict[str, Any]:
    """One horizontal line across the plot, labelled at ``position`` ("start", "middle", "end")."""
    return {
        "type": "line", "name": name, "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": y_mb, "y1": y_mb,
        "line": line,
        "label": {"text": text, "textposition": position, "font": {"size": font_px, "color": line["color"]}},
    }


def shared_lines(items: list[dict[str, Any]], *, above_baseline: bool, font_px: float,
                 width_scale: float) -> list[dict[str, Any]]:
    """The checkpoint and budget lines: one per distinct value, named after every run that shares it.

    In the above-baseline view the checkpoint line is the checkpoint's size (the same for every run on one
    checkpoint, so four strategies share one line), labelled at the left; the budget is a limit on the whole
    process's RSS, so it sits at budget - baseline, labelled in the middle. Peak labels go at the right.
    """
    shapes: list[dict[str, Any]] = []
    for kind in ("checkpoint", "budget"):
        groups: dict[int, list[dict[str, Any]]] = {}
        for item in items:
            value = item[kind]
            if value is None or (item["baseline"] is None and (kind == "checkpoint" or above_baseline)):
                continue
            groups.setdefault(value, []).append(item)
        for value, members in groups.items():
            last = members[-1]
            name = "+".join(m["run"].run_id for m in members) + f":{kind}"
            if kind == "checkpoint":
                y = value if above_baseline else last["baseline"] + value
                text = f"checkpoint {format_bytes(value)}" if above_baseline or len(items) > 1 else (
                    f"baseline + checkpoint ({format_bytes(value)})")
                line = {"color": "#555" if len(members) > 1 else last["color"], "dash": "dot", "width": width_scale}
                shapes.append(hline(name, y / BYTES_PER_MB, text, line, "start", font_px))
            else:
                y = value - last["baseline"] if above_baseline else value
                text = budget_label(value, last.get("budget_mode"), y if above_baseline else None)
                line = {"color": "black", "dash": "dash", "width": 1.5 * width_scale}
                shapes.append(hline(name, y / BYTES_PER_MB, text, line, "middle", font_px))
    return shapes


def name_markers(traces: dict[str, Any], runs: list[dict[str, Any]], *, plot_width_px: float, plot_height_px: float,
                 font_px: float, shapes: Sequence[dict[str, Any]] = ()) -> None:
    """Name the event markers of all runs at once (``markers.text``), so that no two names overlap, nor the
    labels of ``shapes`` (the :func:`hline` lines): earlier events win, the rest keep their hover text.
    ``traces`` maps "<run id>:<series>" to the figure's traces, ``runs`` are MemoryPlot's snapshot items with
    their arrays (``xs``, ``columns``, ``marker_x``/``_y``)."""
    points: list[tuple[float, float, str | None, str, int]] = []
    x_max, y_min, y_max = 0.0, 0.0, 1.0
    for item in runs:
        run = item["run"]
        phases = not run.zero_at_ready  # a learner's own marks are worth naming
        for i, (x, y, e) in enumerate(zip(item["marker_x"], item["marker_y"], item["events"], strict=True)):
            points.append((x, y, short_label(e.label, e.kind, phases=phases), run.run_id, i))
            x_max = max(x_max, x)
        if item["xs"]:
            x_max = max(x_max, item["xs"][-1])
        # The axis spans every series drawn (anonymous and file-backed RSS can dip below the baseline's zero)
        # and every horizontal line (plotly's autorange includes shapes), not the RSS alone.
        for values in item["columns"].values():
            drawn = [v for v in values if v is not None]
            if drawn:
                y_min, y_max = min(y_min, *drawn), max(y_max, *drawn)
    for shape in shapes:
        y_min, y_max = min(y_min, shape["y0"]), max(y_max, shape["y0"])
    points.sort(key=lambda p: p[0])
    line_labels = [(shape["y0"], shape["label"]["text"], shape["label"]["textposition"])
                   for shape in shapes if shape.get("label", {}).get("text")]
    # plotly's autorange pads that span (measured: lesson 04's figure, peak lines up to 85 MB, drew -7..92), and
    # a span estimated too short puts labels closer on screen than they were placed: pad it the same way.
    placed = place_labels([(x, y, text) for x, y, text, _, _ in points], x_span=(x_max or 1.0) * _AXIS_PAD,
                          y_span=(y_max - y_min) * _AXIS_PAD, width_px=plot_width_px, height_px=plot_height_px,
                          font_px=font_px, line_labels=line_labels)
    texts = {item["run"].run_id: [""] * len(item["events"]) for item in runs}
    positions = {run_id: ["top center"] * len(labels) for run_id, labels in texts.items()}
    for (_, _, _, run_id, i), (text, position) in zip(points, placed, strict=True):
        texts[run_id][i], positions[run_id][i] = text, position
    for run_id, labels in texts.items():
        markers = traces.get(f"{run_id}:events")
        if markers is not None and (tuple(markers.text or ()) != tuple(labels) or
                                    tuple(markers.textposition or ()) != tuple(positions[run_id])):
            markers.text, markers.textposition = labels, positions[run_id]
