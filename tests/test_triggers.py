"""Trigger policies: threshold (abs, rel, 5/25, overrides), cash and legacy classes, tiers and
partial bounds, calendar reviews (what is due, quiet reviews, first runs), hybrid, cash flow,
composition with & and |, and the decisions' reasons, bounds and text.

Business days and review dates themselves are tested in ``test_calendar.py``."""

from __future__ import annotations

import math
import pickle
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.calendar import review_dates
from planner.decisions import AccountState, Breach, Decision
from planner.domain import CASH, Account, Band, ClassTarget, Model, TriggerSpec
from planner.triggers import (
    AllOf,
    AnyOf,
    Calendar,
    CashFlow,
    OuterOnly,
    Threshold,
    evaluate,
    evaluate_account,
    legacy_band,
    policy_for,
)

AS_OF = date(2026, 11, 20)  # between reviews: the latest quarterly review is REVIEW
REVIEW = date(2026, 10, 1)  # a quarterly review date
PREVIOUS_REVIEW = date(2026, 7, 1)  # the quarterly review before it
NEXT_REVIEW = date(2027, 1, 4)  # the one after (Jan 1 is a holiday, then a weekend)
BEFORE_REVIEW = date(2026, 9, 1)  # last rebalanced before REVIEW: REVIEW is due on or after it
AFTER_REVIEW = date(2026, 10, 5)  # last rebalanced after REVIEW: nothing due until NEXT_REVIEW

FIVE_PP = Band(abs=0.05)
CASH_BAND = Band(abs=0.02)
THRESHOLD = TriggerSpec("threshold")
HYBRID = TriggerSpec("hybrid", "quarterly")
TARGETS = {"US_EQUITY": 0.50, "INTL_EQUITY": 0.10, "US_BONDS": 0.38, CASH: 0.02}


def make_model(
    band: Band = FIVE_PP,
    *,
    targets: dict[str, float] | None = None,
    bands: dict[str, Band] | None = None,
    outer: Band | None = None,
    rebalance_to: str = "band_edge",
    trigger: TriggerSpec = THRESHOLD,
) -> Model:
    """A model built directly from domain objects: every non-cash class has ``band`` (or its
    entry in ``bands``) and ``outer``; cash has a 2 pp band and no outer tier."""
    classes = []
    for c, t in (targets or TARGETS).items():
        default = CASH_BAND if c == CASH else band
        inner = (bands or {}).get(c, default)
        securities = () if c == CASH else (c.lower(),)
        classes.append(
            ClassTarget(
                c,
                t,
                securities,
                {s: t for s in securities},
                inner,
                None if c == CASH else outer,
            )
        )
    return Model("m", tuple(classes), rebalance_to, trigger)


def W(us=0.50, intl=0.10, bonds=0.38, cash=0.02, **legacy) -> dict[str, float]:
    """Class weights (fractions summing to 1)."""
    w = {"US_EQUITY": us, "INTL_EQUITY": intl, "US_BONDS": bonds, CASH: cash, **legacy}
    assert math.isclose(sum(w.values()), 1.0, abs_tol=1e-12)
    return w


BREACH = W(us=0.56, intl=0.06, bonds=0.36)  # US_EQUITY over its inner band only
QUIET = W(us=0.53, intl=0.08, bonds=0.37)
OUTER_BREACH = W(us=0.61, intl=0.06, bonds=0.31)  # US_EQUITY over a 10 pp outer band


def flat(bounds) -> dict[str, tuple[float, float]]:
    """Class bounds rounded to 12 decimals, so float noise does not fail an equality."""
    return {c: (round(lo, 12), round(hi, 12)) for c, (lo, hi) in dict(bounds).items()}


def state(
    weights, model=None, last=None, cash_flow=0.0, *, as_of=AS_OF, reviewed=None
) -> AccountState:
    return AccountState(as_of, weights, model or make_model(), last, cash_flow, 1e6, reviewed)


# -- threshold: absolute, relative, combined, overrides ------------------------------------


def test_on_target_does_not_fire():
    d = evaluate(make_model(), W(), AS_OF)
    assert not d.fire and d.mode == "none" and d.breaches == ()
    assert d.reasons == (
        "threshold: no band breached (closest to an edge: US_EQUITY 50.0% in 45.0%-55.0%)",
    )
    assert dict(d.class_bounds) == {}


def test_absolute_band_upper_and_lower_reasons():
    d = evaluate(make_model(), W(us=0.562, bonds=0.318), AS_OF)
    assert d.fire
    assert d.reasons == (
        "US_EQUITY 56.2% > 55.0% upper band (abs 5 pp)",
        "US_BONDS 31.8% < 33.0% lower band (abs 5 pp)",
    )
    assert [(b.asset_class, b.side, b.tier) for b in d.breaches] == [
        ("US_EQUITY", "upper", "inner"),
        ("US_BONDS", "lower", "inner"),
    ]
    assert d.breaches[0] == Breach("US_EQUITY", 0.562, 0.50, 0.45, 0.55, "inner", "abs 5 pp")


def test_weight_on_the_band_edge_is_inside():
    # 0.55 and 0.33 are the edges; float sums land a hair off them.
    assert not evaluate(make_model(), W(us=0.55, bonds=0.33), AS_OF).fire
    assert not evaluate(make_model(), W(intl=0.05, bonds=0.43), AS_OF).fire


def test_more_decimals_when_one_would_read_equal():
    d = evaluate(make_model(), W(us=0.5504, bonds=0.3296), AS_OF)
    assert d.reasons == (
        "US_EQUITY 55.04% > 55.00% upper band (abs 5 pp)",
        "US_BONDS 32.96% < 33.00% lower band (abs 5 pp)",
    )


