"""The simulation's files: ``metrics.csv``, ``daily.csv``, ``trade_log.csv`` (fixed number
formats, sorted rows) and ``report.html`` (self-contained, inline SVG from
:mod:`planner.charts`, no script).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from planner import charts
from planner.io.write import fixed
from planner.simulate.engine import Setup, WorkflowRun
from planner.simulate.metrics import abs_drift

MONEY_COLUMNS = frozenset(
    {
        "costs",
        "taxes_paid",
        "realized_st",
        "realized_lt",
        "pre_tax_value",
        "after_tax_value",
        "liquidation_value",
        "value",
        "cost",
        "cum_costs",
        "cum_taxes_paid",
        "tax_owed",
    }
)
"""Columns in dollars: written with 2 decimals."""
PRICE_COLUMNS = frozenset({"price"})
"""Dollars per share: 4 decimals."""
SHARE_COLUMNS = frozenset({"shares"})
"""Share counts: 6 decimals."""
WEIGHT_DECIMALS = 6
"""Weights, drifts, returns and other fractions: 6 decimals."""

TRADE_COLUMNS = (
    "workflow",
    "date",
    "mode",
    "symbol",
    "side",
    "shares",
    "price",
    "value",
    "cost",
    "realized_st",
    "realized_lt",
    "reason",
)


def _decimals(column: str) -> int:
    if column in MONEY_COLUMNS:
        return 2
    if column in PRICE_COLUMNS:
        return 4
    if column in SHARE_COLUMNS:
        return 6
    return WEIGHT_DECIMALS


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """Every float column as fixed-format text (dollars 2 decimals, prices 4, shares and
    fractions 6); integers and booleans as they are; a text cell a spreadsheet would
    read as a formula gets a leading ``'`` (as the plan files do)."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_float_dtype(values):
            out[column] = fixed(values.to_numpy(), _decimals(column)).to_pylist()
        elif pd.api.types.is_bool_dtype(values):
            out[column] = values.map({True: "true", False: "false"})
        elif pd.api.types.is_integer_dtype(values):
            out[column] = values.astype(str)
        else:
            text = values.astype(str)
            out[column] = text.where(~text.str.match(r"^[=+\-@\t\r]"), "'" + text)
    return out


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """A formatted frame as CSV (minimal quoting, ``\\n`` line ends)."""
    frame.to_csv(path, index=False, lineterminator="\n")


def daily_frame(s: Setup, runs: list[WorkflowRun]) -> pd.DataFrame:
    """``daily.csv``: one row per workflow and close (workflows in the order run, dates
    ascending): pre-trade class weights ``w_<CLASS>``, the largest absolute drift, whether
    it traded, the post-trade value, cumulative costs and taxes paid, the tax owed and
    the after-tax value (value less tax owed less taxes paid from outside)."""
    dates = [d.date().isoformat() for d in s.market.prices.index]
    parts = []
    for run in runs:
        path = run.path
        frame = pd.DataFrame({"date": dates, "workflow": run.label})
        for k, c in enumerate(s.classes):
            frame[f"w_{c}"] = path.weights[:, k]
        frame["max_abs_drift"] = abs_drift(s, run)
        frame["traded"] = path.traded
        frame["value"] = path.value
        frame["cum_costs"] = path.costs
        frame["cum_taxes_paid"] = path.taxes
        frame["tax_owed"] = path.owed
        external = path.taxes if s.taxes_from == "external" else 0.0
        frame["after_tax_value"] = path.value - path.owed - external
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def trade_frame(runs: list[WorkflowRun]) -> pd.DataFrame:
    """``trade_log.csv``: every order, by workflow (in the order run), date, side and
    symbol; ``realized_st``/``realized_lt`` are a sale's gains as the planner booked
    them (before any wash-sale adjustment, which the planner's look-back prevents)."""
    rows = []
    for order, run in enumerate(runs):
        for t in run.trades:
            rows.append({**t, "date": t["date"].isoformat(), "_order": order})
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TRADE_COLUMNS})
    frame = pd.DataFrame(rows)
    frame = frame.sort_values(["_order", "date", "side", "symbol"], kind="stable")
    return frame[list(TRADE_COLUMNS)].reset_index(drop=True)


