"""Holding periods and the gains of lot sales (IRS Pub. 550 "Holding Period"; Rev. Rul. 66-7).

Dates are ``datetime.date``, or numpy ``datetime64`` in the vectorised helpers; shares are
share counts, prices and unit costs dollars per share, gains dollars (never rounded here).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from planner.domain import Term

# --------------------------------------------------------------------------------------
# Holding period
# --------------------------------------------------------------------------------------


def first_long_term_date(acquired: date) -> date:
    """First sale date on which shares acquired on ``acquired`` are long-term.

    Long-term means held *more than one year* (Pub 550, "Holding Period"). The holding
    period starts the day after acquisition and includes the sale day, and it is counted
    in calendar months, not days (Rev. Rul. 66-7). So the year is complete at the end of
    the day before the one-year anniversary of that start day, and the first long-term
    date is that anniversary: for a 2025-02-05 purchase the start is 2025-02-06, a sale on
    2026-02-05 is short-term and one on 2026-02-06 is long-term (the Pub 550 example).

    February: a start day of Feb 29 has no anniversary in a common year; its twelfth
    holding month ends on Feb 28, so the first long-term date is Mar 1. Hence:

    - bought 2024-02-29 (start Mar 1): Feb 28, 2025 is short-term, Mar 1, 2025 long-term
      (the Feb 29 anniversary is taken as Feb 28, and the day after it is Mar 1);
    - bought 2024-02-28 (start Feb 29): first long-term date Mar 1, 2025;
    - bought 2015-02-28, the last day of that month (start Mar 1): a sale on the leap day
      2016-02-29 is still short-term, the first long-term date is 2016-03-01. This is the
      one case where the shortcut "the day after the anniversary of the purchase" is a
      day early; the month-counting rule for a purchase on a month's last day gives Mar 1.
    """
    start = acquired + timedelta(days=1)
    try:
        return start.replace(year=start.year + 1)
    except ValueError:  # start is Feb 29: see the docstring
        return date(start.year + 1, 3, 1)


def first_long_term_dates(acquired: Any) -> np.ndarray:
    """Vectorised :func:`first_long_term_date`: ``datetime64[D]`` array, NaT stays NaT.

    ``acquired`` is anything numpy turns into ``datetime64`` (an array of ``datetime64`` of
    any unit, a pandas Series, a list of dates).
    """
    start = _as_days(acquired) + np.timedelta64(1, "D")
    if start.ndim == 1 and len(start) > 4096:
        # A book's millions of lots share a few thousand dates: the calendar arithmetic
        # (slow in numpy) is done once per day of their range, then looked up.
        known = ~np.isnat(start)
        every = bool(known.all())
        days = start.view(np.int64) if every else start.view(np.int64)[known]
        if len(days):
            first, last = int(days.min()), int(days.max())
            if last - first < len(start) // 4:
                table = _one_year_on(np.arange(first, last + 1).astype("datetime64[D]"))
                if every:
                    return table[days - first]
                out = np.full(len(start), np.datetime64("NaT"), dtype="datetime64[D]")
                out[known] = table[days - first]
                return out
    return _one_year_on(start)


def _one_year_on(start: np.ndarray) -> np.ndarray:
    """The same month and day one year after each ``datetime64[D]`` of ``start``."""
    years = start.astype("datetime64[Y]")
    months = start.astype("datetime64[M]")
    month_of_year = months - years.astype("datetime64[M]")
    day_of_month = start - months.astype("datetime64[D]")
    # Same month and day one year later; adding the day offset to the first of the month
    # rolls a Feb 29 start into Mar 1 of a common year, which is the rule we want.
    target_month = (years + np.timedelta64(1, "Y")).astype("datetime64[M]") + month_of_year
    return target_month.astype("datetime64[D]") + day_of_month


def holding_term(acquired: date, sold: date) -> Term:
    """``"LT"`` if shares bought on ``acquired`` and sold on ``sold`` are long-term, else
    ``"ST"``. A same-day sale is short-term. Raises ``ValueError`` if ``sold < acquired``."""
    if sold < acquired:
        raise ValueError(f"sale date {sold} is before acquisition date {acquired}")
    return "LT" if sold >= first_long_term_date(acquired) else "ST"


def holding_terms(acquired: Any, sold: Any) -> np.ndarray:
    """Vectorised :func:`holding_term`: boolean array, ``True`` where long-term.

    ``acquired`` is an array of ``datetime64`` (any unit) or dates; ``sold`` one date or an
    array broadcasting against it. Nothing is validated: a NaT acquisition, or one after
    the sale, comes out ``False`` (short-term).
    """
    sold_days = _as_days(sold)
    return np.asarray(sold_days >= first_long_term_dates(acquired), dtype=bool)


def days_until_long_term(acquired: Any, as_of: date) -> int | np.ndarray:
    """Days from ``as_of`` until a sale would be long-term; 0 once it already is.

    A scalar ``acquired`` date gives an ``int``; an array gives an ``int64`` array.
    """
    if isinstance(acquired, date):
        return max(0, (first_long_term_date(acquired) - as_of).days)
    days = (first_long_term_dates(acquired) - _as_days(as_of)).astype(np.int64)
    return np.maximum(days, 0)


def _as_days(value: Any) -> np.ndarray:
    """Anything date-like as ``datetime64[D]`` (scalar or array)."""
    if isinstance(value, date):
        return np.datetime64(value, "D")
    return np.asarray(value).astype("datetime64[D]")


# --------------------------------------------------------------------------------------
# Gains
# --------------------------------------------------------------------------------------


def unrealized_gain(shares: Any, unit_cost: Any, price: Any) -> float | np.ndarray:
    """Gain in dollars if ``shares`` bought at ``unit_cost`` were sold at ``price``
    (negative for a loss). Works elementwise on numpy arrays; scalars give a float."""
    # Proceeds minus basis, the way a broker computes it (and LotSale does).
    gain = np.multiply(shares, price) - np.multiply(shares, unit_cost)
    return float(gain) if np.ndim(gain) == 0 else gain


@dataclass(frozen=True)
class LotSale:
    """Sale of ``shares`` of one lot on ``sale_date`` at ``price`` dollars per share.

    ``unit_cost`` (dollars per share) and ``acquired`` are the lot's, before any wash-sale
    adjustment. ``account_id`` is optional for plain gain arithmetic, but
    :func:`apply_wash_sales` uses ``(account_id, lot_id)`` to find the lot sold.
    """

    symbol: str
    lot_id: str
    shares: float
    unit_cost: float
    acquired: date
    sale_date: date
    price: float
    account_id: str = ""

    def __post_init__(self) -> None:
        if not self.shares >= 0:
            raise ValueError(f"lot {self.lot_id}: shares sold must be >= 0, got {self.shares}")
        if self.sale_date < self.acquired:
            raise ValueError(
                f"lot {self.lot_id}: sale date {self.sale_date} is before "
                f"acquisition date {self.acquired}"
            )

    @property
    def proceeds(self) -> float:
        """Dollars received (shares times price; costs of sale are not modelled)."""
        return self.shares * self.price

    @property
    def cost_basis(self) -> float:
        """Dollars of basis of the shares sold."""
        return self.shares * self.unit_cost

    @property
    def realized_gain(self) -> float:
        """Proceeds minus basis in dollars (negative for a loss)."""
        return self.proceeds - self.cost_basis

    @property
    def term(self) -> Term:
        return holding_term(self.acquired, self.sale_date)


def realized_by_term(sales: Iterable[LotSale]) -> tuple[float, float]:
    """(short-term, long-term) realised gains in dollars, each the sum of gains and losses
    of that term (before any netting across terms)."""
    st = lt = 0.0
    for s in sales:
        if s.term == "LT":
            lt += s.realized_gain
        else:
            st += s.realized_gain
    return st, lt