def test_relative_band():
    m = make_model(Band(rel=0.20), bands={"US_BONDS": Band(abs=0.20)})
    # INTL 10% +/- 20% of 10% = 8..12; US_EQUITY 50% +/- 10 pp.
    assert not evaluate(m, W(intl=0.119, bonds=0.361), AS_OF).fire
    d = evaluate(m, W(intl=0.125, bonds=0.355), AS_OF)
    assert d.reasons == ("INTL_EQUITY 12.5% > 12.0% upper band (rel 20%)",)
    assert not evaluate(m, W(us=0.59, bonds=0.29), AS_OF).fire
    d = evaluate(m, W(us=0.61, bonds=0.27), AS_OF)  # 50% +/- 10 pp: the upper edge is 60%
    assert d.reasons == ("US_EQUITY 61.0% > 60.0% upper band (rel 20%)",)


def test_five_twenty_five_tighter():
    band = Band(abs=0.05, rel=0.25, combine="tighter")
    assert band.bounds(0.10) == pytest.approx((0.075, 0.125))
    assert band.bounds(0.60) == pytest.approx((0.55, 0.65))
    m = make_model(
        band, targets={"US_EQUITY": 0.60, "INTL_EQUITY": 0.10, "US_BONDS": 0.28, CASH: 0.02}
    )
    w = {"US_EQUITY": 0.64, "INTL_EQUITY": 0.124, "US_BONDS": 0.216, CASH: 0.02}
    d = evaluate(m, w, AS_OF)
    # Equity (55..65) and INTL (7.5..12.5) inside; bonds 28% +/- 5 pp (25% of 28 = 7) breach.
    assert d.reasons == ("US_BONDS 21.6% < 23.0% lower band (tighter of abs 5 pp / rel 25%)",)
    w = {"US_EQUITY": 0.66, "INTL_EQUITY": 0.126, "US_BONDS": 0.194, CASH: 0.02}
    assert evaluate(m, w, AS_OF).reasons == (
        "US_EQUITY 66.0% > 65.0% upper band (tighter of abs 5 pp / rel 25%)",
        "INTL_EQUITY 12.6% > 12.5% upper band (tighter of abs 5 pp / rel 25%)",
        "US_BONDS 19.4% < 23.0% lower band (tighter of abs 5 pp / rel 25%)",
    )


def test_looser_combination():
    band = Band(abs=0.05, rel=0.25, combine="looser")
    assert band.bounds(0.10) == pytest.approx((0.05, 0.15))
    assert band.bounds(0.60) == pytest.approx((0.45, 0.75))
    m = make_model(
        band, targets={"US_EQUITY": 0.60, "INTL_EQUITY": 0.10, "US_BONDS": 0.28, CASH: 0.02}
    )
    # Bonds 28% +/- 7 pp (looser: 25% of 28 beats 5 pp): 21..35.
    quiet = {"US_EQUITY": 0.70, "INTL_EQUITY": 0.14, "US_BONDS": 0.22, CASH: 0.02}
    assert not evaluate(m, quiet, AS_OF).fire
    loud = {"US_EQUITY": 0.76, "INTL_EQUITY": 0.0, "US_BONDS": 0.22, CASH: 0.02}
    assert evaluate(m, loud, AS_OF).reasons[0] == (
        "US_EQUITY 76.0% > 75.0% upper band (looser of abs 5 pp / rel 25%)"
    )


def test_per_class_override_in_the_model():
    m = make_model(bands={"US_EQUITY": Band(abs=0.02)})
    d = evaluate(m, W(us=0.53, bonds=0.35), AS_OF)
    assert d.reasons == ("US_EQUITY 53.0% > 52.0% upper band (abs 2 pp)",)


def test_direct_threshold_default_and_overrides():
    policy = Threshold(abs=0.05, overrides={"US_BONDS": Band(abs=0.01)})
    d = policy.evaluate(state(W(us=0.52, bonds=0.36)))
    assert d.reasons == ("US_BONDS 36.0% < 37.0% lower band (abs 1 pp)",)
    assert d.mode == "full"  # a directly built threshold goes to target by default
    assert policy.band("US_EQUITY") == Band(abs=0.05)
    assert not Threshold().evaluate(state(W(us=0.88, bonds=0.0))).fire  # no band at all


def test_class_without_band_never_breaches():
    m = make_model(bands={CASH: Band()})
    assert not evaluate(m, W(bonds=0.42, cash=-0.02), AS_OF).fire


# -- cash is a class -----------------------------------------------------------------------


def test_cash_above_its_band():
    d = evaluate(make_model(), W(bonds=0.35, cash=0.05), AS_OF)
    assert d.reasons == ("CASH 5.0% > 4.0% upper band (abs 2 pp)",)


def test_negative_cash_is_below_its_band():
    d = evaluate(make_model(), W(bonds=0.41, cash=-0.01), AS_OF)
    assert d.reasons == ("CASH -1.0% < 0.0% lower band (abs 2 pp)",)


def test_cash_breach_partial_bounds():
    d = evaluate(make_model(rebalance_to="midpoint"), W(bonds=0.35, cash=0.05), AS_OF)
    assert d.mode == "partial"
    assert d.class_bounds[CASH] == pytest.approx((0.01, 0.03))


# -- legacy holdings -----------------------------------------------------------------------


