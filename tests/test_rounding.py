"""Rounding a continuous solution to executable shares (planner.rounding), on hand-built
continuous solutions so that each rule is seen on its own."""

from __future__ import annotations

import numpy as np
import pytest

from constraints.base import BIG
from planner.rounding import RELIEF_METHODS, to_shares
from planner.search import solve_account
from tests.optimiser_helpers import diagonal_risk, make_inputs, make_template


def continuous(inputs, sold_shares, bought_shares):
    """Fractions of V from shares: ``sold_shares`` per lot slot, ``bought_shares`` per security."""
    sell = np.asarray(sold_shares, dtype=float) * inputs.lot_price / inputs.value
    buy = np.asarray(bought_shares, dtype=float) * inputs.prices / inputs.value
    return sell, buy


def realised(inputs, ex):
    gain = ex.sell_shares * (inputs.lot_price - inputs.lot_unit_cost)
    return float(gain.sum()), float(gain[~inputs.lot_long_term].sum())


def one_security(sales, **kw):
    """Security X at $100: a gain lot of 1,000 shares at $50 and a loss lot of 300 at $200."""
    inputs = make_inputs(
        ["X", "Y"],
        [100.0, 50.0],
        [(0, 1000.0, 50.0, True), (0, 300.0, 200.0, True)],
        slots=2,
        goal=[0.5, 0.5],
        **kw,
    )
    sell, buy = continuous(inputs, [*sales, 0.0, 0.0], [0.0, 0.0])
    return inputs, sell, buy


def test_optimal_relief_keeps_the_optimisers_lots():
    """The reviewer's case: the optimiser nets $0 against a $0 budget by selling 600 shares
    of the gain lot and 300 of the loss lot; rounding used to sell 900 of the gain lot."""
    inputs, sell, buy = one_security([600.0, 300.0], gain_budget=0.0)
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares[:2].tolist() == [600.0, 300.0]
    assert realised(inputs, ex)[0] == 0.0
    assert ex.gain_excess == 0.0 and ex.notes == ()


def test_largest_remainder_within_the_security_total():
    inputs, sell, buy = one_security([600.4, 299.6])
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares[:2].tolist() == [600.0, 300.0]


def test_rounding_over_the_gain_budget_moves_a_share_to_the_loss_lot():
    """600.6 + 299.4 rounds to 601 + 299 ($150 of gain against a $0 budget): one share
    moves to the loss lot instead, same 900 shares in all."""
    inputs, sell, buy = one_security([600.6, 299.4], gain_budget=0.0)
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares[:2].tolist() == [600.0, 300.0]
    assert realised(inputs, ex)[0] <= 0.0 and ex.gain_excess == 0.0


def test_rounding_over_the_short_term_cap_moves_to_a_long_term_lot():
    inputs = make_inputs(
        ["X", "Y"],
        [100.0, 50.0],
        [(0, 100.0, 60.0, False), (0, 100.0, 60.0, True)],
        slots=2,
        goal=[0.5, 0.5],
        st_gain_cap=40.0 * 10.6,
    )
    sell, buy = continuous(inputs, [10.6, 5.2, 0.0, 0.0], [0.0, 0.0])
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares[:2].tolist() == [10.0, 6.0]
    assert realised(inputs, ex)[1] <= 40.0 * 10.6


def test_a_sale_shrinks_when_no_lot_can_take_the_excess():
    inputs = make_inputs(
        ["X", "Y"], [100.0, 50.0], [(0, 100.0, 60.0, True)], slots=1, goal=[0.5, 0.5]
    )
    inputs.gain_budget = 40.0 * 10.6
    sell, buy = continuous(inputs, [10.6, 0.0], [0.0, 0.0])
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares[0] == 10.0 and ex.gain_excess == 0.0
    assert ex.notes == (
        "sells fewer shares than planned to keep realised gains within limits: 1 X",
    )


