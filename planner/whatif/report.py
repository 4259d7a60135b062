"""The files of ``rebalance whatif``: ``whatif.csv`` (one row per scenario, fixed number
formats), ``whatif.html`` (self-contained: tax against tracking error with the current
setting marked, and the table) and ``top_bracket.csv``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from planner.charts import escape, fmt_value, html_page, html_table, scatter_chart
from planner.io.write import fixed, text_table, write_csv
from planner.whatif.sweep import COLUMNS, SWEEPS, WhatIf

TOP_BRACKET_COLUMNS: dict[str, int | None] = {
    "account_id": None,
    "model": None,
    "household_id": None,
    "st_rate": 4,
    "lt_rate": 4,
    "value": 2,
    "unrealized_st": 2,
    "unrealized_lt": 2,
    "st_gain_lots": None,
    "embedded_tax": 2,
    "embedded_tax_pct": 6,
}
"""Columns of ``top_bracket.csv`` and the decimals of each number column."""

SWEEP_TITLES: dict[str, str] = {
    "te_value": "tracking-error value",
    "tax_rate": "tax rates",
    "gain_budget": "gain budget",
    "rebalance_to": "rebalance to",
    "wait": "wait (prices held)",
}


def write_fixed_csv(path: Path, frame: pd.DataFrame, decimals: dict[str, int | None]) -> None:
    """``frame``'s ``decimals`` columns as CSV: numbers with their fixed decimals (NaN
    empty), integers and booleans as written, text quoted as the csv module quotes and
    guarded against spreadsheet formulas."""
    frame = frame[list(decimals)]
    text = text_table(frame.astype({c: "string" for c, d in decimals.items() if d is None}))
    columns = [
        fixed(frame[c].to_numpy(dtype=float), d) if d is not None else text.column(c)
        for c, d in decimals.items()
    ]
    free = {c for c, d in decimals.items() if d is None}
    write_csv(path, pa.table(columns, names=list(decimals)), free)


def whatif_csv(path: Path, result: WhatIf) -> None:
    """``whatif.csv``: the rows in their order (current setting, then each sweep's values
    ascending)."""
    write_fixed_csv(path, result.rows, COLUMNS)


def top_bracket_csv(path: Path, frame: pd.DataFrame) -> None:
    """``top_bracket.csv``: largest embedded tax first."""
    if frame.empty:
        frame = pd.DataFrame({c: pd.Series(dtype=float) for c in TOP_BRACKET_COLUMNS})
    write_fixed_csv(path, frame, TOP_BRACKET_COLUMNS)


def tax_te_chart(result: WhatIf) -> str:
    """Tax against tracking error after, one series per sweep (the tracking-error frontier
    drawn as a line), the current setting marked. Scenarios that land on the same point
    share it, their labels joined."""
    rows = result.rows[result.rows["status"] == "optimal"]
    series, labels = {}, {}
    for sweep in SWEEPS:
        part = rows[rows["sweep"] == sweep]
        if part.empty:
            continue
        points: dict[tuple[float, float], list[str]] = {}
        for row in part.itertuples():
            key = (round(float(row.te_after), 7), round(float(row.est_tax), 2))
            # The bracket alone on the chart (NIIT and state rate are the same in each).
            label = str(row.scenario).split(" ")[0] if sweep == "tax_rate" else str(row.scenario)
            points.setdefault(key, []).append(label)
        series[SWEEP_TITLES[sweep]] = list(points)
        labels[SWEEP_TITLES[sweep]] = [", ".join(v) for v in points.values()]
    current = rows[rows["current"]]
    highlight = None
    if not current.empty:
        c = current.iloc[0]
        highlight = (float(c["te_after"]), float(c["est_tax"]), "current setting")
    return scatter_chart(
        series,
        title=f"Tax against tracking error: account {result.account_id}",
        x_label="tracking error after the plan (annualised)",
        y_label="estimated tax of the plan ($, exact netting)",
        highlight=highlight,
        point_labels=labels,
        connect={SWEEP_TITLES["te_value"]},
        x_format="%",
        y_format="$",
    )


def _cells(row) -> list[str]:
    planned = row.status == "optimal"

    def money(v: float) -> str:
        return fmt_value(v, "$", 0.01) if planned else ""

    return [
        row.sweep,
        row.scenario,
        row.decision,
        row.as_of,
        f"{row.st_rate:.1%}/{row.lt_rate:.1%}",
        str(row.orders),
        f"{row.turnover:.1%}" if planned else "",
        money(row.realized_st),
        money(row.realized_lt),
        money(row.est_tax),
        money(row.est_cost),
        f"{row.te_after:.2%}" if planned else "",
        row.status,
    ]


def whatif_html(result: WhatIf) -> str:
    """The self-contained page: what the account is, the chart, the table, the notes."""
    rows = result.rows
    current = rows[rows["current"]].iloc[0]
    facts = (
        f"<p>Account <b>{escape(result.account_id)}</b>: model {escape(result.model)}, "
        f"{escape(result.registration)}, value {escape(fmt_value(result.value, '$', 1))}, as of "
        f"{result.as_of.isoformat()}. Current setting: tracking-error value "
        f"{current['te_value']:g}, rates {current['st_rate']:.1%} short-term / "
        f"{current['lt_rate']:.1%} long-term, gain budget "
        + (
            "none"
            if pd.isna(current["gain_budget"])
            else escape(fmt_value(float(current["gain_budget"]), "$", 1))
        )
        + f"; tracking error before {current['te_before']:.2%}.</p>"
    )
    columns = [
        "sweep",
        "scenario",
        "decision",
        "as of",
        "ST/LT rate",
        "orders",
        "turnover",
        "real. ST",
        "real. LT",
        "est. tax",
        "est. cost",
        "TE after",
        "status",
    ]
    notes = (
        '<p class="note">Each scenario is the planner with one setting changed from the '
        "current one. Tax is the plan's exact netted tax for its return's year (negative: "
        "losses that save tax); cost is the estimated spread and commission. Tax-rate rows "
        "are a federal bracket (ordinary/long-term) plus the net investment income tax and "
        "the state rate when chosen. Wait rows plan the same decision later with prices "
        "held: lots may have turned long-term and wash-sale windows closed.</p>"
    )
    return html_page(
        f"What-if: account {result.account_id}",
        [
            facts,
            f"<figure>{tax_te_chart(result)}</figure>",
            html_table(columns, [_cells(r) for r in rows.itertuples()]),
            notes,
        ],
    )