def test_legacy_holding_breach_uses_smallest_abs_band():
    m = make_model(bands={"US_EQUITY": Band(abs=0.03), "US_BONDS": Band(abs=0.08)})
    assert legacy_band(m) == Band(abs=0.03)
    d = evaluate(m, W(us=0.49, intl=0.09, bonds=0.36, GOLD=0.04), AS_OF)
    assert d.reasons == ("GOLD 4.0% > 3.0% upper band (abs 3 pp, not in model)",)
    assert d.breaches[0].target == 0.0


def test_small_legacy_holding_does_not_fire():
    assert not evaluate(make_model(), W(us=0.48, intl=0.09, GOLD=0.03), AS_OF).fire


def test_legacy_holding_in_partial_bounds_and_drift():
    m = make_model(rebalance_to="midpoint")
    d = evaluate(m, W(us=0.47, intl=0.08, bonds=0.35, GOLD=0.08), AS_OF)
    assert d.mode == "partial"
    assert d.class_bounds["GOLD"] == pytest.approx((0.0, 0.025))
    assert d.max_drift_class == "GOLD" and d.max_drift == pytest.approx(0.08)


def test_legacy_band_without_abs_bands():
    rel_only = make_model(Band(rel=0.25))  # half-widths 12.5, 2.5, 9.5 pp
    assert legacy_band(rel_only) == Band(abs=pytest.approx(0.025))
    assert legacy_band(make_model(Band())) == Band()


def test_zero_weight_legacy_class_is_ignored():
    d = evaluate(make_model(), W(GOLD=0.0), AS_OF)
    assert not d.fire and "GOLD" not in AccountState(AS_OF, W(GOLD=0.0), make_model()).classes


# -- tiers and partial bounds --------------------------------------------------------------


def test_inner_breach_partial_to_band_edge_bounds():
    d = evaluate(make_model(rebalance_to="band_edge"), W(us=0.56, intl=0.06, bonds=0.36), AS_OF)
    assert d.mode == "partial" and d.rebalance_to == "band_edge"
    assert flat(d.class_bounds) == flat(
        {
            "US_EQUITY": (0.45, 0.55),
            "INTL_EQUITY": (0.05, 0.15),
            "US_BONDS": (0.33, 0.43),
            CASH: (0.0, 0.04),
        }
    )


def test_inner_breach_partial_to_midpoint_bounds():
    d = evaluate(make_model(rebalance_to="midpoint"), W(us=0.56, intl=0.06, bonds=0.36), AS_OF)
    assert d.mode == "partial" and d.rebalance_to == "midpoint"
    assert flat(d.class_bounds) == flat(
        {
            "US_EQUITY": (0.475, 0.525),  # breached: half the band
            "INTL_EQUITY": (0.05, 0.15),  # the others stay inside their bands
            "US_BONDS": (0.33, 0.43),
            CASH: (0.0, 0.04),
        }
    )


def test_rebalance_to_target_makes_inner_breach_full():
    d = evaluate(make_model(rebalance_to="target"), W(us=0.56, intl=0.06, bonds=0.36), AS_OF)
    assert d.mode == "full" and d.rebalance_to == "target" and dict(d.class_bounds) == {}


def test_outer_breach_is_full_to_target():
    m = make_model(outer=Band(abs=0.10), rebalance_to="midpoint")
    d = evaluate(m, W(us=0.61, intl=0.05, bonds=0.32), AS_OF)
    assert d.mode == "full" and d.rebalance_to == "target" and dict(d.class_bounds) == {}
    assert d.reasons == (
        "US_EQUITY 61.0% > 60.0% outer upper band (abs 10 pp)",
        "US_BONDS 32.0% < 33.0% lower band (abs 5 pp)",
    )
    assert [b.tier for b in d.breaches] == ["outer", "inner"]


def test_inside_outer_band_is_still_partial():
    m = make_model(outer=Band(abs=0.10), rebalance_to="midpoint")
    d = evaluate(m, W(us=0.59, intl=0.06, bonds=0.33), AS_OF)
    assert d.mode == "partial"
    assert d.class_bounds["US_EQUITY"] == pytest.approx((0.475, 0.525))


def test_outer_override_none_switches_tier_off():
    policy = Threshold(
        abs=0.05,
        outer=Band(abs=0.10),
        outer_overrides={"US_EQUITY": None},
        rebalance_to="band_edge",
    )
    d = policy.evaluate(state(W(us=0.62, intl=0.06, bonds=0.30)))
    assert [(b.asset_class, b.tier) for b in d.breaches] == [
        ("US_EQUITY", "inner"),
        ("US_BONDS", "inner"),
    ]
    assert d.mode == "partial"


# -- calendar: when a review is due --------------------------------------------------------

QUARTERLY = TriggerSpec("calendar", "quarterly")


def test_calendar_review_due_reason():
    m = make_model(trigger=QUARTERLY)
    d = evaluate(m, W(), AS_OF, last_rebalanced=date(2026, 6, 15))
    assert d.fire and d.mode == "full" and d.rebalance_to == "target"
    assert d.reasons == ("quarterly review due 2026-10-01 (last rebalanced 2026-06-15)",)


def test_calendar_not_due_ignores_breaches():
    m = make_model(trigger=QUARTERLY)
    d = evaluate(m, W(us=0.70, bonds=0.18), AS_OF, last_rebalanced=AFTER_REVIEW)
    assert not d.fire


def test_calendar_holiday_shift():
    m = make_model(trigger=TriggerSpec("calendar", "monthly"))
    last = date(2025, 12, 15)
    assert not evaluate(m, W(), date(2026, 1, 1), last).fire  # the review is Jan 2
    d = evaluate(m, W(), date(2026, 1, 2), last)
    assert d.reasons == ("monthly review due 2026-01-02 (last rebalanced 2025-12-15)",)