def test_gain_excess_of_the_optimisers_own_plan_is_reported():
    """A plan that already breaks the budget (e.g. solved without the gain rule) keeps its
    sales, and the excess is reported rather than silently passed on."""
    inputs, sell, buy = one_security([10.0, 0.0], gain_budget=100.0)
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares[0] == 10.0
    assert ex.gain_excess == pytest.approx(400.0)
    assert any("exceed the gain budget $100.00 by $400.00" in note for note in ex.notes)
    untaxed, sell, buy = one_security([10.0, 0.0], gain_budget=100.0, taxable=False)
    assert to_shares(untaxed, sell, buy, whole_shares=True).gain_excess == 0.0


def wash_pair(**kw):
    """A and B are substantially identical (group G). A holds an old loss lot and a newer gain
    lot; the optimiser sells 50 shares of the gain lot and buys B."""
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 100.0],
        [(0, 100.0, 150.0, True), (0, 100.0, 80.0, True)],
        slots=2,
        goal=[0.4, 0.6],
        groups=["G", "G"],
        lot_acquired=np.array(["2020-01-01", "2023-01-01", "2020-01-01", "2020-01-01"]).astype(
            "datetime64[D]"
        ),
        **kw,
    )
    sell, buy = continuous(inputs, [0.0, 50.0, 0.0, 0.0], [40.0, 0.0][::-1])
    return inputs, sell, buy


@pytest.mark.parametrize("method", RELIEF_METHODS)
def test_relief_never_sells_a_loss_lot_of_a_group_it_buys(method):
    inputs, sell, buy = wash_pair()
    ex = to_shares(inputs, sell, buy, whole_shares=True, method=method)
    assert ex.buy_shares.tolist() == [0.0, 40.0]
    assert ex.sell_shares.tolist() == [0.0, 50.0, 0.0, 0.0]


def test_fixed_relief_over_the_gain_budget_keeps_the_optimisers_lots():
    """FIFO would sell the old lot ($90 a share of gain) where the optimiser sold the new
    one at cost; the $100 budget keeps the optimiser's lot, with a note."""
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 100.0],
        [(0, 100.0, 10.0, True), (0, 100.0, 100.0, True)],
        slots=2,
        goal=[0.4, 0.6],
        gain_budget=100.0,
        lot_acquired=np.array(["2020-01-01", "2023-01-01", "2020-01-01", "2020-01-01"]).astype(
            "datetime64[D]"
        ),
    )
    sell, buy = continuous(inputs, [0.0, 50.0, 0.0, 0.0], [0.0, 50.0])
    ex = to_shares(inputs, sell, buy, whole_shares=True, method="fifo")
    assert ex.sell_shares.tolist() == [0.0, 50.0, 0.0, 0.0]
    assert ex.notes == (
        "fifo relief would break the gain budget: the optimiser's lots are sold instead for A",
    )
    inputs.gain_budget = None  # no budget: FIFO as asked
    ex = to_shares(inputs, sell, buy, whole_shares=True, method="fifo")
    assert ex.sell_shares.tolist() == [50.0, 0.0, 0.0, 0.0] and ex.notes == ()


def forced_buy(cash):
    """The optimiser sells $1,000 of A and buys exactly the $1,000 minimum of B at $33.33."""
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 33.33],
        [(0, 100.0, 100.0, True)],
        slots=1,
        cash=cash,
        goal=[0.5, 0.5],
        min_trade_value=[1000.0, 1000.0],
    )
    sell, buy = continuous(inputs, [10.0, 0.0], [0.0, 1000.0 / 33.33])
    return inputs, sell, buy


def test_a_buy_forced_to_the_minimum_rounds_up_to_it():
    inputs, sell, buy = forced_buy(cash=100.0)
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.buy_shares.tolist() == [0.0, 31.0]  # 30 shares would be $999.90
    assert ex.cash_after == pytest.approx(100.0 + 1000.0 - 31 * 33.33)


def test_a_forced_buy_the_cash_cannot_round_up_is_dropped():
    inputs, sell, buy = forced_buy(cash=10.0)
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.buy_shares.tolist() == [0.0, 0.0]
    assert ex.cash_after == pytest.approx(1010.0) and ex.cash_shortfall == 0.0


