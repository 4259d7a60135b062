"""The tax year of each return around a plan: what one account's sales add to its return's
tax, the notes a reviewer needs about them, and the per-return table (``returns.csv``).

An account's ``est_tax`` is the exact increment of its return's year-end capital-gains tax
(Schedule D netting of the year to date, the carried-in losses, the accounts of the return
planned before it in the run, and its own sales); the increments of a return's accounts add
up to its tax after the plan less its tax before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from planner import tax
from planner.domain import Book

ANNIVERSARY_NOTE_DAYS = 60
"""A short-term sale of a gain lot that turns long-term within this many days is noted."""


@dataclass(frozen=True)
class AccountTax:
    """What one account's sales add to its return's year, dollars: the tax (negative: a
    saving), and the net loss carried forward to next year (ST plus LT)."""

    est_tax: float
    carryforward_added: float


def account_tax(
    year: tax.YearSoFar | None, st_gain: float, lt_gain: float, st_rate: float, lt_rate: float
) -> AccountTax:
    """The increment an account's realised ``st_gain`` and ``lt_gain`` cause in its return's
    year ``year`` (``None``: not taxable, nothing)."""
    if year is None:
        return AccountTax(0.0, 0.0)
    before, after = year.netting(), year.netting(st_gain, lt_gain)
    carried = (after.carryforward_st + after.carryforward_lt) - (
        before.carryforward_st + before.carryforward_lt
    )
    return AccountTax(year.increment(st_gain, lt_gain, st_rate, lt_rate), carried)


def anniversary_notes(
    year: tax.YearSoFar | None,
    st_gain: float,
    lt_gain: float,
    st_rate: float,
    lt_rate: float,
    sold: Mapping[str, np.ndarray],
) -> list[str]:
    """A note for the short-term gain lots sold that turn long-term within
    :data:`ANNIVERSARY_NOTE_DAYS` days, with the tax waiting would save (the year's exact
    tax with those gains long-term instead, the rest of the plan unchanged).

    ``sold`` has an array per field of the lots sold: ``symbol``, ``lot_id``, ``acquired``
    (datetime64), ``term`` (``ST``/``LT``), ``realized_gain`` (dollars) and
    ``days_to_long_term``."""
    if year is None or not len(sold.get("symbol", ())):
        return []
    soon = (
        (sold["term"] == "ST")
        & (sold["realized_gain"] > 0)
        & (sold["days_to_long_term"] <= ANNIVERSARY_NOTE_DAYS)
    )
    if not soon.any():
        return []
    moved = float(sold["realized_gain"][soon].sum())
    now = year.increment(st_gain, lt_gain, st_rate, lt_rate)
    waiting = year.increment(st_gain - moved, lt_gain + moved, st_rate, lt_rate)
    lots = [
        f"{symbol} {lot} (long-term on "
        f"{tax.first_long_term_date(pd.Timestamp(acquired).date()).isoformat()})"
        for symbol, lot, acquired in zip(
            sold["symbol"][soon], sold["lot_id"][soon], sold["acquired"][soon], strict=True
        )
    ]
    plural = "s" if len(lots) > 1 else ""
    return [
        f"sells {len(lots)} short-term gain lot{plural} turning long-term within "
        f"{ANNIVERSARY_NOTE_DAYS} days: {', '.join(lots)}; waiting would save "
        f"${now - waiting:,.2f} of tax"
    ]


RETURN_COLUMNS = (
    "tax_return",
    "filing_status",
    "accounts",
    "ytd_st_gain",
    "ytd_lt_gain",
    "carryforward_st_in",
    "carryforward_lt_in",
    "planned_st_gain",
    "planned_lt_gain",
    "tax_before",
    "tax_after",
    "tax_increment",
    "deduction_after",
    "carryforward_st_out",
    "carryforward_lt_out",
)
"""Columns of ``returns.csv``: one row per tax return with an account in the run."""


def returns_frame(book: Book, summary: pd.DataFrame) -> pd.DataFrame:
    """Per tax return of the run's taxable accounts: the year so far, what the plan
    realises, the year's exact tax before and after the plan, the loss deducted from
    ordinary income and the carryforward out, all in dollars; sorted by return."""
    realised: dict[str, list[float]] = {}
    accounts: dict[str, list[str]] = {}
    if not summary.empty:
        for a, st, lt in zip(
            summary["account_id"], summary["realized_st"], summary["realized_lt"], strict=True
        ):
            return_id = book.accounts[a].return_id
            if return_id is None:
                continue
            accounts.setdefault(return_id, []).append(a)
            totals = realised.setdefault(return_id, [0.0, 0.0])
            totals[0] += float(st)
            totals[1] += float(lt)
    rows = []
    for return_id in sorted(realised):
        first = book.accounts[min(accounts[return_id])]
        tax_return = book.tax_return(first.account_id)
        year = tax.YearSoFar.of(tax_return)
        st, lt = realised[return_id]
        before = year.tax(first.st_rate, first.lt_rate)
        after = year.tax(first.st_rate, first.lt_rate, st, lt)
        netting = year.netting(st, lt)
        rows.append(
            {
                "tax_return": return_id,
                "filing_status": tax_return.filing_status,
                "accounts": ";".join(sorted(accounts[return_id])),
                "ytd_st_gain": year.st_gain,
                "ytd_lt_gain": year.lt_gain,
                "carryforward_st_in": year.carryforward_st,
                "carryforward_lt_in": year.carryforward_lt,
                "planned_st_gain": st,
                "planned_lt_gain": lt,
                "tax_before": before,
                "tax_after": after,
                "tax_increment": after - before,
                "deduction_after": netting.ordinary_offset,
                "carryforward_st_out": netting.carryforward_st,
                "carryforward_lt_out": netting.carryforward_lt,
            }
        )
    if not rows:
        return pd.DataFrame(
            {c: pd.Series(dtype=object if c in _TEXT else float) for c in RETURN_COLUMNS}
        )
    return pd.DataFrame(rows, columns=list(RETURN_COLUMNS))


_TEXT = frozenset({"tax_return", "filing_status", "accounts"})


def return_totals(frame: pd.DataFrame) -> Mapping[str, float]:
    """Run totals of the returns table, dollars: tax before and after, and the loss
    carried forward out of the year."""
    return {
        "returns": float(len(frame)),
        "tax_before": float(frame["tax_before"].sum()),
        "tax_after": float(frame["tax_after"].sum()),
        "carryforward_out": float(
            (frame["carryforward_st_out"] + frame["carryforward_lt_out"]).sum()
        ),
    }
