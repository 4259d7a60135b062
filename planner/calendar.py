"""NYSE business days and the review dates of calendar triggers.

A *scheduled* date is the first day of a review period: the 1st of every month (monthly), of
January/April/July/October (quarterly), of January/July (semiannual) or of January (annual).
The *review* date of a period is the first NYSE business day on or after its scheduled date:
weekends and exchange holidays (including one-off closures such as 2001-09-11 or
2025-01-09, as listed by the ``holidays`` package) push it forward.

Every function takes and returns ``datetime.date``; frequencies are the strings of
:data:`planner.domain.CALENDAR_FREQUENCIES`.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays

from planner.domain import CALENDAR_FREQUENCIES

FREQUENCY_MONTHS: dict[str, int] = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}
"""Length of a review period in months; periods start in January."""

# Closures push a review forward by a few days (the longest run in modern times, after
# 2001-09-11, was four weekdays plus a weekend). Looking this far back before a window's start
# catches a scheduled date that falls before the window but whose review falls inside it.
_MAX_SHIFT = timedelta(days=31)


def _months(frequency: str) -> int:
    try:
        return FREQUENCY_MONTHS[frequency]
    except KeyError:
        raise ValueError(
            f"unknown calendar frequency {frequency!r}; expected one of "
            f"{', '.join(CALENDAR_FREQUENCIES)}"
        ) from None


@lru_cache(maxsize=256)
def _closed(year: int) -> frozenset[date]:
    """NYSE holidays and special closures of one calendar year."""
    return frozenset(holidays.financial_holidays("NYSE", years=year))


def is_business_day(d: date) -> bool:
    """Whether the NYSE is open on ``d``: a weekday that is not an exchange holiday."""
    return d.weekday() < 5 and d not in _closed(d.year)


def next_business_day_on_or_after(d: date) -> date:
    """``d`` itself if the NYSE is open that day, else the next day it is."""
    while not is_business_day(d):
        d += timedelta(days=1)
    return d


def _period_start(frequency: str, year: int, month: int) -> tuple[int, int]:
    """(year, month) of the scheduled date of the period holding ``year``-``month``."""
    step = _months(frequency)
    return year, (month - 1) // step * step + 1


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def scheduled_dates(frequency: str, start: date, end: date) -> list[date]:
    """Scheduled (unshifted) review dates in [start, end], ascending."""
    step = _months(frequency)
    year, month = _period_start(frequency, start.year, start.month)
    out = []
    while (d := date(year, month, 1)) <= end:
        if d >= start:
            out.append(d)
        year, month = _add_months(year, month, step)
    return out


def review_dates(frequency: str, start: date, end: date) -> list[date]:
    """Review dates in [start, end], ascending: the first business day on or after each
    scheduled date (which may itself lie shortly before ``start``)."""
    scheduled = scheduled_dates(frequency, start - _MAX_SHIFT, end)
    reviews = (next_business_day_on_or_after(d) for d in scheduled)
    return [r for r in reviews if start <= r <= end]


@lru_cache(maxsize=8192)
def last_review_on_or_before(frequency: str, d: date) -> date:
    """The latest review date on or before ``d``.

    Cached: a batch asks this for thousands of accounts with the same as-of date.
    """
    step = _months(frequency)
    year, month = _period_start(frequency, d.year, d.month)
    # The current period's review may still be ahead of d (e.g. Jan 1 -> Jan 2); then the
    # previous period's review, at least a month earlier, is the answer.
    while (review := next_business_day_on_or_after(date(year, month, 1))) > d:
        year, month = _add_months(year, month, -step)
    return review


def is_review_date(frequency: str, d: date) -> bool:
    """Whether ``d`` is a review date (the first business day of a review period)."""
    return last_review_on_or_before(frequency, d) == d


def review_due(frequency: str, last_reviewed: date | None, as_of: date) -> date | None:
    """The review due on ``as_of``: the latest review date ``r`` with
    ``last_reviewed < r <= as_of``, or ``None`` when there is none.

    ``last_reviewed`` is the last time the account was looked at: the later of its last
    rebalance and its last recorded review (a hybrid's *quiet* review trades nothing, so
    only the review record remembers it). A review not recorded stays due until the
    account is reviewed or rebalanced (a missed review is caught up, naming the latest).

    With no history at all (``None``) nothing can have been missed that we know of, so
    only a review falling on ``as_of`` itself is due: a new account is first reviewed on
    the next review date, not every day until someone records a review. (Between review
    dates the other triggers still apply: outer bands and cash flows.)
    """
    if last_reviewed is None:
        return as_of if is_review_date(frequency, as_of) else None
    latest = last_review_on_or_before(frequency, as_of)
    return latest if latest > last_reviewed else None
