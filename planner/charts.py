"""Inline-SVG charts for self-contained HTML reports: no JavaScript, no network, no
dependencies.

Each function returns one ``<svg>`` element as a string, to embed in a page (see
:func:`html_page`). Output is deterministic: coordinates are written with two decimals,
series keep the order they are given in, colours follow that order, and every text is
XML-escaped. A point's ``<title>`` is its tooltip in a browser.

Value formats (``x_format``, ``y_format``, ``value_format``): ``None`` picks fixed decimals
from the tick step; ``"%"`` the same in percent (0.05 -> ``5%``); ``"$"`` in dollars with
thousands separators; anything else is a Python format spec (``".2%"``, ``",.0f"``).
X values are numbers or ``datetime.date`` (``datetime`` and ``pandas.Timestamp`` too);
a chart's x values are all one or the other. ``NaN`` y values leave a gap in a line.

Signatures are stable: other modules (the what-if, the simulator, the blotter report)
call them. Add new functions rather than change these.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date

from planner.chart_axes import (
    CHAR_WIDTH,
    HEIGHT,
    LEGEND_ROW,
    MARGIN_BOTTOM,
    MARGIN_TOP,
    WIDTH,
    Frame,
    X,
    axes,
    coord,
    draw_legend,
    escape,
    finite,
    fmt_value,
    is_date,
    legend_rows,
    nice_ticks,
    paths,
    svg_open,
    tooltip,
    x_axis,
    x_number,
    x_text,
    y_axis,
)

PALETTE: tuple[str, ...] = (
    "#0072b2",  # blue
    "#e69f00",  # orange
    "#009e73",  # bluish green
    "#d55e00",  # vermillion
    "#cc79a7",  # reddish purple
    "#56b4e9",  # sky blue
    "#f0e442",  # yellow
    "#000000",  # black
    "#999999",  # grey
    "#8c564b",  # brown
    "#6a3d9a",  # purple
    "#999933",  # olive
)
"""Series colours in order, fixed (no randomness): the eight Okabe-Ito colours (readable by
most colour-blind readers), then grey, brown, purple and olive, twelve distinct colours so
that the twelve default workflows of ``rebalance simulate`` each have their own; they repeat
after twelve series."""

HIGHLIGHT = "#d62728"
"""Colour of the highlighted point of :func:`scatter_chart`."""

__all__ = [
    "PALETTE",
    "HIGHLIGHT",
    "escape",
    "fmt_value",
    "nice_ticks",
    "line_chart",
    "scatter_chart",
    "bar_chart",
    "html_table",
    "html_page",
]


def _open(width: float, height: float, title: str, legend: list) -> list[str]:
    """An ``<svg>`` opened for a plot ``height`` tall with its legend's rows below it."""
    rows = legend_rows([label for label, _, _ in legend], width)
    return svg_open(width, height + rows * LEGEND_ROW + 6, title)


def line_chart(
    series: Mapping[str, Sequence[tuple[X, float]]],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    markers: Mapping[str, Sequence[X]] | None = None,
    marker_label: str = "",
    x_format: str | None = None,
    y_format: str | None = None,
    include_zero: bool = False,
    width: float = WIDTH,
    height: float = HEIGHT,
) -> str:
    """A line chart of named series of ``(x, y)`` points, drawn in the order given.

    ``markers`` maps a series name to x values to mark with a dot on that series (e.g. its
    rebalance days; a marker between points sits on the last point at or before it, one
    before the first point is dropped); ``marker_label`` names them in the legend.
    ``include_zero`` keeps 0 on the y axis.
    """
    markers = markers or {}
    unknown = sorted(set(markers) - set(series))
    if unknown:
        raise ValueError(f"markers for series not in the chart: {', '.join(unknown)}")
    xs = [x for points in series.values() for x, _ in points]
    (x0, x1), x_ticks = x_axis(xs, x_format)
    (y0, y1), y_ticks = y_axis(
        [float(y) for points in series.values() for _, y in points], y_format, include_zero
    )
    y_tick_texts = [label for _, label in y_ticks]
    left = 30.0 + max(len(t) for t in y_tick_texts) * CHAR_WIDTH + 10
    names = list(series)
    legend = [(n, PALETTE[i % len(PALETTE)], "line") for i, n in enumerate(names)]
    if any(markers.values()):
        legend.append((marker_label or "markers", "#333333", "dot"))
    frame = Frame(width, height, left, (x0, x1), (y0, y1))
    out = _open(width, height, title, legend)
    out += axes(frame, x_ticks, y_ticks, x_label, y_label)
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        points = [(x_number(x), float(y)) for x, y in series[name]]
        out.append(f'<g class="series" data-name="{escape(name)}">')
        for d in paths(points, frame):
            out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
            if " L" not in d:  # a point with gaps on both sides: a dot, or it would not show
                cx, cy = d[1:].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="1.6" fill="{colour}"/>')
        marks = sorted(x_number(m) for m in markers.get(name, ()))
        ordered = sorted((x, y) for x, y in points if finite(x) and finite(y))
        k = -1
        for m in marks:
            while k + 1 < len(ordered) and ordered[k + 1][0] <= m:
                k += 1
            if k < 0:
                continue
            x, y = ordered[k]
            shown = date.fromordinal(int(m)) if xs and is_date(xs[0]) else m
            out.append(
                f'<circle class="marker" cx="{coord(frame.px(x))}" cy="{coord(frame.py(y))}" r="3" '
                f'fill="{colour}" stroke="#333333" stroke-width="0.8">'
                f"{tooltip(name, marker_label, x_text(shown, x_format))}</circle>"
            )
        out.append("</g>")
    out += draw_legend(legend, width, height - 4)
    out.append("</svg>")
    return "\n".join(out)