def test_calendar_weekend_shift():
    m = make_model(trigger=TriggerSpec("calendar", "monthly"))
    last = date(2026, 7, 20)
    assert not evaluate(m, W(), date(2026, 8, 1), last).fire  # Saturday
    assert not evaluate(m, W(), date(2026, 8, 2), last).fire  # Sunday
    assert evaluate(m, W(), date(2026, 8, 3), last).reasons == (
        "monthly review due 2026-08-03 (last rebalanced 2026-07-20)",
    )


@pytest.mark.parametrize(
    ("frequency", "last", "due"),
    [
        ("monthly", date(2026, 10, 30), "2026-11-02"),
        ("quarterly", date(2026, 7, 1), "2026-10-01"),
        ("semiannual", date(2026, 1, 2), "2026-07-01"),
        ("annual", date(2025, 1, 1), "2026-01-02"),
    ],
)
def test_calendar_each_frequency(frequency, last, due):
    d = Calendar(frequency).evaluate(state(W(), last=last))
    assert d.reasons == (f"{frequency} review due {due} (last rebalanced {last.isoformat()})",)
    assert not Calendar(frequency).evaluate(state(W(), last=date.fromisoformat(due))).fire


def test_unknown_frequency():
    with pytest.raises(ValueError, match="weekly"):
        Calendar("weekly")


# -- calendar: recorded reviews and first runs ---------------------------------------------


def test_last_reviewed_on_the_review_date_suppresses_it():
    m = make_model(trigger=QUARTERLY)
    assert not evaluate(m, W(), AS_OF, date(2026, 6, 15), last_reviewed=REVIEW).fire
    assert not evaluate(m, W(), AS_OF, date(2026, 6, 15), last_reviewed=AFTER_REVIEW).fire
    assert not evaluate(m, W(), AS_OF, None, last_reviewed=REVIEW).fire


def test_review_missed_since_the_last_recorded_one_is_due():
    m = make_model(trigger=QUARTERLY)
    d = evaluate(m, W(), AS_OF, date(2026, 3, 2), last_reviewed=PREVIOUS_REVIEW)
    assert d.reasons == ("quarterly review due 2026-10-01 (last reviewed 2026-07-01)",)


def test_reason_names_the_later_of_rebalance_and_review():
    m = make_model(trigger=QUARTERLY)
    d = evaluate(m, W(), AS_OF, date(2026, 8, 14), last_reviewed=PREVIOUS_REVIEW)
    assert d.reasons == ("quarterly review due 2026-10-01 (last rebalanced 2026-08-14)",)
    s = state(W(), last=date(2026, 8, 14), reviewed=PREVIOUS_REVIEW)
    assert s.reviewed_through == date(2026, 8, 14)
    assert state(W(), reviewed=PREVIOUS_REVIEW).reviewed_through == PREVIOUS_REVIEW
    assert state(W()).reviewed_through is None


def test_no_history_is_due_only_on_a_review_date():
    # A first run between reviews has missed nothing we know of: it waits for the next one.
    m = make_model(trigger=TriggerSpec("calendar", "annual"))
    assert not evaluate(m, W(), AS_OF).fire
    assert not evaluate(m, W(), date(2026, 1, 1)).fire  # a holiday: the review is Jan 2
    d = evaluate(m, W(), date(2026, 1, 2))
    assert d.reasons == ("annual review due 2026-01-02 (no earlier review on record)",)
    assert not evaluate(m, W(), date(2026, 1, 5)).fire


def test_a_review_is_done_once_recorded_and_the_next_one_comes_due():
    m = make_model(trigger=QUARTERLY)
    assert evaluate(m, W(), REVIEW, last_reviewed=PREVIOUS_REVIEW).fire
    # Recorded on the review day: quiet until the next review date, due again on it.
    for day in (REVIEW, date(2026, 10, 2), AS_OF, date(2027, 1, 1), date(2027, 1, 3)):
        assert not evaluate(m, W(), day, last_reviewed=REVIEW).fire, day
    d = evaluate(m, W(), NEXT_REVIEW, last_reviewed=REVIEW)
    assert d.reasons == ("quarterly review due 2027-01-04 (last reviewed 2026-10-01)",)


def test_evaluate_account_reads_the_accounts_dates_and_flow():
    m = make_model(trigger=TriggerSpec("hybrid", "quarterly", cash_flow_min=5000))
    account = Account("A1", "m", "H1", "taxable", 0.0, 0.3, 0.2, last_rebalanced=BEFORE_REVIEW)
    row = {**BREACH, "GOLD": 0.0, "TIPS": float("nan")}  # a row of class_weights
    d = evaluate_account(account, m, row, AS_OF, 1e6)
    assert d == evaluate(m, BREACH, AS_OF, BEFORE_REVIEW, 0.0, 1e6)
    assert d.fire  # REVIEW was never recorded: still due
    reviewed = replace(account, last_reviewed=REVIEW, cash_flow=-9_000.0)
    d = evaluate_account(reviewed, m, row, AS_OF, 1e6)
    assert d.mode == "cash_only" and d.cash_flow_mode == "sell_only"
    assert [b.asset_class for b in d.breaches] == ["US_EQUITY"]


# -- hybrid --------------------------------------------------------------------------------


def test_hybrid_off_calendar_waits_but_records_the_breach():
    d = evaluate(make_model(trigger=HYBRID), BREACH, AS_OF, last_rebalanced=AFTER_REVIEW)
    assert not d.fire
    assert d.reasons == (
        "hybrid: US_EQUITY 56.0% > 55.0% upper band (abs 5 pp): waits for the next quarterly "
        "review 2027-01-04 (last rebalanced 2026-10-05)",
    )
    assert [b.asset_class for b in d.breaches] == ["US_EQUITY"]


