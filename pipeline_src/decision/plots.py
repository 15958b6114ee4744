"""Small inline SVG charts for the night report: a histogram per comparison, a trend per property.

Why hand-written inline SVG: the report is static HTML sandboxed by the CSP
`default-src 'none'; img-src data:; style-src 'unsafe-inline'`, so a chart must
render with no script, no network and no external font or stylesheet; and the
standard library only, since the report is written where numpy and matplotlib
may be absent. Styles are presentation attributes (a <style> in inline SVG
would apply to the whole page). Each chart is a 320x200 <svg> with a <title>
(bars and markers have their own, shown on hover), a class (`emerald-histogram`
or `emerald-trend`) and `data-feature`, for a browser test to find it. Every
text from the data (feature, baseline, category, night) is XML-escaped.
"""
from __future__ import annotations

import itertools
import math
import os
import re
from typing import Any, Mapping, Optional, Sequence
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 320, 200
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
TONIGHT, BASELINE, FIRED, ACKNOWLEDGED = "#2166ac", "#c4c4c4", "#d32f2f", "#ef6c00"
INK, MUTED, GRID, AXIS = "#222222", "#666666", "#e8e8e8", "#999999"
LEFT, RIGHT = 40, 10                 # the plot area's margins (y tick labels on the left)
HIST_TOP, HIST_BOTTOM = 42, 156      # the histogram's plot area, top and bottom y
TREND_TOP, TREND_BOTTOM = 32, 150    # the trend's plot area
TREND_PAD = 12                       # first and last night this far inside the plot area
CHAR = 6.0                           # a 10px character's average width, for fitting labels
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")   # not allowed in XML at all


def _esc(text: Any) -> str:
    return escape(_CONTROL.sub("", str(text)), {'"': "&quot;"})


def _el(tag: str, text: Any = None, *, raw: str = "", **attrs: Any) -> str:
    """One element; `class_`, `font_size` -> class, font-size; floats to 0.1 px."""
    parts = []
    for key, value in attrs.items():
        if value is not None:
            value = f"{value:.1f}".rstrip("0").rstrip(".") if isinstance(value, float) else value
            parts.append(f' {key.rstrip("_").replace("_", "-")}="{_esc(value)}"')
    inner = ("" if text is None else _esc(text)) + raw
    return f"<{tag}{''.join(parts)}>{inner}</{tag}>" if inner else f"<{tag}{''.join(parts)}/>"


def _short(text: Any, chars: int) -> str:
    text = str(text)
    return text if len(text) <= chars else text[:max(chars - 1, 1)] + "\u2026"


def _num(value: Any) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def compact(value: float, step: Optional[float] = None) -> str:
    """A short tick label: 0.75, 1.33, 640, 12M; `step` (tick spacing) sets the decimals."""
    size = abs(value)
    for least, scale, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if size >= least:
            text = f"{value / scale:.3g}"
            return (text if "e" not in text else f"{value / scale:.0f}") + suffix
    if step and step > 0:
        return f"{value:.{max(0, min(6, 1 - math.floor(math.log10(step))))}f}"
    return "0" if value == 0 else f"{value:.0f}" if size >= 100 else f"{value:.3g}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _nice_ceil(value: float) -> float:
    """The smallest of 1, 1.2, 2, 3, 4, 5, 6, 8 (x 10^k) covering value: its half is round too."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 1.2, 2, 3, 4, 5, 6, 8, 10)
                if m * power >= value * (1 - 1e-9))


def _svg(cls: str, feature: str, title: str, body: Sequence[str], *, height: int = HEIGHT,
         fired: bool = False) -> str:
    border = _el("rect", x=1, y=1, width=WIDTH - 2, height=height - 2, rx=4, fill="none",
                 stroke=FIRED, stroke_width=2, class_="fired-border") if fired else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" '
            f'data-feature="{_esc(feature)}" data-fired="{str(fired).lower()}" role="img" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
            f'font-family="{_esc(FONT)}" font-size="10">'
            + _el("title", title)
            + _el("rect", width=WIDTH, height=height, rx=4, fill="#ffffff") + border
            + "".join(body) + "</svg>")


def _header(feature: str, right: str, *, fired: bool) -> list[str]:
    """The feature in bold on the left; 'FIRED' (red) or a muted note on the right."""
    room = int((WIDTH - 16 - len(right) * 6.2 - 12) / 7.2)
    return [_el("text", _short(feature, room), x=8, y=16, font_size=11.5, font_weight="bold",
                fill=FIRED if fired else INK, class_="chart-title"),
            _el("text", right, x=WIDTH - 8, y=16, text_anchor="end", fill=FIRED if fired else MUTED,
                font_weight="bold" if fired else None)]


def _placeholder(cls: str, feature: str, message: str) -> str:
    return _svg(cls, feature, f"{feature}: {message}", _header(feature, "", fired=False) + [
        _el("text", message, x=WIDTH / 2, y=40, text_anchor="middle", fill=MUTED,
            font_style="italic", class_="no-data")], height=54)


def _y_axis(top: float, bottom: float, ymax: float, label, low: float = 0.0) -> list[str]:
    """Gridlines and labels at the bottom (`low`), half way and the top of the scale."""
    out = []
    for i in range(3):
        y = bottom - (bottom - top) * i / 2
        out.append(_el("line", x1=LEFT, x2=WIDTH - RIGHT, y1=y, y2=y,
                       stroke=GRID if i else AXIS, stroke_width=1))
        out.append(_el("text", label(low + (ymax - low) * i / 2), x=LEFT - 5, y=y + 3.5,
                       text_anchor="end", fill=MUTED))
    return out


def _swatch(x: float, y: float, colour: str, text: str, rx: float = 2,
            **shape: Any) -> tuple[list[str], float]:
    box = _el("rect", x=float(x), y=y - 8, width=10, height=10, rx=rx, fill=colour, **shape)
    return [box, _el("text", text, x=x + 14, y=y + 0.5, fill=INK)], x + 14 + len(text) * CHAR + 14


def _distinct(labels: Sequence[str]) -> list[str]:
    """Labels too long for their slot, less the start and the end they all share."""
    if len(labels) < 2:
        return list(labels)
    lead = len(os.path.commonprefix(list(labels)))
    tail = len(os.path.commonprefix([s[lead:][::-1] for s in labels]))
    while lead and labels[0][lead - 1].isalnum():      # cut between words, not inside one
        lead -= 1
    while tail and labels[0][len(labels[0]) - tail].isalnum():
        tail -= 1
    lead, tail = (lead if lead >= 3 else 0), (tail if tail >= 3 else 0)
    return [("\u2026" if lead else "") + s[lead:len(s) - tail] + ("\u2026" if tail else "")
            for s in labels]


def histogram_svg(comparison: Mapping[str, Any]) -> str:
    """Tonight's distribution of one property against the baseline's, for one comparison."""
    feature = str(comparison.get("feature", ""))
    kind, fired = str(comparison.get("kind") or ""), bool(comparison.get("fired"))
    base_name = str(comparison.get("baseline") or "baseline")
    hist = (comparison.get("details") or {}).get("histogram") or {}
    tonight = [max(_num(v) or 0.0, 0.0) for v in hist.get("tonight") or ()]
    base = [max(_num(v) or 0.0, 0.0) for v in hist.get("baseline") or ()]
    edges = [_num(e) for e in hist.get("edges") or ()]
    labels = list(hist.get("values") or hist.get("categories") or ())
    n = min(len(tonight), len(base), len(edges) - 1 if edges else len(labels))
    if n <= 0 or None in edges[:n + 1]:
        return _placeholder("emerald-histogram", feature, "no data")
    title = f"{feature}: {kind} against {base_name}" + (", fired" if fired else "")
    ymax = _nice_ceil(max(tonight[:n] + base[:n] + [0.01]))
    y_of = lambda v: HIST_BOTTOM - (HIST_BOTTOM - HIST_TOP) * min(v, ymax) / ymax  # noqa: E731
    body = _header(feature, "FIRED" if fired else f"{kind} vs {_short(base_name, 18)}",
                   fired=fired)
    items, x = _swatch(8, 31, TONIGHT, f"tonight (n={comparison.get('n_tonight', '?')})")
    count = f" (n={comparison.get('n_baseline', '?')})"          # the name shortened to fit
    room = int((WIDTH - 8 - x - 14) / CHAR) - len(count)
    more, _ = _swatch(x, 31, BASELINE, _short(base_name, max(room, 4)) + count)
    body += items + more + _y_axis(HIST_TOP, HIST_BOTTOM, ymax, _percent)
    width = WIDTH - RIGHT - LEFT
    if edges:                                  # binned: baseline filled, tonight over it
        low, span = edges[0], (edges[n] - edges[0]) or 1.0
        x_of = lambda e: LEFT + width * (e - low) / span  # noqa: E731
        for values, cls, fill, opacity, who in ((base, "bar-baseline", BASELINE, None, base_name),
                                                (tonight, "bar-tonight", TONIGHT, 0.28, "tonight")):
            for i in range(n):
                tip = f"{who}, {compact(edges[i])} to {compact(edges[i + 1])}: {_percent(values[i])}"
                body.append(_el("rect", raw=_el("title", tip), class_=cls, fill=fill,
                                fill_opacity=opacity, x=x_of(edges[i]), y=y_of(values[i]),
                                width=max(x_of(edges[i + 1]) - x_of(edges[i]), 0.0),
                                height=HIST_BOTTOM - y_of(values[i])))
        steps = [(edges[0], 0.0)] + [(edges[i + j], tonight[i]) for i in range(n) for j in (0, 1)]
        points = [(x_of(e), y_of(v)) for e, v in steps + [(edges[n], 0.0)]]
        body.append(_el("polyline", points=" ".join(f"{a:.1f},{b:.1f}" for a, b in points),
                        fill="none", stroke=TONIGHT, stroke_width=1.5, class_="step-tonight"))
        for i in sorted({round(j * n / 4) for j in range(5)}):
            anchor = "start" if i == 0 else "end" if i == n else "middle"
            body += [_el("line", x1=x_of(edges[i]), x2=x_of(edges[i]), y1=HIST_BOTTOM,
                         y2=HIST_BOTTOM + 3, stroke=AXIS),
                     _el("text", compact(edges[i], span / 4), x=x_of(edges[i]), y=HIST_BOTTOM + 13,
                         text_anchor=anchor, fill=MUTED, class_="x-label")]
    else:                                      # one pair of bars per value or category
        group = width / n
        bar = min(group * 0.36, 26.0)
        every = max(1, math.ceil(34 / group))
        names = [compact(_num(v)) if "values" in hist and _num(v) is not None else str(v)
                 for v in labels[:n]]
        chars = max(int(group * every / CHAR) - 2, 2)
        shown = _distinct(names) if max(map(len, names)) > chars else names
        for i, label in enumerate(names):
            centre = LEFT + group * (i + 0.5)
            for value, cls, fill, dx, who in ((base[i], "bar-baseline", BASELINE, -bar - 0.5,
                                               base_name),
                                              (tonight[i], "bar-tonight", TONIGHT, 0.5, "tonight")):
                body.append(_el("rect", raw=_el("title", f"{who}, {label}: {_percent(value)}"),
                                class_=cls, fill=fill, x=centre + dx, y=y_of(value), width=bar,
                                height=HIST_BOTTOM - y_of(value)))
            if i % every == 0:
                body.append(_el("text", _short(shown[i], chars),
                                x=centre, y=HIST_BOTTOM + 13, text_anchor="middle", fill=INK,
                                class_="x-label"))
    effect, least, p = (_num(comparison.get(k)) for k in ("effect", "min_effect", "p_value"))
    caption = f"{comparison.get('effect_name') or 'effect'} " + (
        "n/a" if effect is None else f"{effect:.2f}") + (
        "" if least is None else f" (min {least:.2f})") + ("" if p is None else f", p {p:.1e}")
    body.append(_el("text", _short(caption, 56), x=8, y=HEIGHT - 10, fill=INK, class_="caption"))
    return _svg("emerald-histogram", feature, title, body, fired=fired)


def _night_label(night: Any) -> str:
    match = re.match(r"\d{4}-(\d\d-\d\d)", str(night))
    return match.group(1) if match else _short(night, 8)


def _night_axis(nights: Sequence[Any], bottom: float) -> tuple[list[float], list[str]]:
    """Each night's x, oldest first, and its tick; labels thinned to fit, the latest always
    labelled. Shared by every chart over the nights, so their nights line up."""
    n, inner = len(nights), WIDTH - RIGHT - LEFT - 2 * TREND_PAD
    xs = [LEFT + TREND_PAD + (inner * i / (n - 1) if n > 1 else inner / 2) for i in range(n)]
    every = max(1, math.ceil(n / max(1, int(inner / 38))))
    out = []
    for i, (x, night) in enumerate(zip(xs, nights)):
        out.append(_el("line", x1=x, x2=x, y1=bottom, y2=bottom + 3, stroke=AXIS))
        if (n - 1 - i) % every == 0:
            out.append(_el("text", _night_label(night), x=x, y=bottom + 13,
                           text_anchor="middle", fill=MUTED, class_="x-label"))
    return xs, out


def _threshold(y: float, top: float, text: str) -> list[str]:
    """A dashed line across the plot at y, and its label above it (below it at the top)."""
    return [_el("line", x1=LEFT, x2=WIDTH - RIGHT, y1=y, y2=y, stroke="#555555",
                stroke_width=1, stroke_dasharray="4 3", class_="threshold"),
            _el("text", text, x=LEFT + 3,   # the old nights' end
                y=y - 4 if y - top >= 12 else y + 11, fill=INK,
                font_size=9, stroke="#ffffff", stroke_width=3, paint_order="stroke",
                class_="threshold-label")]


def trend_svg(feature: str, points: Sequence[Mapping[str, Any]], threshold: Optional[float], *,
              kind: str = "skew") -> str:
    """One property's effect over the last nights, oldest first; untested nights are gaps."""
    feature, points = str(feature), list(points or ())
    if not points:
        return _placeholder("emerald-trend", feature, "no nights yet")
    effects = [_num(p.get("effect")) for p in points]
    tested, least = [e for e in effects if e is not None], _num(threshold)
    top = max(tested + ([least] if least is not None else []) + [0.0])
    ymax = 1.0 if tested and max(tested) > 0.5 else _nice_ceil(max(top * 1.1, 0.1))
    ymax = max(ymax, _nice_ceil(top))
    y_of = lambda v: TREND_BOTTOM - (TREND_BOTTOM - TREND_TOP) * v / ymax  # noqa: E731
    n = len(points)
    alarm = bool(points[-1].get("fired") and not points[-1].get("acknowledged"))  # red border
    body = _header(feature, f"{kind} \u00b7 last {n} night{'s' if n != 1 else ''}", fired=False)
    body += _y_axis(TREND_TOP, TREND_BOTTOM, ymax, lambda v: compact(v, ymax / 2))
    xs, ticks = _night_axis([p.get("night", "") for p in points], TREND_BOTTOM)
    body += ticks
    if least is not None:
        body += _threshold(y_of(least), TREND_TOP, f"min effect {least:.2f}")
    for tested_run, run in itertools.groupby(zip(xs, effects), key=lambda p: p[1] is not None):
        run = [f"{x:.1f},{y_of(effect):.1f}" for x, effect in run] if tested_run else []
        if len(run) > 1:                       # a night not tested breaks the line
            body.append(_el("polyline", points=" ".join(run), fill="none", stroke=TONIGHT,
                            stroke_width=1.8, stroke_linejoin="round", class_="trend-line"))
    for x, effect, point in zip(xs, effects, points):
        if effect is None:
            continue
        ack, fired = bool(point.get("acknowledged")), bool(point.get("fired"))
        state = "acknowledged" if ack else "fired" if fired else None
        tip = f"{point.get('night', '')}: {effect:.2f}" + (f", {state}" if state else "")
        body.append(_el("circle", raw=_el("title", tip), cx=x, cy=y_of(effect),
                        r=4.2 if state else 3.2, stroke_width=2 if ack else 1.2,
                        fill="#ffffff" if ack else FIRED if fired else TONIGHT,
                        stroke=ACKNOWLEDGED if ack else "#ffffff",
                        class_=f"marker {state}" if state else "marker"))
    legend, x = _swatch(8, HEIGHT - 12, TONIGHT, "effect", rx=5)
    more, x = _swatch(x, HEIGHT - 12, FIRED, "fired", rx=5)
    legend += more + _swatch(x, HEIGHT - 12, "#ffffff", "acknowledged", rx=5,
                             stroke=ACKNOWLEDGED, stroke_width=2)[0]
    if None in effects:
        legend.append(_el("text", "gap: not tested", x=WIDTH - 8, y=HEIGHT - 11.5,
                          text_anchor="end", fill=MUTED))
    title = f"{feature}: {kind} effect over the last {n} nights" + (
        f", threshold {least:.2f}" if least is not None else "")
    return _svg("emerald-trend", feature, title, body + legend, fired=alarm)