def scatter_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    highlight: tuple[float, float, str] | None = None,
    point_labels: Mapping[str, Sequence[str]] | None = None,
    connect: Collection[str] = (),
    x_format: str | None = None,
    y_format: str | None = None,
    include_zero: bool = False,
    width: float = WIDTH,
    height: float = HEIGHT,
) -> str:
    """A scatter chart of named series of ``(x, y)`` points, with the series named in
    ``connect`` also drawn as lines (in the order given) and one ``highlight`` point
    ``(x, y, label)`` drawn large in red and labelled. ``point_labels`` gives a series a
    short label per point, written beside it and in its tooltip."""
    point_labels = point_labels or {}
    for name, labels in point_labels.items():
        if name not in series:
            raise ValueError(f"point labels for a series not in the chart: {name}")
        if len(labels) != len(series[name]):
            raise ValueError(
                f"series {name}: {len(labels)} point labels for {len(series[name])} points"
            )
    xs = [float(x) for points in series.values() for x, _ in points]
    ys = [float(y) for points in series.values() for _, y in points]
    if highlight is not None:
        xs.append(float(highlight[0]))
        ys.append(float(highlight[1]))
    (x0, x1), x_ticks = x_axis(xs, x_format)
    (y0, y1), y_ticks = y_axis(ys, y_format, include_zero)
    left = 30.0 + max(len(label) for _, label in y_ticks) * CHAR_WIDTH + 10
    names = list(series)
    legend = [
        (n, PALETTE[i % len(PALETTE)], "line" if n in connect else "dot")
        for i, n in enumerate(names)
    ]
    if highlight is not None:
        legend.append((highlight[2], HIGHLIGHT, "dot"))
    frame = Frame(width, height, left, (x0, x1), (y0, y1))
    out = _open(width, height, title, legend)
    out += axes(frame, x_ticks, y_ticks, x_label, y_label)
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        points = [(float(x), float(y)) for x, y in series[name]]
        labels = point_labels.get(name)
        out.append(f'<g class="series" data-name="{escape(name)}">')
        if name in connect:
            for d in paths(points, frame):
                out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.4"/>')
        for j, (x, y) in enumerate(points):
            if not (finite(x) and finite(y)):
                continue
            label = labels[j] if labels else ""
            tip = tooltip(
                name, label, f"{fmt_value(x, x_format or None)}, {fmt_value(y, y_format)}"
            )
            px, py = frame.px(x), frame.py(y)
            out.append(
                f'<circle class="point" cx="{coord(px)}" cy="{coord(py)}" r="3.5" '
                f'fill="{colour}">{tip}</circle>'
            )
            if label:
                out.append(
                    f'<text x="{coord(px + 6)}" y="{coord(py - 6)}" font-size="10" '
                    f'fill="{colour}">{escape(label)}</text>'
                )
        out.append("</g>")
    if highlight is not None:
        hx, hy, hlabel = float(highlight[0]), float(highlight[1]), highlight[2]
        if finite(hx) and finite(hy):
            px, py = frame.px(hx), frame.py(hy)
            tip = tooltip(hlabel, f"{fmt_value(hx, x_format)}, {fmt_value(hy, y_format)}")
            out.append(
                f'<circle class="highlight" cx="{coord(px)}" cy="{coord(py)}" r="7" fill="none" '
                f'stroke="{HIGHLIGHT}" stroke-width="2.5">{tip}</circle>'
            )
            out.append(
                f'<text x="{coord(px + 10)}" y="{coord(py + 14)}" fill="{HIGHLIGHT}" '
                f'font-weight="bold">{escape(hlabel)}</text>'
            )
    out += draw_legend(legend, width, height - 4)
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(
    categories: Sequence[str],
    groups: Mapping[str, Sequence[float]],
    *,
    title: str,
    value_label: str = "",
    reference: Mapping[str, Sequence[float]] | None = None,
    value_format: str | None = None,
    width: float = WIDTH,
) -> str:
    """A grouped horizontal bar chart: one row per category, one bar per group in the
    order given (e.g. ``{"before": ..., "after": ...}`` class weights), each value written
    at its bar's end. ``reference`` draws values as a black tick across each category's
    bars (e.g. ``{"target": ...}``). The height follows from the number of bars."""
    reference = reference or {}
    for name, values in [*groups.items(), *reference.items()]:
        if len(values) != len(categories):
            raise ValueError(f"{name}: {len(values)} values for {len(categories)} categories")
    if len(reference) > 1:
        raise ValueError("bar_chart draws at most one reference series")
    values = [float(v) for vs in [*groups.values(), *reference.values()] for v in vs]
    (v0, v1), ticks = y_axis(values, value_format, include_zero=True)
    bar, gap = 14.0, 10.0
    group_height = max(len(groups), 1) * bar + gap
    plot = max(len(categories), 1) * group_height
    left = 20.0 + max((len(c) for c in categories), default=4) * CHAR_WIDTH
    names = list(groups)
    legend = [(n, PALETTE[i % len(PALETTE)], "box") for i, n in enumerate(names)]
    legend += [(n, "#000000", "tick") for n in reference]
    height = MARGIN_TOP + plot + MARGIN_BOTTOM
    frame = Frame(width, height, left, (v0, v1), (0.0, plot))
    out = _open(width, height, title, legend)
    for tick, label in ticks:
        px = frame.px(tick)
        out.append(
            f'<line x1="{coord(px)}" y1="{coord(frame.top)}" x2="{coord(px)}" y2="{coord(frame.bottom)}" '
            'stroke="#e0e0e0"/>'
        )
        out.append(
            f'<text x="{coord(px)}" y="{coord(frame.bottom + 18)}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    zero = frame.px(0.0)
    step = ticks[1][0] - ticks[0][0] if len(ticks) > 1 else None
    for c, category in enumerate(categories):
        top = frame.top + c * group_height + gap / 2
        out.append(
            f'<text x="{coord(frame.left - 6)}" y="{coord(top + group_height / 2)}" '
            f'text-anchor="end">{escape(category)}</text>'
        )
        for g, name in enumerate(names):
            value = float(groups[name][c])
            if not finite(value):
                continue
            end = frame.px(value)
            x, w = min(zero, end), abs(end - zero)
            y = top + g * bar
            text = fmt_value(value, value_format, None if value_format else step)
            out.append(
                f'<rect class="bar" x="{coord(x)}" y="{coord(y + 1)}" width="{coord(w)}" '
                f'height="{coord(bar - 2)}" fill="{PALETTE[g % len(PALETTE)]}">'
                f"{tooltip(category, name, text)}</rect>"
            )
            anchor, tx = ("start", end + 3) if value >= 0 else ("end", end - 3)
            out.append(
                f'<text x="{coord(tx)}" y="{coord(y + bar - 3)}" font-size="10" '
                f'text-anchor="{anchor}">{escape(text)}</text>'
            )
        for name, ref_values in reference.items():
            value = float(ref_values[c])
            if not finite(value):
                continue
            px = frame.px(value)
            text = fmt_value(value, value_format, None if value_format else step)
            out.append(
                f'<line class="reference" x1="{coord(px)}" y1="{coord(top - 2)}" x2="{coord(px)}" '
                f'y2="{coord(top + len(names) * bar + 2)}" stroke="#000000" stroke-width="2">'
                f"{tooltip(category, name, text)}</line>"
            )
    out.append(
        f'<line x1="{coord(zero)}" y1="{coord(frame.top)}" x2="{coord(zero)}" y2="{coord(frame.bottom)}" '
        'stroke="#333333"/>'
    )
    out.append(
        f'<text x="{coord((frame.left + frame.right) / 2)}" y="{coord(frame.bottom + 36)}" '
        f'text-anchor="middle">{escape(value_label)}</text>'
    )
    out += draw_legend(legend, width, height - 4)
    out.append("</svg>")
    return "\n".join(out)


_STYLE = (
    "body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1100px}"
    "h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
    "table{border-collapse:collapse;font-size:12px}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}"
    "th{background:#f2f2f2}td.text,th.text{text-align:left}"
    "figure{margin:12px 0}p.note{font-size:12px;color:#555}"
)


def html_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table of already formatted cells (escaped here); a column whose cells are
    not all numbers-looking is left-aligned."""

    def numeric(cell: object) -> bool:
        text = str(cell).replace(",", "").replace("$", "").replace("%", "").strip()
        try:
            float(text)
        except ValueError:
            return text == ""
        return True

    left = [not all(numeric(r[i]) for r in rows) for i in range(len(columns))]
    head = "".join(
        f'<th class="{"text" if left[i] else "num"}">{escape(c)}</th>'
        for i, c in enumerate(columns)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"text" if left[i] else "num"}">{escape(cell)}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_page(title: str, sections: Sequence[str]) -> str:
    """A self-contained HTML page (inline style, no script, no external resource) with an
    ``<h1>`` title and the given HTML fragments (charts, tables, paragraphs) in order."""
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )
