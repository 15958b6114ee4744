"""The accuracy charts: bars to scale against min_accuracy, lines with gaps, readable when many,
escaped, and the render functions that feed them from night summaries."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import emerald_testing as testing
from pipeline_src.decision import accuracy_plots as ap
from pipeline_src.decision import plots, render

NS = testing.SVG_NS
parse = testing.parse_svg
by_class = testing.svg_by_class
SCRIPT = "<script>alert(1)</script>"
BAR_SCALE = ap.BAR_RIGHT - ap.BAR_LEFT            # the width of accuracy 1.0


def bars(root: ET.Element) -> dict[str, ET.Element]:
    return {e.get("data-slice"): e for e in by_class(root, "rect", "bar-accuracy")}


def tip(element: ET.Element) -> str:
    return element.find(f"{NS}title").text


def night(date, overall, **slices):
    return {"night": date, "overall": overall, "slices": slices}


# ------------------------------------------------------------------ tonight, per slice

def test_bars_are_to_scale_overall_first_then_the_slices_in_natural_order():
    root = parse(ap.slice_accuracy_svg({"overall": 0.8, "slices": {
        "capture_hour=10": 1.0, "capture_hour=8": 0.5, "source=toto": 0.25}}, 0.6))
    assert root.get("class") == "emerald-slice-accuracy" and root.get("data-feature") == "accuracy"
    found = bars(root)
    assert list(found) == ["overall", "capture_hour=8", "capture_hour=10", "source=toto"]
    widths = {name: float(bar.get("width")) for name, bar in found.items()}
    assert widths == pytest.approx({"overall": 0.8 * BAR_SCALE, "capture_hour=8": BAR_SCALE / 2,
                                    "capture_hour=10": BAR_SCALE,
                                    "source=toto": BAR_SCALE / 4}, abs=0.1)
    assert {float(bar.get("x")) for bar in found.values()} == {ap.BAR_LEFT}
    tops = [float(bar.get("y")) for bar in found.values()]
    assert tops == sorted(tops) and len(set(tops)) == 4             # one row each, top down
    (threshold,) = by_class(root, "line", "threshold")
    assert float(threshold.get("x1")) == pytest.approx(ap.BAR_LEFT + 0.6 * BAR_SCALE, abs=0.1)
    assert threshold.get("stroke-dasharray")
    assert [e.text for e in by_class(root, "text", "value")] == ["0.800", "0.500", "1.000",
                                                                 "0.250"]


def test_slices_below_min_accuracy_are_red_and_exactly_the_minimum_is_not():
    root = parse(ap.slice_accuracy_svg({"overall": 0.9, "slices": {
        "hour=1": 0.79, "hour=2": 0.8, "hour=3": 0.81}}, 0.8))
    found = bars(root)
    assert [name for name, bar in found.items() if bar.get("fill") == plots.FIRED] == ["hour=1"]
    assert "below" in found["hour=1"].get("class").split()
    assert {found[n].get("fill") for n in ("overall", "hour=2", "hour=3")} == {plots.TONIGHT}
    assert tip(found["hour=1"]) == ("hour=1: 0.790, below min_accuracy 0.800 "
                                    "(slices are reported, not gated)")
    assert root.get("data-fired") == "false"            # overall is fine: the model is blessed


def test_overall_below_min_accuracy_marks_the_whole_chart():
    root = parse(ap.slice_accuracy_svg({"overall": 0.7, "slices": {"hour=1": 0.9}}, 0.8))
    assert root.get("data-fired") == "true" and by_class(root, "rect", "fired-border")
    assert bars(root)["overall"].get("fill") == plots.FIRED
    assert "(not blessed)" in tip(bars(root)["overall"])
    assert "overall below min_accuracy" in [e.text for e in root.iter(f"{NS}text")]


def test_without_a_threshold_nothing_is_red_and_no_line_is_drawn():
    root = parse(ap.slice_accuracy_svg({"overall": 0.1, "slices": {"hour=1": 0.0}}))
    assert {bar.get("fill") for bar in bars(root).values()} == {plots.TONIGHT}
    assert not by_class(root, "line", "threshold")
    assert float(bars(root)["hour=1"].get("width")) == 0


@pytest.mark.parametrize("accuracy", [None, {}, {"overall": None, "slices": {}}, "n/a"])
def test_a_run_without_evaluation_is_a_placeholder(accuracy):
    root = parse(ap.slice_accuracy_svg(accuracy, 0.8))
    assert root.get("class") == "emerald-slice-accuracy" and not bars(root)
    assert [e.text for e in by_class(root, "text", "no-data")] == ["no evaluation for this run"]


def test_many_slices_make_the_chart_taller_with_rows_that_do_not_overlap():
    slices = {f"capture_hour={h}": 0.9 for h in range(24)}
    slices["orientation=landscape_and_more"] = 0.9
    root = parse(ap.slice_accuracy_svg({"overall": 0.9, "slices": slices}, 0.8))
    assert int(root.get("height")) > plots.HEIGHT
    assert root.get("viewBox") == f"0 0 {plots.WIDTH} {root.get('height')}"
    tops = [float(bar.get("y")) for bar in bars(root).values()]
    assert len(tops) == 26 and min(b - a for a, b in zip(tops, tops[1:])) >= ap.ROW_MIN - 0.1
    assert max(tops) + ap.ROW_MIN <= int(root.get("height")) - ap.FOOTER + 4
    labels = {e.text: e for e in by_class(root, "text", "slice-label")}
    cut = labels[plots._short("orientation=landscape_and_more", ap.LABEL_CHARS)]
    assert tip(cut) == "orientation=landscape_and_more"     # the whole name on hover


def test_slice_names_from_the_data_are_escaped():
    svg = ap.slice_accuracy_svg({"overall": 0.5, "slices": {f"label={SCRIPT}": 0.5}}, 0.8)
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert f"label={SCRIPT}" in bars(parse(svg))


# ------------------------------------------------------------------ over the nights

def test_a_night_without_evaluation_is_a_gap_in_every_line():
    points = [night("2026-01-01", 0.8, **{"source=toto": 0.6}),
              night("2026-01-02", 0.9, **{"source=toto": 0.7}),
              night("2026-01-03", None),                          # the Evaluator did not run
              night("2026-01-04", 0.85, **{"source=toto": 0.65}),
              night("2026-01-05", 0.95, **{"source=toto": 0.75})]
    root = parse(ap.accuracy_trend_svg(points))
    assert root.get("class") == "emerald-accuracy-trend" and root.get("data-feature") == "accuracy"
    lines = by_class(root, "polyline", "accuracy-line")
    assert sorted(line.get("data-slice") for line in lines) == ["overall", "overall",
                                                                "source=toto", "source=toto"]
    xs, _ = plots._night_axis([p["night"] for p in points], plots.TREND_BOTTOM)
    drawn = {float(pair.split(",")[0]) for line in lines for pair in line.get("points").split()}
    assert sorted(drawn) == pytest.approx([x for i, x in enumerate(xs) if i != 2], abs=0.1)
    markers = [m for m in by_class(root, "circle", "marker") if m.get("data-slice") == "overall"]
    assert len(markers) == 4                                      # none on the gap
    assert "last 5 nights, 1 not evaluated" in [e.text for e in root.iter(f"{NS}text")]
    assert tip(next(l for l in lines if l.get("data-slice") == "source=toto")) == (
        "source=toto: 01-01 0.600, 01-02 0.700")                  # its values on hover


def test_values_are_placed_on_the_scale_the_axis_labels():
    root = parse(ap.accuracy_trend_svg([night("2026-01-01", 0.75), night("2026-01-02", 0.9)],
                                       min_accuracy=0.6))
    labels = [e.text for e in root.iter(f"{NS}text") if e.get("text-anchor") == "end"
              and float(e.get("x")) == plots.LEFT - 5]
    assert labels == ["0.50", "0.75", "1.00"]                     # from 0.5: differences show
    first = by_class(root, "circle", "marker")[0]
    middle = (plots.TREND_TOP + plots.TREND_BOTTOM) / 2
    assert float(first.get("cy")) == pytest.approx(middle, abs=0.1)       # 0.75: half way
    (threshold,) = by_class(root, "line", "threshold")
    height = plots.TREND_BOTTOM - plots.TREND_TOP
    assert float(threshold.get("y1")) == pytest.approx(plots.TREND_BOTTOM - height * 0.2, abs=0.1)
    assert root.get("data-fired") == "false"


def test_the_scale_reaches_down_to_the_lowest_accuracy():
    root = parse(ap.accuracy_trend_svg([night("2026-01-01", 0.9, **{"hour=1": 0.23})]))
    labels = [e.text for e in root.iter(f"{NS}text") if e.get("text-anchor") == "end"
              and float(e.get("x")) == plots.LEFT - 5]
    assert labels == ["0.20", "0.60", "1.00"]
    lone = by_class(root, "circle", "marker")         # one night: markers, no lines
    assert {m.get("data-slice") for m in lone} == {"overall", "hour=1"}
    assert not by_class(root, "polyline", "accuracy-line")


def test_each_slice_has_its_own_line_style_and_the_legend_names_them_in_order():
    slices = {f"hour={h}": 0.5 + h / 40 for h in range(12)}       # more than the palette
    points = [night(f"2026-01-0{d}", 0.9, **slices) for d in (1, 2)]
    root = parse(ap.accuracy_trend_svg(points))
    lines = {line.get("data-slice"): line for line in by_class(root, "polyline", "accuracy-line")}
    styles = {(line.get("stroke"), line.get("stroke-dasharray")) for line in lines.values()}
    assert len(lines) == 13 and len(styles) == 13
    assert lines["overall"].get("stroke") == plots.INK
    assert float(lines["overall"].get("stroke-width")) > float(lines["hour=0"].get("stroke-width"))
    assert plots.FIRED not in {line.get("stroke") for line in lines.values()}  # red: below min
    legend = [e.text for e in by_class(root, "text", "legend")]
    assert legend == ["overall"] + [f"hour={h}" for h in range(12)]


def test_a_long_legend_wraps_then_says_how_many_it_left_out():
    slices = {f"capture_hour={h}": 0.9 for h in range(-1, 24)} | {
        "orientation=landscape_and_more": 0.8, "source=toto": 0.7}
    root = parse(ap.accuracy_trend_svg([night("2026-01-01", 0.9, **slices)]))
    shown = by_class(root, "text", "legend")
    (more,) = by_class(root, "text", "legend-more")
    left_out = int(more.text.split()[0].lstrip("+"))
    assert len(shown) + left_out == 1 + len(slices)
    rows = sorted({float(e.get("y")) for e in shown})
    assert len(rows) == ap.LEGEND_ROWS
    height = int(root.get("height"))
    assert height > plots.HEIGHT and max(rows) < height
    for text in shown + [more]:                              # nothing runs off the right edge
        assert float(text.get("x")) + len(text.text) * plots.CHAR <= plots.WIDTH


def test_names_and_nights_from_the_data_are_escaped_in_the_trend():
    svg = ap.accuracy_trend_svg([night(SCRIPT, 0.9, **{f"label={SCRIPT}": 0.5}),
                                 night("2026-01-02", 0.8, **{f"label={SCRIPT}": 0.6})])
    assert "<script" not in svg and "&lt;script&gt;" in svg
    root = parse(svg)
    assert f"label={SCRIPT}" in {line.get("data-slice")
                                 for line in by_class(root, "polyline", "accuracy-line")}


def test_no_nights_or_no_evaluation_at_all_is_a_placeholder():
    assert "no nights yet" in ap.accuracy_trend_svg([])
    root = parse(ap.accuracy_trend_svg([night("2026-01-01", None), night("2026-01-02", None)]))
    assert [e.text for e in by_class(root, "text", "no-data")] == ["no evaluation in 2 night(s)"]


def test_tonight_below_min_accuracy_marks_the_trend():
    root = parse(ap.accuracy_trend_svg([night("2026-01-01", 0.9), night("2026-01-02", 0.7)], 0.8))
    assert root.get("data-fired") == "true"


# ------------------------------------------------------------------ from the night summaries

def summary(date, accuracy, min_accuracy=0.8):
    return {"date": date, "accuracy": accuracy,
            "evaluation": {"evaluated": True, "min_accuracy": min_accuracy}}


def test_accuracy_series_has_one_point_per_night_and_a_gap_where_none_was_evaluated():
    summaries = [summary("2026-01-01", {"overall": 0.8, "slices": {"source=corpus": 0.9}}),
                 {"date": "2026-01-02"},                                   # no accuracy key
                 summary("2026-01-03", 0.7),                               # an older writer
                 summary("2026-01-04", {"overall": None, "slices": None})]
    assert render.accuracy_series(summaries) == [
        {"night": "2026-01-01", "overall": 0.8, "slices": {"source=corpus": 0.9}},
        {"night": "2026-01-02", "overall": None, "slices": {}},
        {"night": "2026-01-03", "overall": 0.7, "slices": {}},
        {"night": "2026-01-04", "overall": None, "slices": {}}]


def test_accuracy_html_draws_tonight_and_the_nights_before_against_tonights_minimum():
    history = [summary("2026-01-01", {"overall": 0.95, "slices": {}}, min_accuracy=0.5)]
    tonight = summary("2026-01-02", {"overall": 0.7, "slices": {"source=toto": 0.9}})
    page = render.accuracy_html(tonight, history)
    assert "over the last 2 night(s)" in page
    charts = [parse("<svg" + part.split("</svg>")[0] + "</svg>") for part in page.split("<svg")[1:]]
    assert [c.get("class") for c in charts] == ["emerald-slice-accuracy", "emerald-accuracy-trend"]
    assert charts[0].get("data-fired") == "true"                  # 0.7 < tonight's 0.8
    markers = by_class(charts[1], "circle", "marker")
    assert [tip(m) for m in markers if m.get("data-slice") == "overall"] == [
        "2026-01-01, overall: 0.950", "2026-01-02, overall: 0.700, below min_accuracy"]
    assert "no evaluation for this run" in render.accuracy_html({"date": "2026-01-03"}, [])
