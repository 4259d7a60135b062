"""NYSE business days, scheduled and review dates of calendar triggers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.calendar import (
    is_business_day,
    is_review_date,
    last_review_on_or_before,
    next_business_day_on_or_after,
    review_dates,
    review_due,
    scheduled_dates,
)

FREQUENCIES = ("monthly", "quarterly", "semiannual", "annual")
YEAR_2026 = (date(2026, 1, 1), date(2026, 12, 31))

# -- business days -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "closed",
    [
        date(2026, 1, 1),  # New Year's Day (Thursday)
        date(2026, 4, 3),  # Good Friday
        date(2026, 6, 19),  # Juneteenth
        date(2026, 7, 3),  # Independence Day observed (July 4 is a Saturday)
        date(2026, 11, 26),  # Thanksgiving
        date(2026, 12, 25),  # Christmas
        date(2025, 1, 9),  # one-off closure: national day of mourning
        date(2026, 8, 1),  # Saturday
        date(2026, 8, 2),  # Sunday
    ],
)
def test_closed_days(closed):
    assert not is_business_day(closed)


@pytest.mark.parametrize(
    "open_day",
    [date(2026, 1, 2), date(2026, 11, 27), date(2026, 12, 24), date(2026, 7, 6)],
)
def test_open_days(open_day):
    assert is_business_day(open_day)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 1), date(2026, 1, 2)),  # holiday -> next day
        (date(2026, 8, 1), date(2026, 8, 3)),  # Saturday -> Monday
        (date(2026, 2, 1), date(2026, 2, 2)),  # Sunday -> Monday
        (date(2026, 4, 3), date(2026, 4, 6)),  # Good Friday + weekend -> Monday
        (date(2026, 7, 3), date(2026, 7, 6)),  # observed holiday + weekend -> Monday
        # New Year on a Saturday: the NYSE does not close the Friday before.
        (date(2022, 1, 1), date(2022, 1, 3)),
        (date(2012, 10, 29), date(2012, 10, 31)),  # Hurricane Sandy, two days
        (date(2001, 9, 11), date(2001, 9, 17)),  # four days, then a weekend
        (date(2026, 6, 1), date(2026, 6, 1)),  # open: itself
    ],
)
def test_next_business_day_on_or_after(day, expected):
    assert next_business_day_on_or_after(day) == expected


# -- scheduled and review dates ------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "months"),
    [
        ("monthly", list(range(1, 13))),
        ("quarterly", [1, 4, 7, 10]),
        ("semiannual", [1, 7]),
        ("annual", [1]),
    ],
)
def test_scheduled_dates_are_period_starts(frequency, months):
    assert scheduled_dates(frequency, *YEAR_2026) == [date(2026, m, 1) for m in months]


def test_scheduled_dates_window_is_inclusive_and_may_start_mid_period():
    assert scheduled_dates("quarterly", date(2026, 4, 1), date(2026, 10, 1)) == [
        date(2026, 4, 1),
        date(2026, 7, 1),
        date(2026, 10, 1),
    ]
    assert scheduled_dates("quarterly", date(2026, 4, 2), date(2026, 9, 30)) == [date(2026, 7, 1)]
    assert scheduled_dates("annual", date(2025, 6, 1), date(2027, 6, 1)) == [
        date(2026, 1, 1),
        date(2027, 1, 1),
    ]
    assert scheduled_dates("monthly", date(2026, 5, 2), date(2026, 5, 31)) == []


def test_monthly_reviews_2026():
    assert review_dates("monthly", *YEAR_2026) == [
        date(2026, 1, 2),  # Jan 1 holiday
        date(2026, 2, 2),  # Feb 1 Sunday
        date(2026, 3, 2),  # Mar 1 Sunday
        date(2026, 4, 1),
        date(2026, 5, 1),
        date(2026, 6, 1),
        date(2026, 7, 1),
        date(2026, 8, 3),  # Aug 1 Saturday
        date(2026, 9, 1),
        date(2026, 10, 1),
        date(2026, 11, 2),  # Nov 1 Sunday
        date(2026, 12, 1),
    ]


@pytest.mark.parametrize(
    ("frequency", "expected"),
    [
        ("quarterly", [date(2026, 1, 2), date(2026, 4, 1), date(2026, 7, 1), date(2026, 10, 1)]),
        ("semiannual", [date(2026, 1, 2), date(2026, 7, 1)]),
        ("annual", [date(2026, 1, 2)]),
    ],
)
def test_reviews_2026(frequency, expected):
    assert review_dates(frequency, *YEAR_2026) == expected


def test_annual_review_after_saturday_new_year():
    assert review_dates("annual", date(2027, 6, 1), date(2028, 6, 1)) == [date(2028, 1, 3)]


def test_review_window_uses_shifted_dates():
    # Jan 1 is before the window but its review (Jan 2) is inside it ...
    assert review_dates("quarterly", date(2026, 1, 2), date(2026, 1, 2)) == [date(2026, 1, 2)]
    # ... and a window ending on Jan 1 does not reach that review.
    assert review_dates("quarterly", date(2025, 12, 1), date(2026, 1, 1)) == []


@pytest.mark.parametrize(
    ("frequency", "day", "expected"),
    [
        ("quarterly", date(2026, 11, 20), date(2026, 10, 1)),
        ("quarterly", date(2026, 10, 1), date(2026, 10, 1)),
        ("quarterly", date(2026, 9, 30), date(2026, 7, 1)),
        ("quarterly", date(2026, 1, 1), date(2025, 10, 1)),  # Jan 2026 review is Jan 2
        ("quarterly", date(2026, 1, 2), date(2026, 1, 2)),
        ("monthly", date(2026, 8, 2), date(2026, 7, 1)),  # Aug review is Monday Aug 3
        ("monthly", date(2026, 8, 3), date(2026, 8, 3)),
        ("semiannual", date(2026, 6, 30), date(2026, 1, 2)),
        ("annual", date(2026, 1, 1), date(2025, 1, 2)),  # Jan 1 2025 was a holiday too
        ("annual", date(2026, 12, 31), date(2026, 1, 2)),
    ],
)
def test_last_review_on_or_before(frequency, day, expected):
    assert last_review_on_or_before(frequency, day) == expected


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (date(2026, 6, 15), date(2026, 10, 1)),  # two reviews missed: the latest is named
        (date(2026, 9, 30), date(2026, 10, 1)),
        (date(2026, 10, 1), None),  # reviewed on the review date itself
        (date(2026, 11, 2), None),
        (date(2026, 11, 20), None),
    ],
)
def test_review_due(last, expected):
    assert review_due("quarterly", last, date(2026, 11, 20)) == expected


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (date(2026, 11, 20), None),  # between reviews: nothing known to be missed
        (date(2026, 10, 1), date(2026, 10, 1)),  # on a review date: that review
        (date(2026, 1, 1), None),  # the scheduled date is a holiday ...
        (date(2026, 1, 2), date(2026, 1, 2)),  # ... its review is the next business day
        (date(2026, 1, 5), None),
    ],
)
def test_review_due_without_history_only_on_a_review_date(as_of, expected):
    assert review_due("quarterly", None, as_of) == expected


def test_is_review_date():
    assert is_review_date("monthly", date(2026, 8, 3))
    assert not is_review_date("monthly", date(2026, 8, 1))  # Saturday
    assert not is_review_date("quarterly", date(2026, 11, 2))  # monthly only
    assert is_review_date("annual", date(2028, 1, 3))


def test_unknown_frequency_is_an_error():
    with pytest.raises(ValueError, match="unknown calendar frequency 'weekly'"):
        scheduled_dates("weekly", *YEAR_2026)
    with pytest.raises(ValueError, match="weekly"):
        last_review_on_or_before("weekly", date(2026, 1, 5))


# -- properties ----------------------------------------------------------------------------

DAYS = st.dates(min_value=date(1995, 1, 1), max_value=date(2040, 12, 31))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FREQUENCIES), DAYS, st.integers(0, 800))
def test_reviews_are_business_days_one_per_period(frequency, start, length):
    end = start + timedelta(days=length)
    reviews = review_dates(frequency, start, end)
    assert reviews == sorted(set(reviews))
    for r in reviews:
        assert start <= r <= end
        assert is_business_day(r)
        # The scheduled date is the 1st of r's month (closures never span a month end).
        first = r.replace(day=1)
        assert first in scheduled_dates(frequency, first, first)
        assert all(not is_business_day(first + timedelta(days=k)) for k in range(r.day - 1))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FREQUENCIES), DAYS)
def test_last_review_is_the_latest(frequency, day):
    last = last_review_on_or_before(frequency, day)
    assert last <= day
    assert review_dates(frequency, last, day) == [last]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FREQUENCIES), DAYS, st.one_of(st.none(), st.integers(0, 800)))
def test_review_due_is_the_latest_review_since_the_last_one(frequency, as_of, ago):
    last = None if ago is None else as_of - timedelta(days=ago)
    due = review_due(frequency, last, as_of)
    if last is None:
        assert due == (as_of if review_dates(frequency, as_of, as_of) else None)
    else:
        reviews = review_dates(frequency, last + timedelta(days=1), as_of)
        assert due == (reviews[-1] if reviews else None)
