"""The parts every chart of :mod:`planner.charts` is built from: value formats, round ticks
(numbers and dates), the plot frame that maps data to pixels, axes, legends, tooltips.

Coordinates are written with two decimals, so the SVG text is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from html import escape as _html_escape

WIDTH, HEIGHT = 760, 400
"""Default chart size in pixels (the plot area plus axes; the legend adds rows below)."""

CHAR_WIDTH = 6.6
"""Approximate width of one character of the 12 px sans-serif font, pixels (for layout
only; SVG has no text metrics without a renderer)."""

MARGIN_TOP, MARGIN_RIGHT, MARGIN_BOTTOM = 36.0, 24.0, 48.0
LEGEND_ROW = 18.0
FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="12"'

Number = float | int
X = Number | date


def escape(text: object) -> str:
    """Text made safe for XML and HTML content and attribute values."""
    return _html_escape(str(text), quote=True)


def coord(value: float) -> str:
    """A coordinate, two decimals (no ``-0.00``)."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def is_date(value: object) -> bool:
    return isinstance(value, date)


def x_number(value: X) -> float:
    """An x value on a numeric axis: a date as its proleptic ordinal day."""
    if is_date(value):
        return float(value.toordinal())
    return float(value)


def finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def fmt_value(value: float, spec: str | None, step: float | None = None) -> str:
    """``value`` written in the value format ``spec`` (see the module docstring), with the
    decimals an axis step of ``step`` needs when the format is automatic."""
    if spec not in (None, "%", "$"):
        return format(value, spec)
    scale = 100.0 if spec == "%" else 1.0
    shown = value * scale
    if step is not None and step > 0:
        # Enough decimals to write every multiple of the step exactly (0.25 needs two).
        scaled = step * scale
        decimals = next(
            (d for d in range(11) if abs(round(scaled, d) - scaled) <= scaled * 1e-6), 10
        )
        if abs(shown) < step * scale * 1e-6:
            shown = 0.0
    else:
        decimals = 2 if spec is not None else _auto_decimals(shown)
    decimals = min(decimals, 10)
    text = f"{abs(shown):,.{decimals}f}" if spec == "$" else f"{abs(shown):.{decimals}f}"
    sign = "-" if shown < 0 and float(text.replace(",", "")) != 0.0 else ""
    if spec == "%":
        return f"{sign}{text}%"
    if spec == "$":
        return f"{sign}${text}"
    return f"{sign}{text}"