def test_hybrid_breach_on_a_review_date_is_partial():
    m = make_model(trigger=HYBRID)
    d = evaluate(m, BREACH, REVIEW, last_rebalanced=BEFORE_REVIEW)
    assert d.fire and d.mode == "partial" and d.rebalance_to == "band_edge"
    assert d.reasons == (
        "quarterly review due 2026-10-01 (last rebalanced 2026-09-01)",
        "US_EQUITY 56.0% > 55.0% upper band (abs 5 pp)",
    )
    assert d.class_bounds["US_EQUITY"] == pytest.approx((0.45, 0.55))
    d = evaluate(m, BREACH, REVIEW, date(2025, 5, 12), last_reviewed=PREVIOUS_REVIEW)
    assert d.reasons[0] == "quarterly review due 2026-10-01 (last reviewed 2026-07-01)"
    d = evaluate(m, BREACH, REVIEW)  # no history: the review on as_of is due
    assert d.reasons[0] == "quarterly review due 2026-10-01 (no earlier review on record)"


def test_hybrid_quiet_review_does_not_fire():
    assert not evaluate(make_model(trigger=HYBRID), QUIET, REVIEW, BEFORE_REVIEW).fire


def test_hybrid_breach_after_a_quiet_review_waits_for_the_next_review():
    m = make_model(trigger=HYBRID)
    last = date(2025, 10, 16)
    for day in (date(2026, 10, 20), AS_OF, date(2027, 1, 1)):
        d = evaluate(m, BREACH, day, last, last_reviewed=REVIEW)
        assert not d.fire and [b.asset_class for b in d.breaches] == ["US_EQUITY"], day
    d = evaluate(m, BREACH, NEXT_REVIEW, last, last_reviewed=REVIEW)
    assert d.mode == "partial"
    assert d.reasons[0] == "quarterly review due 2027-01-04 (last reviewed 2026-10-01)"


def test_hybrid_without_history_waits_off_a_review_date():
    m = make_model(outer=Band(abs=0.10), trigger=HYBRID)
    assert not evaluate(m, BREACH, AS_OF).fire
    assert evaluate(m, OUTER_BREACH, AS_OF).mode == "full"


def test_hybrid_missed_review_is_caught_up():
    # Rebalanced before REVIEW and no review recorded since: REVIEW is still due.
    d = evaluate(make_model(trigger=HYBRID), BREACH, AS_OF, last_rebalanced=BEFORE_REVIEW)
    assert d.mode == "partial"
    assert d.reasons[0] == "quarterly review due 2026-10-01 (last rebalanced 2026-09-01)"


def test_hybrid_outer_breach_fires_any_day():
    m = make_model(outer=Band(abs=0.10), trigger=HYBRID)
    d = evaluate(m, OUTER_BREACH, AS_OF, last_rebalanced=AFTER_REVIEW)
    assert d.fire and d.mode == "full"
    assert d.reasons == (
        "US_EQUITY 61.0% > 60.0% outer upper band (abs 10 pp)",
        "US_BONDS 31.0% < 33.0% lower band (abs 5 pp)",
    )
    assert evaluate(m, OUTER_BREACH, AS_OF, None, last_reviewed=REVIEW) == d


def test_hybrid_inner_breach_off_calendar_with_outer_tier_waits():
    m = make_model(outer=Band(abs=0.10), trigger=HYBRID)
    assert not evaluate(m, BREACH, AS_OF, last_rebalanced=AFTER_REVIEW).fire
    assert not evaluate(m, BREACH, AS_OF, BEFORE_REVIEW, last_reviewed=REVIEW).fire


FORCED = TriggerSpec("hybrid", "quarterly", force_on_calendar=True)


def test_force_on_calendar_quiet_review_is_full():
    d = evaluate(make_model(trigger=FORCED), QUIET, REVIEW, last_rebalanced=BEFORE_REVIEW)
    assert d.fire and d.mode == "full" and d.rebalance_to == "target"
    assert d.reasons == ("quarterly review due 2026-10-01 (last rebalanced 2026-09-01)",)


def test_force_on_calendar_review_with_breach_is_full_with_both_reasons():
    d = evaluate(make_model(trigger=FORCED), BREACH, REVIEW, last_rebalanced=BEFORE_REVIEW)
    assert d.mode == "full"
    assert d.reasons == (
        "quarterly review due 2026-10-01 (last rebalanced 2026-09-01)",
        "US_EQUITY 56.0% > 55.0% upper band (abs 5 pp)",
    )


def test_force_on_calendar_still_waits_off_calendar():
    m = make_model(trigger=FORCED)
    assert not evaluate(m, BREACH, AS_OF, AFTER_REVIEW).fire
    assert not evaluate(m, BREACH, AS_OF, BEFORE_REVIEW, last_reviewed=REVIEW).fire


def test_hybrid_needs_a_calendar():
    with pytest.raises(ValueError, match="needs a calendar"):
        policy_for(make_model(trigger=TriggerSpec("hybrid")))


# -- cash flow -----------------------------------------------------------------------------

FLOW = TriggerSpec("threshold", cash_flow_min=5000)


def test_contribution_is_buy_only():
    d = evaluate(make_model(trigger=FLOW), QUIET, AS_OF, cash_flow=25_000)
    assert d.fire and d.mode == "cash_only" and d.cash_flow_mode == "buy_only"
    assert d.reasons == ("contribution $25,000 >= $5,000 cash-flow trigger",)
    assert dict(d.class_bounds) == {}


def test_withdrawal_is_sell_only():
    d = evaluate(make_model(trigger=FLOW), QUIET, AS_OF, cash_flow=-8_000)
    assert d.mode == "cash_only" and d.cash_flow_mode == "sell_only"
    assert d.reasons == ("withdrawal $8,000 >= $5,000 cash-flow trigger",)


def test_flow_below_minimum_does_nothing():
    assert not evaluate(make_model(trigger=FLOW), QUIET, AS_OF, cash_flow=4_999).fire
    assert not evaluate(make_model(trigger=FLOW), QUIET, AS_OF, cash_flow=-4_999).fire
    assert evaluate(make_model(trigger=FLOW), QUIET, AS_OF, cash_flow=5_000).fire


def test_no_cash_flow_trigger_without_minimum():
    assert not evaluate(make_model(), QUIET, AS_OF, cash_flow=1e6).fire


def test_zero_flow_never_fires_even_with_zero_minimum():
    assert not CashFlow(0).evaluate(state(QUIET)).fire
    with pytest.raises(ValueError):
        CashFlow(-1)


def test_breach_keeps_its_mode_and_reports_the_flow():
    d = evaluate(make_model(trigger=FLOW), BREACH, AS_OF, cash_flow=10_000)
    assert d.mode == "partial" and d.cash_flow_mode == "buy_only"
    assert d.reasons == (
        "US_EQUITY 56.0% > 55.0% upper band (abs 5 pp)",
        "contribution $10,000 >= $5,000 cash-flow trigger",
    )
    assert d.class_bounds["US_EQUITY"] == pytest.approx((0.45, 0.55))


def test_hybrid_off_calendar_with_flow_is_cash_only():
    spec = TriggerSpec("hybrid", "quarterly", cash_flow_min=5000)
    d = evaluate(make_model(trigger=spec), BREACH, AS_OF, AFTER_REVIEW, cash_flow=-20_000)
    assert d.mode == "cash_only" and d.cash_flow_mode == "sell_only"
    assert [b.asset_class for b in d.breaches] == ["US_EQUITY"]


# -- composition ---------------------------------------------------------------------------


def test_and_needs_both_or_needs_either():
    hybrid = Calendar("quarterly") & Threshold(abs=0.05)
    either = Calendar("quarterly") | Threshold(abs=0.05)
    assert isinstance(hybrid, AllOf) and isinstance(either, AnyOf)
    off = state(BREACH, last=AFTER_REVIEW)
    assert not hybrid.evaluate(off).fire
    assert either.evaluate(off).fire
    quiet_review = state(QUIET, last=BEFORE_REVIEW, as_of=REVIEW)
    assert not hybrid.evaluate(quiet_review).fire
    assert either.evaluate(quiet_review).fire


def test_and_takes_the_weaker_mode():
    threshold = Threshold(abs=0.05, rebalance_to="midpoint")
    s = state(BREACH, last=BEFORE_REVIEW, cash_flow=9_000, as_of=REVIEW)
    d = (Calendar("quarterly") & threshold).evaluate(s)
    assert d.mode == "partial" and d.rebalance_to == "midpoint"
    assert d.class_bounds["US_EQUITY"] == pytest.approx((0.475, 0.525))
    d = (threshold & CashFlow(5000)).evaluate(s)
    assert d.mode == "cash_only" and d.cash_flow_mode == "buy_only"
    assert dict(d.class_bounds) == {} and d.rebalance_to == "target"
    assert len(d.reasons) == 2


def test_or_takes_the_stronger_mode():
    s = state(BREACH, last=BEFORE_REVIEW, cash_flow=9_000, as_of=REVIEW)
    partial = Threshold(abs=0.05, rebalance_to="band_edge")
    d = (CashFlow(5000) | partial).evaluate(s)
    assert d.mode == "partial" and d.cash_flow_mode == "buy_only"
    assert d.reasons == (
        "contribution $9,000 >= $5,000 cash-flow trigger",
        "US_EQUITY 56.0% > 55.0% upper band (abs 5 pp)",
    )
    d = (partial | Calendar("quarterly")).evaluate(s)
    assert d.mode == "full" and d.rebalance_to == "target" and dict(d.class_bounds) == {}


def test_or_of_partials_intersects_bounds_and_goes_deepest():
    s = state(BREACH)
    wide = Threshold(abs=0.05, rebalance_to="band_edge")
    narrow = Threshold(abs=0.04, rebalance_to="midpoint")
    d = (wide | narrow).evaluate(s)
    assert d.mode == "partial" and d.rebalance_to == "midpoint"
    assert d.class_bounds["US_EQUITY"] == pytest.approx((0.48, 0.52))
    assert d.class_bounds["US_BONDS"] == pytest.approx((0.34, 0.42))
    # Each part names its own band; the same class under two bands is two reasons. INTL at
    # 6.0% sits exactly on the narrow band's lower edge: inside.
    assert d.reasons == (
        "US_EQUITY 56.0% > 55.0% upper band (abs 5 pp)",
        "US_EQUITY 56.0% > 54.0% upper band (abs 4 pp)",
    )


def test_or_drops_duplicate_reasons():
    t = Threshold(abs=0.05)
    assert (t | t).evaluate(state(BREACH)).reasons == (
        "US_EQUITY 56.0% > 55.0% upper band (abs 5 pp)",
    )


def test_compound_policies_flatten():
    a, b, c = Calendar("monthly"), Threshold(abs=0.05), CashFlow(100)
    assert len(((a & b) & c).parts) == 3
    assert len((a | (b | c)).parts) == 3
    assert len(((a & b) | c).parts) == 2
    assert repr((a & b) | c) == "((Calendar('monthly') & Threshold(abs 5 pp)) | CashFlow(100))"


