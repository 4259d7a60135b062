"""Triggers: calendar, threshold (abs, rel, 5/25), tiers, hybrid, cash flow, composition."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.calendar import is_business_day, next_business_day_on_or_after, review_dates
from planner.domain import CASH, Band, ClassTarget, Model, TriggerSpec
from planner.triggers import (
    AccountState,
    Calendar,
    CashFlow,
    Threshold,
    evaluate,
)

AS_OF = date(2026, 11, 20)


FIVE_PP = Band(abs=0.05)
THRESHOLD = TriggerSpec("threshold")


def model(
    band=FIVE_PP,
    outer=None,
    rebalance_to="band_edge",
    trigger=THRESHOLD,
    equity=0.60,
    cash=0.02,
) -> Model:
    classes = (
        ClassTarget("US_EQUITY", equity, ("VTI",), {"VTI": equity}, band, outer),
        # Bonds get a wide band so that only equity's drift matters in these tests.
        ClassTarget(
            "US_BONDS", 1 - equity - cash, ("BND",), {"BND": 1 - equity - cash}, Band(abs=0.20)
        ),
        ClassTarget(CASH, cash, (), {}, Band(abs=0.02), None),
    )
    return Model("m", classes, rebalance_to, trigger)


def weights(equity, cash=0.02):
    return {"US_EQUITY": equity, "US_BONDS": 1 - equity - cash, CASH: cash}


# -- calendar ------------------------------------------------------------------------------


def test_new_year_holiday_moves_review_to_next_business_day():
    assert not is_business_day(date(2026, 1, 1))
    assert next_business_day_on_or_after(date(2026, 1, 1)) == date(2026, 1, 2)


def test_weekend_moves_review_to_monday():
    # 2026-08-01 is a Saturday.
    assert next_business_day_on_or_after(date(2026, 8, 1)) == date(2026, 8, 3)


@pytest.mark.parametrize(
    ("frequency", "expected"),
    [
        ("monthly", 12),
        ("quarterly", 4),
        ("semiannual", 2),
        ("annual", 1),
    ],
)
def test_review_counts_per_year(frequency, expected):
    assert len(review_dates(frequency, date(2026, 1, 1), date(2026, 12, 31))) == expected


def test_calendar_fires_once_per_period():
    m = model(trigger=TriggerSpec("calendar", "quarterly"))
    due = evaluate(m, weights(0.60), AS_OF, last_rebalanced=date(2026, 9, 15))
    assert due.fire and due.mode == "full"
    assert due.reasons == ("quarterly review due 2026-10-01 (last rebalanced 2026-09-15)",)
    done = evaluate(m, weights(0.60), AS_OF, last_rebalanced=date(2026, 10, 1))
    assert not done.fire


def test_never_rebalanced_is_due():
    m = model(trigger=TriggerSpec("calendar", "annual"))
    assert evaluate(m, weights(0.6), AS_OF, last_rebalanced=None).fire


# -- thresholds ----------------------------------------------------------------------------


def test_absolute_band_reason():
    d = evaluate(model(), weights(0.662), AS_OF)
    assert d.fire and d.mode == "partial"
    assert d.reasons[0] == "US_EQUITY 66.2% > 65.0% upper band (abs 5 pp)"


def test_relative_band():
    m = model(band=Band(rel=0.20))  # 60% +/- 12 pp
    assert not evaluate(m, weights(0.71), AS_OF).fire
    assert evaluate(m, weights(0.73), AS_OF).fire


def test_five_twenty_five_rule_tighter():
    band = Band(abs=0.05, rel=0.25, combine="tighter")
    assert band.bounds(0.10) == pytest.approx((0.075, 0.125))
    assert band.bounds(0.60) == pytest.approx((0.55, 0.65))


def test_looser_combination():
    band = Band(abs=0.05, rel=0.25, combine="looser")
    assert band.bounds(0.10) == pytest.approx((0.05, 0.15))
    assert band.bounds(0.60) == pytest.approx((0.45, 0.75))


def test_per_class_override():
    classes = (
        ClassTarget("US_EQUITY", 0.6, ("VTI",), {"VTI": 0.6}, Band(abs=0.02), None),
        ClassTarget("US_BONDS", 0.38, ("BND",), {"BND": 0.38}, Band(abs=0.10), None),
        ClassTarget(CASH, 0.02, (), {}, Band(abs=0.05), None),
    )
    m = Model("m", classes, "band_edge", TriggerSpec("threshold"))
    d = evaluate(m, weights(0.63), AS_OF)
    assert d.fire and d.reasons == ("US_EQUITY 63.0% > 62.0% upper band (abs 2 pp)",)


def test_cash_is_a_class_with_its_own_band():
    d = evaluate(model(), {"US_EQUITY": 0.58, "US_BONDS": 0.37, CASH: 0.05}, AS_OF)
    assert d.fire
    assert any(r.startswith("CASH 5.0% > 4.0% upper band") for r in d.reasons)


def test_legacy_holding_outside_model_breaches():
    w = {"US_EQUITY": 0.55, "US_BONDS": 0.35, CASH: 0.02, "GOLD": 0.08}
    d = evaluate(model(), w, AS_OF)
    assert any(r.startswith("GOLD 8.0% > ") for r in d.reasons)


# -- tiers ---------------------------------------------------------------------------------


def test_inner_breach_is_partial_to_band_edge():
    d = evaluate(model(rebalance_to="band_edge"), weights(0.67), AS_OF)
    assert d.mode == "partial" and d.rebalance_to == "band_edge"
    assert d.class_bounds["US_EQUITY"] == pytest.approx((0.55, 0.65))


def test_inner_breach_midpoint_bounds():
    d = evaluate(model(rebalance_to="midpoint"), weights(0.67), AS_OF)
    assert d.class_bounds["US_EQUITY"] == pytest.approx((0.575, 0.625))
    # A class that did not breach only has to stay inside its band.
    assert d.class_bounds["US_BONDS"] == pytest.approx((0.18, 0.58))


def test_outer_breach_is_full_rebalance():
    m = model(outer=Band(abs=0.10), rebalance_to="midpoint")
    inner = evaluate(m, weights(0.67), AS_OF)
    outer = evaluate(m, weights(0.72), AS_OF)
    assert inner.mode == "partial"
    assert outer.mode == "full" and outer.rebalance_to == "target" and not outer.class_bounds
    assert "outer upper band" in outer.reasons[0]


def test_rebalance_to_target_makes_inner_breach_full():
    assert evaluate(model(rebalance_to="target"), weights(0.67), AS_OF).mode == "full"


# -- hybrid --------------------------------------------------------------------------------


def test_hybrid_needs_review_and_breach():
    m = model(trigger=TriggerSpec("hybrid", "quarterly"))
    off_calendar = evaluate(m, weights(0.67), AS_OF, last_rebalanced=date(2026, 10, 5))
    on_calendar = evaluate(m, weights(0.67), AS_OF, last_rebalanced=date(2026, 9, 1))
    quiet_review = evaluate(m, weights(0.61), AS_OF, last_rebalanced=date(2026, 9, 1))
    assert not off_calendar.fire
    assert on_calendar.fire and on_calendar.mode == "partial"
    assert not quiet_review.fire


def test_hybrid_outer_breach_fires_any_day():
    m = model(outer=Band(abs=0.10), trigger=TriggerSpec("hybrid", "quarterly"))
    d = evaluate(m, weights(0.72), AS_OF, last_rebalanced=date(2026, 10, 5))
    assert d.fire and d.mode == "full"


def test_force_on_calendar_overrides_quiet_review():
    m = model(trigger=TriggerSpec("hybrid", "quarterly", force_on_calendar=True))
    d = evaluate(m, weights(0.61), AS_OF, last_rebalanced=date(2026, 9, 1))
    assert d.fire and d.mode == "full"


# -- cash flow -----------------------------------------------------------------------------


def test_contribution_is_buy_only():
    m = model(trigger=TriggerSpec("threshold", cash_flow_min=5000))
    d = evaluate(m, weights(0.61), AS_OF, cash_flow=25_000)
    assert d.fire and d.mode == "cash_only" and d.cash_flow_mode == "buy_only"
    assert d.reasons == ("contribution $25,000 >= $5,000 cash-flow trigger",)


def test_withdrawal_is_sell_only():
    m = model(trigger=TriggerSpec("threshold", cash_flow_min=5000))
    d = evaluate(m, weights(0.61), AS_OF, cash_flow=-8_000)
    assert d.mode == "cash_only" and d.cash_flow_mode == "sell_only"


def test_small_flow_does_nothing():
    m = model(trigger=TriggerSpec("threshold", cash_flow_min=5000))
    assert not evaluate(m, weights(0.61), AS_OF, cash_flow=4_999).fire


def test_breach_beats_cash_flow_but_keeps_its_reason():
    m = model(trigger=TriggerSpec("threshold", cash_flow_min=5000))
    d = evaluate(m, weights(0.67), AS_OF, cash_flow=10_000)
    assert d.mode == "partial"
    assert any("contribution" in r for r in d.reasons)


# -- composition ---------------------------------------------------------------------------


def test_and_requires_both_or_takes_either():
    state_breach = AccountState(AS_OF, weights(0.67), model(), date(2026, 10, 5))
    hybrid = Calendar("quarterly") & Threshold(abs=0.05)
    either = Calendar("quarterly") | Threshold(abs=0.05)
    assert not hybrid.evaluate(state_breach).fire
    assert either.evaluate(state_breach).fire
    due = AccountState(AS_OF, weights(0.67), model(), date(2026, 9, 1))
    both = hybrid.evaluate(due)
    assert both.fire and both.reasons[0].startswith("quarterly review due 2026-10-01")
    assert "US_EQUITY 67.0% > 65.0% upper band (abs 5 pp)" in both.reasons


def test_or_takes_the_stronger_mode():
    state = AccountState(AS_OF, weights(0.67), model(), None, cash_flow=20_000)
    d = (CashFlow(5000) | Threshold(abs=0.05, rebalance_to="band_edge")).evaluate(state)
    assert d.mode == "partial"


def test_decision_str_is_readable():
    d = evaluate(model(), weights(0.662), AS_OF)
    assert str(d).startswith("partial rebalance to band_edge: US_EQUITY 66.2%")


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 0.98), st.floats(0.0, 0.3))
def test_threshold_fires_iff_some_class_outside_band(equity, cash):
    if equity + cash > 1:
        return
    w = weights(equity, cash)
    m = model()
    outside = any(
        not (
            c.band.bounds(c.target)[0] - 1e-12
            <= w[c.asset_class]
            <= c.band.bounds(c.target)[1] + 1e-12
        )
        for c in m.classes
    )
    assert evaluate(m, w, AS_OF).fire == outside
