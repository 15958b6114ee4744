"""The accuracy pictures of a night: per slice tonight, and over the nights, one line per slice.

Why beside plots.py and not in it: the same constraints (inline SVG under the
report's CSP, standard library only, every text from the data escaped, a class
and `data-feature="accuracy"` for the browser test) and the same helpers and
colours, but another reading: accuracy is a level held to `min_accuracy`, not an
effect against a baseline. The Evaluator gates the overall slice only
(pipeline_src/orchestration/pipeline.py, eval_config): a slice below the line is
drawn red to be seen, it blocks nothing, and its tooltip says so.

A chart grows taller rather than squeezing: one row per slice in the bar chart,
a legend that wraps (then says how many it left out) in the trend, so the
capture-hour slices (up to 25) stay readable.
"""
from __future__ import annotations

import itertools
import math
import re
from typing import Any, Mapping, Optional, Sequence

from pipeline_src.decision.plots import (
    AXIS, CHAR, FIRED, GRID, HEIGHT, INK, MUTED, TONIGHT, TREND_BOTTOM, TREND_TOP, WIDTH, _el,
    _header, _night_axis, _night_label, _num, _placeholder, _short, _svg, _swatch, _threshold,
    _y_axis, compact)

SLICES_CLASS, TREND_CLASS, FEATURE = "emerald-slice-accuracy", "emerald-accuracy-trend", "accuracy"
OVERALL = "overall"
# The Evaluator's own slack (pipeline.THRESHOLD_SLACK; that module needs TFX): an accuracy of
# exactly min_accuracy blesses, so it is not drawn below the line.
SLACK = 1e-6
LABEL_RIGHT, BAR_LEFT, BAR_RIGHT = 124, 130, WIDTH - 44   # slice names | bars | the values
LABEL_CHARS = 20                     # a slice name longer than this is cut (whole in its tooltip)
ROWS_TOP, FOOTER = 42, 28            # the bar chart's first row, and the legend under the last
ROW_MIN, ROW_MAX = 13.0, 22.0        # a row's height: few slices fill the chart, many extend it
# One colour per slice (colour-blind safe first, none red: red means below the minimum);
# past the palette the colours come back dashed, then dotted. Overall is the bold dark line.
SERIES_COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#8c510a",
                  "#762a83", "#b8860b", "#1b7837", "#7f7f7f")
DASHES = (None, "5 2", "1.5 2")
LEGEND_TOP, LEGEND_ROW, LEGEND_ROWS = TREND_BOTTOM + 30, 13, 4
LEGEND_CHARS = 20
MORE_WIDTH = 54                      # room kept on the legend's last row for "+N more"


