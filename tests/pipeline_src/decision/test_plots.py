"""The report's inline SVG charts: well-formed, findable, escaped, and drawn to scale."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import emerald_testing as testing
from pipeline_src.decision import plots

NS = testing.SVG_NS
parse = testing.parse_svg
by_class = testing.svg_by_class


def texts(root: ET.Element, cls: str) -> list[str]:
    return [e.text for e in by_class(root, "text", cls)]


def comparison(histogram, *, feature="aspect_ratio", fired=True, **extra):
    record = {"kind": "skew", "feature": feature, "baseline": "training",
              "effect_name": "KS distance", "effect": 0.77, "min_effect": 0.3, "p_value": 1e-4,
              "alpha": 0.0005, "n_tonight": 36, "n_baseline": 156, "fired": fired,
              "details": {"histogram": histogram}}
    record.update(extra)
    return record


def bar_height(rect: ET.Element) -> float:
    return float(rect.get("height"))


PLOT_HEIGHT = plots.HIST_BOTTOM - plots.HIST_TOP


# ---------------------------------------------------------------- histograms

def test_discrete_values_are_grouped_bars_to_scale_with_compact_labels():
    root = parse(plots.histogram_svg(comparison(
        {"values": [0.75, 1.333], "tonight": [1.0, 0.0], "baseline": [0.23, 0.77]})))
    assert root.get("class") == "emerald-histogram"
    assert root.get("data-feature") == "aspect_ratio"
    assert root.find(f"{NS}title").text.startswith("aspect_ratio")
    tonight, baseline = by_class(root, "rect", "bar-tonight"), by_class(root, "rect", "bar-baseline")
    assert len(tonight) == 2 and len(baseline) == 2
    # 100% is the top of the scale: tonight's first bar fills the plot, its second is empty.
    assert bar_height(tonight[0]) == pytest.approx(PLOT_HEIGHT, abs=0.1)
    assert bar_height(tonight[1]) == pytest.approx(0, abs=0.1)
    assert bar_height(baseline[1]) / bar_height(baseline[0]) == pytest.approx(0.77 / 0.23, rel=0.01)
    assert float(tonight[0].get("x")) < float(tonight[1].get("x"))
    assert texts(root, "x-label") == ["0.75", "1.33"]
    all_text = [e.text for e in root.iter(f"{NS}text")]
    assert "tonight (n=36)" in all_text and "training (n=156)" in all_text
    assert texts(root, "caption") == ["KS distance 0.77 (min 0.30), p 1.0e-04"]


def test_fired_comparison_is_marked_red_and_a_quiet_one_is_not():
    histogram = {"values": [1.0, 2.0], "tonight": [0.5, 0.5], "baseline": [0.5, 0.5]}
    fired = parse(plots.histogram_svg(comparison(histogram, fired=True)))
    assert fired.get("data-fired") == "true"
    assert by_class(fired, "rect", "fired-border")[0].get("stroke") == plots.FIRED
    assert by_class(fired, "text", "chart-title")[0].get("fill") == plots.FIRED
    assert "FIRED" in [e.text for e in fired.iter(f"{NS}text")]
    quiet = parse(plots.histogram_svg(comparison(histogram, fired=False)))
    assert quiet.get("data-fired") == "false"
    assert not by_class(quiet, "rect", "fired-border")
    assert by_class(quiet, "text", "chart-title")[0].get("fill") != plots.FIRED
    assert "FIRED" not in [e.text for e in quiet.iter(f"{NS}text")]


def test_binned_histogram_overlays_one_rect_per_bin_and_ticks_a_few_edges():
    edges = [i * 1.2e6 for i in range(21)]                       # 0 .. 24M pixels
    tonight = [0.0] * 15 + [0.2] * 5
    baseline = [0.05] * 20
    root = parse(plots.histogram_svg(comparison(
        {"edges": edges, "tonight": tonight, "baseline": baseline}, feature="pixel_area")))
    tonight_rects = by_class(root, "rect", "bar-tonight")
    baseline_rects = by_class(root, "rect", "bar-baseline")
    assert len(tonight_rects) == 20 and len(baseline_rects) == 20
    assert tonight_rects[0].get("fill-opacity") is not None        # see-through over the baseline
    # 20% is the top of the scale: tonight's full bins are as tall as the plot, 4x the baseline's.
    assert bar_height(tonight_rects[-1]) == pytest.approx(PLOT_HEIGHT, abs=0.1)
    assert bar_height(baseline_rects[0]) == pytest.approx(PLOT_HEIGHT / 4, abs=0.1)
    # The bins tile the x axis.
    for left, right in zip(baseline_rects, baseline_rects[1:]):
        assert float(left.get("x")) + float(left.get("width")) == pytest.approx(
            float(right.get("x")), abs=0.11)
    assert len(by_class(root, "polyline", "step-tonight")) == 1
    assert texts(root, "x-label") == ["0", "6M", "12M", "18M", "24M"]


def test_categories_and_feature_from_the_data_are_escaped():
    svg = plots.histogram_svg(comparison(
        {"categories": ["bear", "lion", "<script>"], "tonight": [0.5, 0.4, 0.1],
         "baseline": [0.5, 0.5, 0.0]}, feature='<script>alert("x")</script>',
        baseline="<b>training</b>"))
    assert "<script" not in svg and "<b>" not in svg
    root = parse(svg)
    assert root.get("data-feature") == '<script>alert("x")</script>'
    assert texts(root, "x-label") == ["bear", "lion", "<script>"]
    assert len(by_class(root, "rect", "bar-tonight")) == 3
    assert len(by_class(root, "rect", "bar-baseline")) == 3
    assert not list(root.iter(f"{NS}script"))


@pytest.mark.parametrize("details", [{}, {"histogram": {}}, {"histogram": None},
                                     {"histogram": {"values": [], "tonight": [], "baseline": []}}])
def test_no_histogram_says_no_data(details):
    record = comparison({}, feature="<camera>")
    record["details"] = details
    root = parse(plots.histogram_svg(record))
    assert root.get("class") == "emerald-histogram" and root.get("data-feature") == "<camera>"
    assert root.find(f"{NS}title") is not None
    assert texts(root, "no-data") == ["no data"]
    assert not by_class(root, "rect", "bar-tonight")


def test_control_characters_do_not_break_the_xml():
    parse(plots.histogram_svg(comparison(
        {"categories": ["a\x00b", "c\x1bd"], "tonight": [1, 0], "baseline": [0, 1]},
        feature="odd\x07name")))


@pytest.mark.parametrize("value, label", [(0.75, "0.75"), (1.333, "1.33"), (640, "640"),
                                          (307200, "307k"), (12_000_000, "12M"), (0, "0"),
                                          (2.5e9, "2.5G")])
def test_compact_tick_labels(value, label):
    assert plots.compact(value) == label


# ---------------------------------------------------------------- trends

def nights(effects, *, fired=(), acknowledged=()):
    return [{"night": f"2026-01-{i + 1:02d}", "effect": e, "fired": i in fired,
             "acknowledged": i in acknowledged} for i, e in enumerate(effects)]


def threshold_y(root: ET.Element) -> float:
    (line,) = by_class(root, "line", "threshold")
    assert line.get("y1") == line.get("y2") and line.get("stroke-dasharray")
    return float(line.get("y1"))


def test_trend_threshold_sits_at_its_value_on_a_scale_covering_it():
    # Small effects and a 0.3 threshold: the scale tops out at 0.4.
    root = parse(plots.trend_svg("aspect_ratio", nights([0.05, 0.3, 0.2]), 0.3))
    assert root.get("class") == "emerald-trend" and root.get("data-feature") == "aspect_ratio"
    assert root.find(f"{NS}title").text.startswith("aspect_ratio")
    height = plots.TREND_BOTTOM - plots.TREND_TOP
    assert threshold_y(root) == pytest.approx(plots.TREND_BOTTOM - height * 0.3 / 0.4, abs=0.1)
    markers = by_class(root, "circle", "marker")
    assert float(markers[1].get("cy")) == pytest.approx(threshold_y(root), abs=0.1)
    assert texts(root, "threshold-label") == ["min effect 0.30"]
    # An effect above 0.5: the scale is 0 to 1 (not the 0.8 that would cover 0.6).
    root = parse(plots.trend_svg("aspect_ratio", nights([0.05, 0.6]), 0.3))
    assert threshold_y(root) == pytest.approx(plots.TREND_BOTTOM - height * 0.3, abs=0.1)
    assert float(by_class(root, "circle", "marker")[1].get("cy")) == pytest.approx(
        plots.TREND_BOTTOM - height * 0.6, abs=0.1)


def test_trend_without_threshold_has_no_threshold_line():
    root = parse(plots.trend_svg("f", nights([0.1, 0.2]), None))
    assert not by_class(root, "line", "threshold")


def test_an_untested_night_is_a_gap_in_the_line():
    root = parse(plots.trend_svg("f", nights([0.1, 0.2, None, 0.1, 0.15]), 0.3))
    lines = by_class(root, "polyline", "trend-line")
    assert [len(line.get("points").split()) for line in lines] == [2, 2]
    assert len(by_class(root, "circle", "marker")) == 4
    assert len(texts(root, "x-label")) == 5                          # the night itself is shown
    unbroken = parse(plots.trend_svg("f", nights([0.1, 0.2, 0.3, 0.1]), 0.3))
    assert [len(line.get("points").split())
            for line in by_class(unbroken, "polyline", "trend-line")] == [4]


def test_fired_markers_are_red_and_acknowledged_ones_hollow_orange():
    root = parse(plots.trend_svg("f", nights([0.1, 0.7, 0.8, 0.75], fired={1, 2, 3},
                                             acknowledged={3}), 0.3))
    fired = by_class(root, "circle", "fired")
    assert len(fired) == 2 and all(c.get("fill") == plots.FIRED for c in fired)
    (ack,) = by_class(root, "circle", "acknowledged")
    assert ack.get("fill") == "#ffffff" and ack.get("stroke") == plots.ACKNOWLEDGED
    plain = [c for c in by_class(root, "circle", "marker") if c.get("class") == "marker"]
    assert len(plain) == 1 and plain[0].get("fill") != plots.FIRED


def test_single_night_still_has_a_marker():
    root = parse(plots.trend_svg("f", nights([0.12]), 0.1))
    assert len(by_class(root, "circle", "marker")) == 1
    assert not by_class(root, "polyline", "trend-line")
    assert texts(root, "x-label") == ["01-01"]


def test_no_nights_yet():
    root = parse(plots.trend_svg("<f>", [], 0.3))
    assert root.get("class") == "emerald-trend" and root.get("data-feature") == "<f>"
    assert texts(root, "no-data") == ["no nights yet"]


def test_many_nights_are_labelled_sparsely_the_latest_always():
    root = parse(plots.trend_svg("f", nights([0.1] * 30), 0.3))
    labels = texts(root, "x-label")
    assert 3 <= len(labels) <= 8 and labels[-1] == "01-30"
    xs = [float(e.get("x")) for e in by_class(root, "text", "x-label")]
    assert min(b - a for a, b in zip(xs, xs[1:])) >= 32                # no overlapping dates
    assert all(float(e.get("x")) <= plots.WIDTH - 14 for e in by_class(root, "text", "x-label"))


def test_trend_escapes_feature_and_nights():
    svg = plots.trend_svg("<script>", [{"night": "<b>night</b>", "effect": 0.2}], 0.3)
    assert "<script" not in svg and "<b>" not in svg
    root = parse(svg)
    assert root.get("data-feature") == "<script>"
    assert texts(root, "x-label") == ["<b>nigh\u2026"]


def test_crowded_long_categories_keep_what_tells_them_apart():
    names = [f"cam-{i:02d}-north-gate" for i in range(12)]
    root = parse(plots.histogram_svg(comparison(
        {"categories": names, "tonight": [1 / 12] * 12, "baseline": [1 / 12] * 12})))
    assert len(by_class(root, "rect", "bar-tonight")) == 12
    labels = texts(root, "x-label")
    assert 3 <= len(labels) < 12 and labels[0] == "\u202600\u2026"
    assert len(set(labels)) == len(labels)
    # The full name is still in each bar's tooltip.
    assert by_class(root, "rect", "bar-tonight")[0].find(f"{NS}title").text.startswith(
        "tonight, cam-00-north-gate")