def _auto_decimals(value: float) -> int:
    if value == 0 or not math.isfinite(value):
        return 0
    return max(0, min(6, 3 - math.floor(math.log10(abs(value)))))


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """About ``count`` evenly spaced round ticks (steps of 1, 2, 2.5 or 5 times a power of
    ten) covering ``[low, high]``; the first is at most ``low`` and the last at least
    ``high``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need finite bounds, got {low!r} and {high!r}")
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))
    first = math.floor(low / step + 1e-9) * step
    ticks = []
    k = 0
    while True:
        tick = first + k * step
        ticks.append(0.0 if abs(tick) < step * 1e-9 else tick)
        if tick >= high - step * 1e-9:
            break
        k += 1
    return ticks


def date_ticks(low: int, high: int) -> list[tuple[float, str]]:
    """Round date ticks between ordinal days ``low`` and ``high``: years, months or days
    depending on the span; labels ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``."""
    start, end = date.fromordinal(low), date.fromordinal(high)
    span = high - low
    if span > 3 * 366:
        years = end.year - start.year + 1
        step = next(s for s in (1, 2, 5, 10, 20, 50, 100) if years / s <= 8)
        first = start.year if start.month == 1 and start.day == 1 else start.year + 1
        first = -(-first // step) * step
        return [
            (float(date(y, 1, 1).toordinal()), f"{y}") for y in range(first, end.year + 1, step)
        ]
    if span > 62:
        months = (end.year - start.year) * 12 + end.month - start.month + 1
        step = next(s for s in (1, 2, 3, 6, 12) if months / s <= 8)
        out = []
        index = start.year * 12 + start.month - 1 + (0 if start.day == 1 else 1)
        index = -(-index // step) * step
        while True:
            d = date(index // 12, index % 12 + 1, 1)
            if d > end:
                break
            out.append((float(d.toordinal()), f"{d.year}-{d.month:02d}"))
            index += step
        return out
    step = next(s for s in (1, 2, 5, 7, 10, 14) if span / s <= 8) if span > 0 else 1
    return [(float(day), date.fromordinal(day).isoformat()) for day in range(low, high + 1, step)]


class Frame:
    """The plot area of a chart and the maps from data to pixels."""

    def __init__(self, width: float, height: float, left: float, x_range, y_range):
        self.left, self.top = left, MARGIN_TOP
        self.right = width - MARGIN_RIGHT
        self.bottom = height - MARGIN_BOTTOM
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range

    def px(self, x: float) -> float:
        span = self.x1 - self.x0 or 1.0
        return self.left + (x - self.x0) / span * (self.right - self.left)

    def py(self, y: float) -> float:
        span = self.y1 - self.y0 or 1.0
        return self.bottom - (y - self.y0) / span * (self.bottom - self.top)


def svg_open(width: float, height: float, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{coord(width)}" height="{coord(height)}" '
        f'viewBox="0 0 {coord(width)} {coord(height)}" role="img" aria-label="{escape(title)}" {FONT}>',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{coord(width)}" height="{coord(height)}" fill="#ffffff"/>',
        f'<text x="{coord(width / 2)}" y="20" text-anchor="middle" font-size="14" '
        f'font-weight="bold">{escape(title)}</text>',
    ]


def draw_legend(entries: Sequence[tuple[str, str, str]], width: float, top: float) -> list[str]:
    """Legend rows from ``top``: each entry is (label, colour, shape ``line``, ``box``,
    ``dot`` or ``tick``), wrapped to the chart's width."""
    out: list[str] = []
    x, y = MARGIN_RIGHT, top + 12
    for label, colour, shape in entries:
        item = 26 + len(label) * CHAR_WIDTH + 16
        if x + item > width - MARGIN_RIGHT and x > MARGIN_RIGHT:
            x, y = MARGIN_RIGHT, y + LEGEND_ROW
        if shape == "line":
            out.append(
                f'<line x1="{coord(x)}" y1="{coord(y - 4)}" x2="{coord(x + 20)}" y2="{coord(y - 4)}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        elif shape == "box":
            out.append(
                f'<rect x="{coord(x + 4)}" y="{coord(y - 10)}" width="12" height="12" fill="{colour}"/>'
            )
        elif shape == "tick":
            out.append(
                f'<line x1="{coord(x + 10)}" y1="{coord(y - 11)}" x2="{coord(x + 10)}" y2="{coord(y + 3)}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        else:
            out.append(f'<circle cx="{coord(x + 10)}" cy="{coord(y - 4)}" r="4" fill="{colour}"/>')
        out.append(f'<text x="{coord(x + 26)}" y="{coord(y)}">{escape(label)}</text>')
        x += item
    return out


def legend_rows(labels: Sequence[str], width: float) -> int:
    rows, x = 1, MARGIN_RIGHT
    for label in labels:
        item = 26 + len(label) * CHAR_WIDTH + 16
        if x + item > width - MARGIN_RIGHT and x > MARGIN_RIGHT:
            rows, x = rows + 1, MARGIN_RIGHT
        x += item
    return rows if labels else 0


def axes(
    frame: Frame,
    x_ticks: Sequence[tuple[float, str]],
    y_ticks: Sequence[tuple[float, str]],
    x_label: str,
    y_label: str,
) -> list[str]:
    """Grid lines, tick labels, the axis lines and the axis titles."""
    out = []
    for y, label in y_ticks:
        py = frame.py(y)
        out.append(
            f'<line x1="{coord(frame.left)}" y1="{coord(py)}" x2="{coord(frame.right)}" y2="{coord(py)}" '
            'stroke="#e0e0e0"/>'
        )
        out.append(
            f'<text x="{coord(frame.left - 6)}" y="{coord(py + 4)}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
    for x, label in x_ticks:
        px = frame.px(x)
        out.append(
            f'<line x1="{coord(px)}" y1="{coord(frame.bottom)}" x2="{coord(px)}" '
            f'y2="{coord(frame.bottom + 5)}" stroke="#333333"/>'
        )
        out.append(
            f'<text x="{coord(px)}" y="{coord(frame.bottom + 18)}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    out.append(
        f'<line x1="{coord(frame.left)}" y1="{coord(frame.bottom)}" x2="{coord(frame.right)}" '
        f'y2="{coord(frame.bottom)}" stroke="#333333"/>'
    )
    out.append(
        f'<line x1="{coord(frame.left)}" y1="{coord(frame.top)}" x2="{coord(frame.left)}" '
        f'y2="{coord(frame.bottom)}" stroke="#333333"/>'
    )
    mid_x = (frame.left + frame.right) / 2
    out.append(
        f'<text x="{coord(mid_x)}" y="{coord(frame.bottom + 36)}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    mid_y = (frame.top + frame.bottom) / 2
    out.append(
        f'<text x="14" y="{coord(mid_y)}" text-anchor="middle" '
        f'transform="rotate(-90 14 {coord(mid_y)})">{escape(y_label)}</text>'
    )
    return out


def value_ticks(low: float, high: float, spec: str | None) -> list[tuple[float, str]]:
    ticks = nice_ticks(low, high)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else None
    return [(t, fmt_value(t, spec, step)) for t in ticks]


def x_axis(xs: Sequence[X], spec: str | None) -> tuple[tuple[float, float], list]:
    """The x range and ticks of a chart's x values (dates or numbers)."""
    if not xs:
        return (0.0, 1.0), [(0.0, "0"), (1.0, "1")]
    if all(is_date(x) for x in xs):
        days = [x.toordinal() for x in xs]
        low, high = min(days), max(days)
        if low == high:
            low, high = low - 1, high + 1
        return (float(low), float(high)), date_ticks(low, high)
    if any(is_date(x) for x in xs):
        raise ValueError("a chart's x values are all dates or all numbers, not a mix")
    values = [float(x) for x in xs if finite(float(x))]
    if not values:
        return (0.0, 1.0), [(0.0, "0"), (1.0, "1")]
    ticks = value_ticks(min(values), max(values), spec)
    return (ticks[0][0], ticks[-1][0]), ticks


def y_axis(values: Sequence[float], spec: str | None, include_zero: bool):
    usable = [v for v in values if finite(v)]
    if not usable:
        usable = [0.0, 1.0]
    low, high = min(usable), max(usable)
    if include_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    ticks = value_ticks(low, high, spec)
    return (ticks[0][0], ticks[-1][0]), ticks


def tooltip(*parts: str) -> str:
    return f"<title>{escape(': '.join(p for p in parts if p))}</title>"


def x_text(x: X, spec: str | None) -> str:
    """An x value as a tooltip writes it: a date (a datetime's day) or a number."""
    if isinstance(x, datetime):
        x = x.date()
    return x.isoformat() if is_date(x) else fmt_value(float(x), spec)


def paths(points: Sequence[tuple[float, float]], frame: Frame) -> list[str]:
    """SVG path data of a line through ``points``, broken at non-finite values."""
    runs: list[list[str]] = [[]]
    for x, y in points:
        if not (finite(x) and finite(y)):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(f"{coord(frame.px(x))},{coord(frame.py(y))}")
    return ["M" + " L".join(run) for run in runs if run]