def natural_key(name: Any) -> list:
    """capture_hour=8 before capture_hour=10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", str(name))]


def _slices(accuracy: Any) -> dict[str, Optional[float]]:
    slices = accuracy.get("slices") if isinstance(accuracy, Mapping) else None
    return {str(k): _num(v) for k, v in slices.items()} if isinstance(slices, Mapping) else {}


def _overall(accuracy: Any) -> Optional[float]:
    return _num(accuracy.get("overall") if isinstance(accuracy, Mapping) else accuracy)


def _unit(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _below(value: Optional[float], least: Optional[float]) -> bool:
    return value is not None and least is not None and value < least - SLACK


def slice_accuracy_svg(accuracy: Optional[Mapping[str, Any]],
                       min_accuracy: Optional[float] = None) -> str:
    """Tonight's accuracy, overall then one bar per slice on a 0..1 scale, min_accuracy dashed."""
    slices = _slices(accuracy)
    rows = [(OVERALL, _overall(accuracy))] + sorted(slices.items(),
                                                    key=lambda kv: natural_key(kv[0]))
    if all(value is None for _, value in rows):
        return _placeholder(SLICES_CLASS, FEATURE, "no evaluation for this run")
    least = _num(min_accuracy)
    n = len(rows)
    row = max(ROW_MIN, min(ROW_MAX, (HEIGHT - ROWS_TOP - FOOTER) / n))
    bottom = ROWS_TOP + n * row
    height = max(HEIGHT, math.ceil(bottom + FOOTER))
    x_of = lambda v: BAR_LEFT + (BAR_RIGHT - BAR_LEFT) * _unit(v)  # noqa: E731
    blocked = _below(rows[0][1], least)                 # what the Evaluator refuses
    below = [name for name, value in rows if _below(value, least)]
    right = ("overall below min_accuracy" if blocked else "no min_accuracy" if least is None
             else f"min_accuracy {least:.2f}")
    body = _header("accuracy tonight", right, fired=blocked)
    for tick in (0.0, 0.5, 1.0):
        body += [_el("line", x1=x_of(tick), x2=x_of(tick), y1=ROWS_TOP - 4, y2=bottom,
                     stroke=AXIS if tick == 0 else GRID, stroke_width=1),
                 _el("text", compact(tick), x=x_of(tick), y=ROWS_TOP - 8, text_anchor="middle",
                     fill=MUTED, class_="x-label")]
    body.append(_el("line", x1=8, x2=WIDTH - 8, y1=ROWS_TOP + row, y2=ROWS_TOP + row,
                    stroke=GRID, stroke_width=1))   # overall above, the slices under it
    for i, (name, value) in enumerate(rows):
        top, label = ROWS_TOP + i * row, _short(name, LABEL_CHARS)
        baseline = top + row / 2 + 3.5
        body.append(_el("text", label, raw=_el("title", name) if label != name else "",
                        x=LABEL_RIGHT, y=baseline, text_anchor="end", fill=INK,
                        font_weight="bold" if i == 0 else None, class_="slice-label"))
        if value is None:
            body.append(_el("text", "no value", x=BAR_LEFT + 4, y=baseline, fill=MUTED,
                            font_style="italic"))
            continue
        low = _below(value, least)
        tip = f"{name}: {value:.3f}" + ("" if not low else f", below min_accuracy {least:.3f}"
                                        + (" (not blessed)" if i == 0 else
                                           " (slices are reported, not gated)"))
        body += [_el("rect", raw=_el("title", tip), x=BAR_LEFT, y=top + 2,
                     width=x_of(value) - BAR_LEFT, height=row - 4, fill=FIRED if low else TONIGHT,
                     class_="bar-accuracy below" if low else "bar-accuracy", data_slice=name),
                 _el("text", f"{value:.3f}", x=WIDTH - 8, y=baseline, text_anchor="end",
                     fill=FIRED if low else INK, class_="value")]
    if least is not None:
        body.append(_el("line", x1=x_of(least), x2=x_of(least), y1=ROWS_TOP - 4, y2=bottom + 2,
                        stroke="#555555", stroke_width=1, stroke_dasharray="4 3",
                        class_="threshold"))
    legend, x = _swatch(8, height - 10, TONIGHT, "accuracy")
    if least is not None:
        more, x = _swatch(x, height - 10, FIRED, "below min_accuracy")
        legend += more + [_el("line", x1=x, x2=x + 14, y1=height - 13, y2=height - 13,
                              stroke="#555555", stroke_dasharray="4 3"),
                          _el("text", f"min {least:.2f}", x=x + 18, y=height - 9.5, fill=INK)]
    title = "Accuracy tonight: overall " + ("n/a" if rows[0][1] is None else
                                            f"{rows[0][1]:.3f}") + f", {n - 1} slice(s)" + (
        "" if least is None else f"; min_accuracy {least:.3f}, {len(below)} below it")
    return _svg(SLICES_CLASS, FEATURE, title, body + legend, height=height, fired=blocked)


def _style(index: int) -> tuple[str, Optional[str], float]:
    """Colour, dash and width of the index-th series (0 is overall)."""
    if index == 0:
        return INK, None, 2.4
    slot = index - 1
    return (SERIES_COLOURS[slot % len(SERIES_COLOURS)],
            DASHES[(slot // len(SERIES_COLOURS)) % len(DASHES)], 1.4)


def _legend(names: Sequence[str], styles: Mapping[str, tuple]) -> tuple[list[str], int]:
    """A line key per series, wrapping over up to LEGEND_ROWS rows; then "+N more"."""
    out, x, y, rows = [], 8.0, float(LEGEND_TOP), 1
    for i, name in enumerate(names):
        text = _short(name, LEGEND_CHARS)
        width = 18 + len(text) * CHAR + 10
        keep = MORE_WIDTH if rows == LEGEND_ROWS and i < len(names) - 1 else 0
        if x > 8 and x + width + keep > WIDTH - 8:
            if rows == LEGEND_ROWS:
                out.append(_el("text", f"+{len(names) - i} more", x=x, y=y + 0.5, fill=MUTED,
                               class_="legend-more"))
                break
            x, y, rows = 8.0, y + LEGEND_ROW, rows + 1
        colour, dash, stroke = styles[name]
        out += [_el("line", x1=x, x2=x + 14, y1=y - 3, y2=y - 3, stroke=colour,
                    stroke_width=stroke, stroke_dasharray=dash),
                _el("text", text, raw=_el("title", name) if text != name else "", x=x + 18,
                    y=y + 0.5, fill=INK, class_="legend")]
        x += width
    return out, rows


def accuracy_trend_svg(points: Sequence[Mapping[str, Any]],
                       min_accuracy: Optional[float] = None) -> str:
    """Accuracy over the nights, oldest first: a bold line overall and one per slice; a night
    without evaluation is a gap in every line. `points` as render.accuracy_series makes them."""
    points = list(points or ())
    if not points:
        return _placeholder(TREND_CLASS, FEATURE, "no nights yet")
    names = [OVERALL] + sorted({name for p in points for name in _slices(p)}, key=natural_key)
    series = {name: [_overall(p) if name == OVERALL else _slices(p).get(name) for p in points]
              for name in names}
    styles = {name: _style(i) for i, name in enumerate(names)}   # steady if overall is absent
    names = [name for name in names if any(v is not None for v in series[name])]
    if not names:
        return _placeholder(TREND_CLASS, FEATURE, f"no evaluation in {len(points)} night(s)")
    least = _num(min_accuracy)
    seen = [_unit(v) for name in names for v in series[name] if v is not None]
    lowest = min(seen + ([least] if least is not None else []))
    low = max(0.0, min(0.5, math.floor(lowest * 10) / 10))   # from 0.5, lower only if needed
    y_of = lambda v: (TREND_BOTTOM - (TREND_BOTTOM - TREND_TOP)  # noqa: E731
                      * (_unit(v) - low) / (1 - low))
    n = len(points)
    gaps = sum(all(series[name][i] is None for name in names) for i in range(n))
    right = f"last {n} night{'s' if n != 1 else ''}" + (f", {gaps} not evaluated" if gaps else "")
    blocked = _below(series[OVERALL][-1], least)       # tonight not blessed: red border
    body = _header("accuracy", right, fired=False)
    body += _y_axis(TREND_TOP, TREND_BOTTOM, 1.0, lambda v: compact(v, (1 - low) / 2), low=low)
    xs, ticks = _night_axis([p.get("night", "") for p in points], TREND_BOTTOM)
    body += ticks
    if least is not None:
        body += _threshold(y_of(least), TREND_TOP, f"min_accuracy {least:.2f}")
    for index in reversed(range(len(names))):           # overall drawn last, on top
        name = names[index]
        colour, dash, stroke = styles[name]
        for evaluated, run in itertools.groupby(zip(xs, series[name], points),
                                                key=lambda p: p[1] is not None):
            run = list(run) if evaluated else []          # a night not evaluated: a gap
            if len(run) > 1:                              # the values in its tooltip
                tip = f"{name}: " + ", ".join(f"{_night_label(point.get('night', ''))} {v:.3f}"
                                              for _, v, point in run)
                body.append(_el("polyline", raw=_el("title", tip), fill="none", stroke=colour,
                                stroke_width=stroke, stroke_dasharray=dash,
                                stroke_linejoin="round", class_="accuracy-line", data_slice=name,
                                points=" ".join(f"{x:.1f},{y_of(v):.1f}" for x, v, _ in run)))
            # Markers on overall's nights, and where a slice has no line (a lone night):
            # one per slice and night would weigh tens of kilobytes for the capture hours.
            for x, value, point in run if name == OVERALL or len(run) == 1 else ():
                tip = f"{point.get('night', '')}, {name}: {value:.3f}" + (
                    ", below min_accuracy" if _below(value, least) else "")
                body.append(_el("circle", raw=_el("title", tip), cx=x, cy=y_of(value),
                                r=3.2 if name == OVERALL else 2.2, fill=colour, stroke="#ffffff",
                                stroke_width=0.8, class_="marker", data_slice=name))
    legend, rows = _legend(names, styles)
    height = max(HEIGHT, LEGEND_TOP + LEGEND_ROW * (rows - 1) + 14)
    title = f"Accuracy over the last {n} night(s): overall and {len(names) - 1} slice(s)" + (
        "" if least is None else f", min_accuracy {least:.2f}")
    return _svg(TREND_CLASS, FEATURE, title, body + legend, height=height, fired=blocked)
