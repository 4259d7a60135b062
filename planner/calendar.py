"""NYSE business days and review dates for calendar triggers."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays

FREQUENCY_MONTHS = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}


@lru_cache(maxsize=64)
def _closed(year: int) -> frozenset[date]:
    return frozenset(holidays.financial_holidays("NYSE", years=year).keys())


def is_business_day(d: date) -> bool:
    """Whether the NYSE is open on ``d`` (weekdays that are not exchange holidays)."""
    return d.weekday() < 5 and d not in _closed(d.year)


def next_business_day_on_or_after(d: date) -> date:
    while not is_business_day(d):
        d += timedelta(days=1)
    return d


def scheduled_dates(frequency: str, start: date, end: date) -> list[date]:
    """Scheduled review dates (1st of the month of each period) in [start, end]."""
    step = FREQUENCY_MONTHS[frequency]
    out = []
    year, month = start.year, 1
    while date(year, month, 1) <= end:
        d = date(year, month, 1)
        if d >= start:
            out.append(d)
        month += step
        if month > 12:
            year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return out


def review_dates(frequency: str, start: date, end: date) -> list[date]:
    """Reviews in [start, end]: first business day on or after each scheduled date."""
    lookback = date(start.year - 1, 1, 1)
    reviews = (next_business_day_on_or_after(d) for d in scheduled_dates(frequency, lookback, end))
    return sorted({r for r in reviews if start <= r <= end})


def last_review_on_or_before(frequency: str, d: date) -> date:
    return review_dates(frequency, date(d.year - 1, 1, 1), d)[-1]


def review_due(frequency: str, last_rebalanced: date | None, as_of: date) -> date | None:
    """The latest review date in (last_rebalanced, as_of], or None; never rebalanced means
    the latest review on or before as-of is due."""
    last = last_review_on_or_before(frequency, as_of)
    if last_rebalanced is None or last > last_rebalanced:
        return last
    return None