# -- report.html ---------------------------------------------------------------------------

SAMPLE_POINTS = 600
"""Points per line in the report's charts (a long run is sampled evenly, trade days kept)."""


def _sampled(n: int, keep: np.ndarray) -> np.ndarray:
    """Indices of about :data:`SAMPLE_POINTS` evenly spaced days plus the days ``keep``."""
    step = max(1, n // SAMPLE_POINTS)
    return np.union1d(np.arange(0, n, step), np.r_[np.flatnonzero(keep), n - 1])


def report_html(s: Setup, runs: list[WorkflowRun], metrics: pd.DataFrame, title: str) -> str:
    """The self-contained report: the metrics table, then drift over time with rebalance
    markers, cumulative taxes and costs, and after-tax wealth, one line per workflow."""
    dates = [d.date() for d in s.market.prices.index]
    n = len(dates)
    drift, markers, taxes_costs, wealth = {}, {}, {}, {}
    for run in runs:
        idx = _sampled(n, run.path.traded)
        d = abs_drift(s, run)
        drift[run.label] = [(dates[i], float(d[i])) for i in idx]
        markers[run.label] = [dates[i] for i in np.flatnonzero(run.path.traded)]
        paid = run.path.costs + run.path.taxes
        taxes_costs[run.label] = [(dates[i], float(paid[i])) for i in idx]
        external = run.path.taxes if s.taxes_from == "external" else 0.0
        after = run.path.value - run.path.owed - external
        wealth[run.label] = [(dates[i], float(after[i])) for i in idx]
    shown = metrics.copy()
    columns = list(shown.columns)
    cells = formatted(shown).to_numpy().tolist()
    sections = [
        f'<p class="note">{charts.escape(_conventions(s))}</p>',
        charts.html_table(columns, cells),
        charts.line_chart(
            drift,
            title="Largest absolute class drift at each close (before trading)",
            x_label="date",
            y_label="drift",
            markers=markers,
            marker_label="rebalance",
            y_format="%",
            include_zero=True,
        ),
        charts.line_chart(
            taxes_costs,
            title="Cumulative taxes paid and trading costs",
            x_label="date",
            y_label="dollars",
            y_format="$",
            include_zero=True,
        ),
        charts.line_chart(
            wealth,
            title="After-tax wealth (value less tax owed and taxes paid from outside)",
            x_label="date",
            y_label="dollars",
            y_format="$",
        ),
    ]
    failures = [
        (run.label, day.isoformat(), kind, text) for run in runs for day, kind, text in run.failures
    ]
    if failures:
        sections.append("<h2>Plans that failed (the day kept its holdings)</h2>")
        sections.append(charts.html_table(["workflow", "date", "error", "message"], failures))
    return charts.html_page(title, sections)


def _conventions(s: Setup) -> str:
    account = s.portfolio.account
    days = s.market.prices.index
    return (
        f"{account.registration} account, {', '.join(s.symbols)}, "
        f"{days[0].date()} to {days[-1].date()} ({len(days)} closes). Bought at target at the "
        "first close; drift measured at each close before trading; a trigger trades at that "
        "close; calendar reviews on the first trading day of their period; dividends in the "
        f"adjusted prices; taxes paid {'from outside' if s.taxes_from == 'external' else 'from the account'} "
        "the first trading day after each year closes."
    )


def writers(
    s: Setup, runs: list[WorkflowRun], metrics: pd.DataFrame, title: str
) -> dict[str, Callable[[Path], None]]:
    """File name -> writer of each output file (for :class:`planner.io.OutputFolder`)."""
    frames = {
        "metrics.csv": formatted(metrics),
        "daily.csv": formatted(daily_frame(s, runs)),
        "trade_log.csv": formatted(trade_frame(runs)),
    }
    html = report_html(s, runs, metrics, title)
    out: dict[str, Callable[[Path], None]] = {
        name: (lambda path, f=frame: write_csv(path, f)) for name, frame in frames.items()
    }
    out["report.html"] = lambda path: path.write_text(html, encoding="utf-8")
    return out