def test_operators_reject_non_policies():
    with pytest.raises(TypeError):
        Calendar("monthly") & True  # noqa: B018


def test_outer_only():
    t = Threshold(abs=0.05, outer=Band(abs=0.10), rebalance_to="band_edge")
    assert not OuterOnly(t).evaluate(state(BREACH)).fire
    d = OuterOnly(t).evaluate(state(W(us=0.61, intl=0.06, bonds=0.31)))
    assert d.mode == "full"


def test_policy_for_shapes():
    assert repr(policy_for(make_model(trigger=TriggerSpec("calendar", "monthly")))) == (
        "Calendar('monthly')"
    )
    assert repr(policy_for(make_model(trigger=FLOW))) == (
        "(Threshold.from_model('m') | CashFlow(5000))"
    )
    assert repr(policy_for(make_model(trigger=HYBRID))) == (
        "((Calendar('quarterly') & Threshold.from_model('m')) "
        "| OuterOnly(Threshold.from_model('m')))"
    )


def test_evaluate_equals_policy_on_state():
    m = make_model(trigger=HYBRID)
    s = AccountState(REVIEW, BREACH, m, BEFORE_REVIEW, 0.0, 1e6)
    assert evaluate(m, BREACH, REVIEW, BEFORE_REVIEW, 0.0, 1e6) == policy_for(m).evaluate(s)
    s = AccountState(AS_OF, BREACH, m, BEFORE_REVIEW, 0.0, 1e6, REVIEW)
    assert evaluate(m, BREACH, AS_OF, BEFORE_REVIEW, 0.0, 1e6, REVIEW) == policy_for(m).evaluate(s)


# -- why a trigger does not fire -----------------------------------------------------------


def test_quiet_threshold_names_the_class_closest_to_its_band_edge():
    # INTL_EQUITY is 2 pp under a 5 pp band (0.4 of it), US_EQUITY 3 pp over (0.6 of it).
    d = evaluate(make_model(), W(us=0.53, intl=0.08, bonds=0.37), AS_OF)
    assert d.reasons == (
        "threshold: no band breached (closest to an edge: US_EQUITY 53.0% in 45.0%-55.0%)",
    )
    # A relative band: 2 pp of INTL_EQUITY's 10% target is further out of a 2.5 pp band.
    rel = make_model(bands={"INTL_EQUITY": Band(rel=0.25)})
    assert evaluate(rel, W(us=0.53, intl=0.08, bonds=0.37), AS_OF).reasons == (
        "threshold: no band breached (closest to an edge: INTL_EQUITY 8.0% in 7.5%-12.5%)",
    )


def test_quiet_calendar_names_the_next_review():
    m = make_model(trigger=TriggerSpec("calendar", "quarterly"))
    d = evaluate(m, BREACH, AS_OF, last_reviewed=REVIEW)
    assert not d.fire
    assert d.reasons == ("calendar: next quarterly review 2027-01-04 (last reviewed 2026-10-01)",)
    d = evaluate(m, BREACH, AS_OF)  # no history: the next review date
    assert d.reasons == (
        "calendar: next quarterly review 2027-01-04 (no earlier review on record)",
    )


def test_quiet_hybrid_between_reviews_without_a_breach():
    d = evaluate(make_model(trigger=HYBRID), QUIET, AS_OF, AFTER_REVIEW)
    assert d.reasons == (
        "hybrid: next quarterly review 2027-01-04 (last rebalanced 2026-10-05), no band "
        "breached (closest to an edge: US_EQUITY 53.0% in 45.0%-55.0%)",
    )


def test_quiet_hybrid_review_without_a_breach():
    d = evaluate(make_model(trigger=HYBRID), QUIET, REVIEW, BEFORE_REVIEW)
    assert not d.fire
    assert d.reasons == (
        "hybrid: quarterly review due 2026-10-01 (last rebalanced 2026-09-01), no band "
        "breached (closest to an edge: US_EQUITY 53.0% in 45.0%-55.0%)",
    )


def test_quiet_reasons_name_a_cash_flow_below_its_trigger():
    m = make_model(trigger=FLOW)
    d = evaluate(m, QUIET, AS_OF, cash_flow=-2_000.0)
    assert d.reasons == (
        "threshold: no band breached (closest to an edge: US_EQUITY 53.0% in 45.0%-55.0%)",
        "withdrawal $2,000 < $5,000 cash-flow trigger",
    )
    d = evaluate(make_model(), QUIET, AS_OF, cash_flow=2_500.0)
    assert d.reasons[1] == "contribution $2,500 pending: no cash-flow trigger"


def test_composed_policies_keep_quiet_decisions_without_reasons():
    # Only the model's policy (policy_for) explains itself; its parts stay terse.
    assert Threshold(abs=0.05).evaluate(state(QUIET)).reasons == ()
    assert repr(policy_for(make_model())) == "Threshold.from_model('m')"


# -- the decision object -------------------------------------------------------------------


def test_decision_text():
    partial = evaluate(make_model(), BREACH, AS_OF)
    assert (
        str(partial)
        == "partial rebalance to band_edge: US_EQUITY 56.0% > 55.0% upper band (abs 5 pp)"
    )
    flow = evaluate(make_model(trigger=FLOW), QUIET, AS_OF, cash_flow=25_000)
    assert str(flow) == (
        "cash_only rebalance (buy_only): contribution $25,000 >= $5,000 cash-flow trigger"
    )
    annual = make_model(trigger=TriggerSpec("calendar", "annual"))
    full = evaluate(annual, QUIET, AS_OF, last_reviewed=date(2025, 1, 2))
    assert (
        str(full)
        == "full rebalance to target: annual review due 2026-01-02 (last reviewed 2025-01-02)"
    )
    assert str(evaluate(make_model(), QUIET, AS_OF)) == (
        "no rebalance (largest drift US_EQUITY 3.0%)"
    )