def test_a_sale_forced_to_the_minimum_rounds_up_to_it():
    inputs = make_inputs(
        ["A", "B"],
        [33.33, 50.0],
        [(0, 100.0, 33.33, True)],
        slots=1,
        goal=[0.5, 0.5],
        min_trade_value=[1000.0, 0.0],
    )
    sell, buy = continuous(inputs, [1000.0 / 33.33, 0.0], [0.0, 0.0])
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares[0] == 31.0


def test_fractional_sale_within_a_step_of_the_lot_sells_it_whole():
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 50.0],
        [(0, 6.0, 90.0, True), (0, 6.1234567, 90.0, True), (0, 10.0, 90.0, True)],
        slots=3,
        goal=[0.5, 0.5],
    )
    sales = [5.999999, 6.1234561, 4.0, 0.0, 0.0, 0.0]
    sell, buy = continuous(inputs, sales, [0.0, 0.0])
    ex = to_shares(inputs, sell, buy, whole_shares=False)
    assert ex.sell_shares[:3] == pytest.approx([6.0, 6.1234567, 4.0], abs=1e-12)
    # Whole shares: 6 + 6 + 4; the 0.1234567 share stays (the position is not emptied).
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares[:3].tolist() == [6.0, 6.0, 4.0]


def banded(upper_eq=BIG, lower_eq=-BIG, ceiling=BIG, sell_a=0.0, buy_a=20.3, buy_b=10.2):
    """EQ (A, $100) and BD (B, $50); $10,000 cash; V = $110,000."""
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 50.0],
        [(0, 600.0, 100.0, True), (1, 800.0, 50.0, True)],
        slots=1,
        cash=10000.0,
        goal=[0.5, 0.4],
        classes=["EQ", "BD"],
    )
    sell, buy = continuous(inputs, [sell_a, 0.0], [buy_a, buy_b])
    eq = (60000.0 - 100.0 * sell_a + 100.0 * buy_a) / inputs.value
    inputs.class_lower = np.array([-BIG, eq if lower_eq is None else lower_eq])  # [BD, EQ]
    inputs.class_upper = np.array([BIG, eq if upper_eq is None else upper_eq])
    inputs.cash_ceiling_weight = ceiling
    return inputs, sell, buy


def eq_weight(inputs, ex):
    sold = np.bincount(inputs.lot_security, weights=ex.sell_shares, minlength=2)
    return (600.0 - sold[0] + ex.buy_shares[0]) * 100.0 / inputs.value


def test_buys_round_up_to_keep_a_class_at_its_lower_edge():
    inputs, sell, buy = banded(lower_eq=None)
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.buy_shares.tolist() == [21.0, 10.0]
    assert eq_weight(inputs, ex) >= inputs.class_lower[1]


def test_buys_round_up_to_keep_cash_under_its_ceiling():
    inputs, sell, buy = banded()
    inputs.cash_ceiling_weight = (10000.0 - 2030.0 - 510.0) / inputs.value
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.buy_shares.tolist() == [21.0, 10.0]
    assert ex.cash_after <= inputs.cash_ceiling_weight * inputs.value


def test_buys_top_up_past_one_step_to_bring_cash_under_its_ceiling():
    """Rounding each buy up one step leaves cash $40 over its ceiling: one more share of B,
    whose class (BD) is the one under its goal."""
    inputs, sell, buy = banded()
    inputs.cash_ceiling_weight = (10000.0 - 2030.0 - 510.0 - 150.0) / inputs.value
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.buy_shares.tolist() == [21.0, 12.0]
    assert ex.cash_after <= inputs.cash_ceiling_weight * inputs.value


def test_a_sale_rounds_up_to_keep_a_class_at_its_upper_edge():
    inputs, sell, buy = banded(upper_eq=None, sell_a=20.3, buy_a=0.0)
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares[0] == 21.0
    assert eq_weight(inputs, ex) <= inputs.class_upper[1]
    # Unbounded: plain rounding.
    inputs, sell, buy = banded(sell_a=20.3, buy_a=0.0)
    assert to_shares(inputs, sell, buy, whole_shares=True).sell_shares[0] == 20.0


