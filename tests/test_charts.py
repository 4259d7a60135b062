"""planner.charts: well-formed SVG, the expected series and points, escaped text, stable
output."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from planner.charts import (
    bar_chart,
    fmt_value,
    html_page,
    html_table,
    line_chart,
    nice_ticks,
    scatter_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def _series(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "series"]


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_line_chart_over_dates_has_each_series_and_its_markers():
    start = date(2020, 1, 1)
    days = [start + timedelta(days=i) for i in range(0, 400, 5)]
    series = {
        "monthly": [(d, 0.01 * math.sin(i / 5)) for i, d in enumerate(days)],
        "threshold <2%> & co": [(d, 0.02 * math.cos(i / 7)) for i, d in enumerate(days)],
    }
    markers = {"monthly": [date(2020, 2, 3), date(2020, 6, 1)], "threshold <2%> & co": []}
    svg = line_chart(
        series, title="Drift & markers", y_label="drift", markers=markers, y_format="%"
    )
    root = _parse(svg)
    groups = _series(root)
    assert [g.get("data-name") for g in groups] == list(series)
    assert len(list(groups[0].iter(f"{SVG}path"))) == 1
    circles = [c for c in groups[0].iter(f"{SVG}circle") if c.get("class") == "marker"]
    assert len(circles) == 2
    texts = _texts(root)
    assert "Drift & markers" in texts  # escaped in the source, read back as text
    assert "threshold <2%> & co" in texts
    assert "2020-01" in texts  # month ticks over a year
    assert "&amp;" in svg and "<2%>" not in svg


def test_line_chart_breaks_at_nan_and_keeps_a_lone_point():
    series = {"s": [(0, 1.0), (1, 2.0), (2, float("nan")), (3, 1.5), (4, float("nan")), (5, 1.0)]}
    root = _parse(line_chart(series, title="gaps"))
    (group,) = _series(root)
    assert len(list(group.iter(f"{SVG}path"))) == 3  # [0-1], [3], [5]
    assert len(list(group.iter(f"{SVG}circle"))) == 2  # the two lone points


def test_line_chart_rejects_markers_of_an_unknown_series():
    with pytest.raises(ValueError, match="not in the chart"):
        line_chart({"a": [(0, 1.0)]}, title="t", markers={"b": [0]})


def test_scatter_chart_points_lines_and_highlight():
    frontier = [(0.012, 0.0), (0.008, 150.0), (0.004, 900.0), (0.001, 4000.0)]
    rates = [(0.004, 700.0), (0.004, 900.0)]
    svg = scatter_chart(
        {"TE value": frontier, "tax rates": rates},
        title="Tax against tracking error",
        x_label="tracking error after",
        y_label="tax",
        highlight=(0.004, 900.0, "current <setting>"),
        point_labels={"tax rates": ["24%", "37%"]},
        connect={"TE value"},
        x_format="%",
        y_format="$",
    )
    root = _parse(svg)
    groups = {g.get("data-name"): g for g in _series(root)}
    assert len([c for c in groups["TE value"].iter(f"{SVG}circle")]) == 4
    assert len(list(groups["TE value"].iter(f"{SVG}path"))) == 1
    assert len(list(groups["tax rates"].iter(f"{SVG}path"))) == 0
    assert len([c for c in groups["tax rates"].iter(f"{SVG}circle")]) == 2
    highlights = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "highlight"]
    assert len(highlights) == 1
    texts = _texts(root)
    assert "current <setting>" in texts and "37%" in texts
    assert "$4,000" in texts  # a y tick in dollars


def test_scatter_chart_checks_point_labels():
    with pytest.raises(ValueError, match="2 points"):
        scatter_chart({"a": [(0, 1), (1, 2)]}, title="t", point_labels={"a": ["x"]})


def test_bar_chart_groups_and_reference():
    classes = ["US_EQUITY", "INTL & EM", "CASH"]
    svg = bar_chart(
        classes,
        {"before": [0.52, 0.18, 0.30], "after": [0.45, 0.20, -0.01]},
        title="Class weights",
        reference={"target": [0.45, 0.20, 0.02]},
        value_format=".1%",
    )
    root = _parse(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(bars) == 6
    refs = [r for r in root.iter(f"{SVG}line") if r.get("class") == "reference"]
    assert len(refs) == 3
    texts = _texts(root)
    assert "INTL & EM" in texts and "-1.0%" in texts and "target" in texts
    negative = bars[5]
    assert float(negative.get("width")) > 0


def test_bar_chart_checks_lengths():
    with pytest.raises(ValueError, match="2 values for 3 categories"):
        bar_chart(["a", "b", "c"], {"x": [1, 2]}, title="t")


def test_output_is_deterministic_and_page_is_self_contained():
    series = {"a": [(0.1, 1.0), (0.2, 3.0)]}
    one = scatter_chart(series, title="t", highlight=(0.1, 1.0, "now"))
    two = scatter_chart(dict(series), title="t", highlight=(0.1, 1.0, "now"))
    assert one == two
    page = html_page("Report <x>", [one, html_table(["name", "value"], [["a&b", "1.00"]])])
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "Report &lt;x&gt;" in page and "a&amp;b" in page


def test_ticks_and_formats():
    assert nice_ticks(0.0, 0.013) == [0.0, 0.005, 0.01, 0.015]
    ticks = nice_ticks(-3.0, 1234.0)
    assert ticks[0] <= -3.0 and ticks[-1] >= 1234.0 and len(ticks) <= 8
    assert fmt_value(0.0125, "%", 0.0025) == "1.25%"
    assert fmt_value(-1234.5, "$", 500.0) == "-$1,234"
    assert fmt_value(-1e-19, None, 0.1) == "0.0"
    assert fmt_value(0.5, ".1%") == "50.0%"