def test_max_drift_is_the_largest_absolute_drift():
    d = evaluate(make_model(), W(us=0.49, intl=0.07, bonds=0.42), AS_OF)
    assert d.max_drift_class == "US_BONDS" and d.max_drift == pytest.approx(0.04)


def test_decision_rejects_inconsistent_modes():
    with pytest.raises(ValueError):
        Decision(True)
    with pytest.raises(ValueError):
        Decision(False, "full")
    with pytest.raises(ValueError):
        Decision(True, "full", class_bounds={"X": (0.0, 1.0)})
    with pytest.raises(ValueError):
        Decision(True, "partial", "somewhere")


def test_decision_is_immutable_and_pickles():
    d = evaluate(make_model(), BREACH, AS_OF)
    with pytest.raises(TypeError):
        d.class_bounds["US_EQUITY"] = (0.0, 1.0)
    assert pickle.loads(pickle.dumps(d)) == d


# -- properties ----------------------------------------------------------------------------

WEIGHT = st.floats(-0.05, 1.0, allow_nan=False)


def _outside(m: Model, weights: dict[str, float]) -> bool:
    """Independent band check: the model's own bands, legacy classes against their band."""
    targets = m.class_targets
    for c, w in weights.items():
        band = m.class_target(c).band if c in targets else legacy_band(m)
        h = band.half_width(targets.get(c, 0.0))
        if math.isinf(h):
            continue
        t = targets.get(c, 0.0)
        if w < max(0.0, t - h) - 1e-9 or w > t + h + 1e-9:
            return True
    return False


MODELS = st.sampled_from(
    [
        make_model(),
        make_model(Band(abs=0.05, rel=0.25)),
        make_model(Band(abs=0.05, rel=0.25, combine="looser")),
        make_model(Band(rel=0.2), bands={"US_BONDS": Band(abs=0.03)}),
        make_model(rebalance_to="midpoint", outer=Band(abs=0.1)),
    ]
)


@settings(max_examples=300, deadline=None)
@given(MODELS, WEIGHT, WEIGHT, WEIGHT, WEIGHT, st.floats(0.0, 0.2))
def test_threshold_fires_iff_some_class_is_outside_its_band(m, us, intl, bonds, cash, gold):
    weights = {"US_EQUITY": us, "INTL_EQUITY": intl, "US_BONDS": bonds, CASH: cash, "GOLD": gold}
    d = Threshold.from_model(m).evaluate(state(weights, m))
    assert d.fire == _outside(m, weights)
    assert d.fire == bool(d.breaches)


@settings(max_examples=200, deadline=None)
@given(MODELS, WEIGHT, WEIGHT, WEIGHT, WEIGHT)
def test_partial_bounds_hold_the_target_and_sit_inside_the_bands(m, us, intl, bonds, cash):
    weights = {"US_EQUITY": us, "INTL_EQUITY": intl, "US_BONDS": bonds, CASH: cash}
    d = Threshold.from_model(m).evaluate(state(weights, m))
    if d.mode != "partial":
        return
    for c, (lo, hi) in d.class_bounds.items():
        t = m.class_target(c).target
        lo_band, hi_band = m.class_target(c).band.bounds(t)
        assert 0.0 <= lo <= t <= hi <= 1.0
        assert lo >= lo_band - 1e-12 and hi <= hi_band + 1e-12


def _due(frequency: str, rebalanced: date | None, reviewed: date | None, as_of: date) -> bool:
    """Independent review rule: some review date in (later of the two dates, as_of], or,
    with neither date, as_of is itself a review date."""
    known = [d for d in (rebalanced, reviewed) if d is not None]
    if not known:
        return review_dates(frequency, as_of, as_of) == [as_of]
    return bool(review_dates(frequency, max(known) + timedelta(days=1), as_of))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["monthly", "quarterly", "semiannual", "annual"]),
    WEIGHT,
    WEIGHT,
    st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    st.one_of(st.none(), st.integers(0, 400)),
    st.one_of(st.none(), st.integers(0, 400)),
    st.floats(-20_000, 20_000),
)
def test_hybrid_fires_only_on_a_due_review_with_breach_outer_breach_or_flow(
    freq, us, bonds, as_of, rebalanced_ago, reviewed_ago, flow
):
    spec = TriggerSpec("hybrid", freq, cash_flow_min=5000)
    m = make_model(outer=Band(abs=0.10), trigger=spec)
    weights = {"US_EQUITY": us, "INTL_EQUITY": 0.10, "US_BONDS": bonds, CASH: 0.02}
    rebalanced = None if rebalanced_ago is None else as_of - timedelta(days=rebalanced_ago)
    reviewed = None if reviewed_ago is None else as_of - timedelta(days=reviewed_ago)
    s = AccountState(as_of, weights, m, rebalanced, flow, None, reviewed)
    d = policy_for(m).evaluate(s)
    breaches = Threshold.from_model(m).breaches(s)
    due = _due(freq, rebalanced, reviewed, as_of)
    outer = any(b.tier == "outer" for b in breaches)
    big_flow = abs(flow) >= 5000
    assert d.fire == ((due and bool(breaches)) or outer or big_flow)
    if outer:
        assert d.mode == "full"
    elif not (due and breaches) and big_flow:
        assert d.mode == "cash_only"