def test_a_round_up_that_would_break_a_class_upper_edge_is_skipped():
    inputs, sell, buy = banded(upper_eq=None, buy_a=20.6)
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.buy_shares[0] == 20.0


def test_unknown_relief_method_is_refused():
    inputs, sell, buy = one_security([10.0, 0.0])
    with pytest.raises(ValueError, match="relief method"):
        to_shares(inputs, sell, buy, whole_shares=True, method="random")


def test_whole_share_repair_keeps_cash_and_lots():
    inputs = make_inputs(
        ["A", "B"],
        [333.33, 77.77],
        [(0, 10.5, 100.0, True), (0, 4.25, 300.0, False)],
        slots=2,
        cash=150.0,
        goal=[0.2, 0.79],
        cost_per_dollar=[0.0005, 0.0005],
        cash_floor=0.005,
    )
    template = make_template(inputs, diagonal_risk(["A", "B"], [0.2, 0.2]), 2)
    sol = solve_account(template, inputs).solution
    ex = to_shares(inputs, sol.sell, sol.buy, whole_shares=True)
    assert np.all(ex.sell_shares <= inputs.lot_shares + 1e-12)
    assert ex.cash_after >= inputs.cash_floor_weight * inputs.value - 1e-9
    assert np.all(np.abs(ex.buy_shares - np.round(ex.buy_shares)) < 1e-12)
    per_security = np.bincount(inputs.lot_security, weights=ex.sell_shares, minlength=2)
    held = np.bincount(inputs.lot_security, weights=inputs.lot_shares, minlength=2)
    whole_or_all = np.isclose(per_security, np.round(per_security)) | np.isclose(per_security, held)
    assert whole_or_all.all()


# -- dust: no order below max(dust_value, min_trade_value) but a whole position -------------


def dusty(cash=0.0, dust=100.0):
    """A: 100 shares at $50; B: one share at $50 (a whole position worth $50)."""
    return make_inputs(
        ["A", "B", "C"],
        [50.0, 50.0, 50.0],
        [(0, 100.0, 40.0, True), (1, 1.0, 40.0, True)],
        slots=1,
        cash=cash,
        goal=[0.5, 0.0, 0.5],
        dust_value=dust,
    )


def test_a_buy_below_the_dust_size_is_not_made():
    # $60 of cash buys one $50 share of C: below the $100 dust size.
    for dust, bought in ((0.0, 1.0), (100.0, 0.0)):
        inputs = dusty(cash=60.0, dust=dust)
        sell, buy = continuous(inputs, [0.0, 0.0, 0.0], [0.0, 0.0, 1.2])
        ex = to_shares(inputs, sell, buy, whole_shares=True)
        assert ex.buy_shares.tolist() == [0.0, 0.0, bought], dust
        assert ex.notes == ()


def test_a_sale_below_the_dust_size_is_not_made_but_a_whole_position_is():
    inputs = dusty()
    sell, buy = continuous(inputs, [1.0, 1.0, 0.0], [0.0, 0.0, 0.0])
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares.tolist() == [0.0, 1.0, 0.0]  # B's $50 closes the position
    without = dusty(dust=0.0)
    ex = to_shares(without, *continuous(without, [1.0, 1.0, 0.0], [0.0] * 3), whole_shares=True)
    assert ex.sell_shares.tolist() == [1.0, 1.0, 0.0]


def test_a_sale_below_the_dust_size_that_cash_needs_is_made_at_the_dust_size():
    # A $40 debit: the optimiser sells one $50 share of A; the repair sells the $100 minimum.
    inputs = dusty(cash=-40.0)
    sell, buy = continuous(inputs, [1.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    ex = to_shares(inputs, sell, buy, whole_shares=True)
    assert ex.sell_shares.tolist() == [2.0, 0.0, 0.0]
    assert ex.cash_after == pytest.approx(60.0) and ex.cash_shortfall == 0.0
    assert ex.notes == (
        "sale of A $50.00 is below the $100 dust size: sold $100.00 to keep cash at its floor",
    )
