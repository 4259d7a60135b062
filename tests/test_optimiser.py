"""The rebalance program on tiny problems whose optimum is known independently."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import constraints as C
from planner.errors import InfeasibleError
from planner.program.objective import PP2, TrackingError, TransactionCost, default_objective
from planner.rounding import to_shares
from planner.search import solve_account
from tests.optimiser_helpers import (
    all_constraints,
    covariance_risk,
    diagonal_risk,
    make_inputs,
    make_template,
)

TE_VALUE = 0.005
LAMBDA = TE_VALUE / PP2  # objective weight per unit of tracking variance


def test_two_securities_closed_form():
    """Sell A, buy B with proceeds net of costs: s = (1+r)(1 - k/(L s2)) / (2(1+r^2))."""
    k, sigma = 0.001, 0.2
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 50.0],
        [(0, 1000, 100.0, True)],
        slots=1,
        goal=[0.5, 0.5],
        taxable=False,
        cost_per_dollar=[k, k],
    )
    template = make_template(inputs, diagonal_risk(["A", "B"], [sigma, sigma]), 1)
    report = solve_account(template, inputs)
    r = (1 - k) / (1 + k)
    expected_sell = (1 + r) * (1 - k / (LAMBDA * sigma**2)) / (2 * (1 + r * r))
    assert report.solution.sell[0] == pytest.approx(expected_sell, abs=1e-6)
    assert report.solution.buy[1] == pytest.approx(r * expected_sell, abs=1e-6)
    assert report.solution.buy[0] == pytest.approx(0.0, abs=1e-7)


def test_tracking_error_and_cost_match_independent_formulation():
    """With only tracking error and linear cost, a security-level model written directly in
    cvxpy (no lots, no templates, no parameters) gives the same trades to 1e-6."""
    rng = np.random.default_rng(7)
    n = 5
    a = rng.normal(size=(n, n))
    cov = a @ a.T / n * 0.04 + np.eye(n) * 0.002
    symbols = [f"S{i}" for i in range(n)]
    prices = rng.uniform(20, 200, n)
    held = rng.uniform(50, 500, n)
    lots = [(i, held[i], prices[i], True) for i in range(n)]  # no gains: tax plays no part
    goal = np.array([0.3, 0.25, 0.2, 0.15, 0.08])
    k = rng.uniform(0.0002, 0.002, n)
    inputs = make_inputs(
        symbols, prices, lots, slots=1, cash=2000.0, goal=goal, cost_per_dollar=k, taxable=False
    )
    objective = TE_VALUE * TrackingError() + TransactionCost()
    template = make_template(inputs, covariance_risk(symbols, cov), 1, objective=objective)
    report = solve_account(template, inputs)
    sales = report.solution.sell
    buys = report.solution.buy

    h = inputs.hold_weight
    s = cp.Variable(n, nonneg=True)
    b = cp.Variable(n, nonneg=True)
    w = h - s + b
    cash = inputs.cash_weight + cp.sum(s) - cp.sum(b) - k @ (s + b)
    prob = cp.Problem(
        cp.Minimize(LAMBDA * cp.quad_form(w - goal, cov) + k @ (s + b)),
        [s <= h, cash >= 0],
    )
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    np.testing.assert_allclose(sales, s.value, atol=1e-6)
    np.testing.assert_allclose(buys, b.value, atol=1e-6)


def test_lot_choice_matches_enumeration():
    """One security with four lots: the optimiser's lot sales equal the best of every
    order in which the lots could be consumed (exhaustive), with the amount optimised."""
    prices = [100.0, 100.0]
    lots = [
        (0, 100, 60.0, True),
        (0, 100, 95.0, False),
        (0, 100, 130.0, False),
        (0, 100, 80.0, True),
    ]
    inputs = make_inputs(
        ["A", "B"],
        prices,
        lots,
        slots=4,
        goal=[0.5, 0.5],
        st_rate=0.40,
        lt_rate=0.20,
        loss_benefit=0.5,
        cost_per_dollar=[0.0005, 0.0005],
    )
    risk = diagonal_risk(["A", "B"], [0.2, 0.2])
    template = make_template(inputs, risk, 4)
    report = solve_account(template, inputs)
    v = inputs.value
    lot_value = inputs.lot_value_weight[:4]
    # Tax per dollar sold: rate x gain fraction (a loss saves tax at its rate).
    taxes = np.array([0.20 * 0.4, 0.40 * 0.05, 0.40 * (-0.3), 0.20 * 0.2])
    # The net loss beyond the $3,000 ordinary deduction (worth the ST rate) only carries
    # forward: that part counts at loss_benefit = 0.5.
    offset = 0.40 * 3000 / v

    def objective(order, amount):
        left, net = amount, 0.0
        for j in order:
            take = min(left, lot_value[j])
            net += taxes[j] * take
            left -= take
        tax = net + 0.5 * max(0.0, -net - offset)
        k = 0.0005
        bought = amount * (1 - k) / (1 + k)
        te = LAMBDA * 0.04 * ((0.5 - (1 - amount)) ** 2 + (0.5 - bought) ** 2)
        return te + k * (amount + bought) + tax

    best = min(
        (
            minimize_scalar(
                lambda x, o=order: objective(o, x),
                bounds=(0, 1),
                method="bounded",
                options={"xatol": 1e-10},
            ).fun,
            order,
        )
        for order in itertools.permutations(range(4))
    )
    assert report.solution.objective == pytest.approx(best[0], abs=1e-7)
    # Cheapest-tax lot first: the loss lot is sold whole.
    assert report.solution.sell[2] == pytest.approx(lot_value[2], abs=1e-6)
    assert v > 0


def test_loss_is_harvested_into_substitute_not_rebought():
    """A loss lot in A is sold and replaced by B (another wash group, 0.99 correlated);
    A itself is not bought back in the same plan (that would be a wash sale)."""
    cov = np.array([[0.04, 0.0396], [0.0396, 0.04]])
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 100.0],
        [(0, 1000, 130.0, False)],
        slots=1,
        goal=[1.0, 0.0],
        classes=["EQ", "EQ"],
        groups=["GA", "GB"],
        st_rate=0.40,
        loss_benefit=1.0,
        cost_per_dollar=[0.0002, 0.0002],
    )
    template = make_template(inputs, covariance_risk(["A", "B"], cov), 1)
    report = solve_account(template, inputs)
    assert report.solution.sell[0] > 0.9
    assert report.solution.buy[1] > 0.9
    assert report.solution.buy[0] < 1e-7


def test_same_group_substitute_is_not_a_harvest():
    """If B is in A's wash group, buying it after a loss sale is a wash sale: the plan
    either keeps A or sells it without buying anything in the group."""
    cov = np.array([[0.04, 0.0396], [0.0396, 0.04]])
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 100.0],
        [(0, 1000, 130.0, False)],
        slots=1,
        goal=[1.0, 0.0],
        classes=["EQ", "EQ"],
        groups=["G", "G"],
        cost_per_dollar=[0.0002, 0.0002],
    )
    template = make_template(inputs, covariance_risk(["A", "B"], cov), 1)
    sol = solve_account(template, inputs).solution
    loss_sold = sol.sell[0] > 1e-7
    bought = sol.buy.sum() > 1e-7
    assert not (loss_sold and bought)


def test_high_bracket_trades_less_than_tax_exempt():
    """Same holdings with large short-term gains: the taxable account realises less."""
    common = dict(
        symbols=["EQ", "BD"],
        prices=[100.0, 100.0],
        lots=[(0, 700, 50.0, False), (1, 300, 100.0, True)],
        slots=1,
        goal=[0.6, 0.4],
        classes=["EQ", "BD"],
        cost_per_dollar=[0.0002, 0.0002],
    )
    symbols, prices, lots = common.pop("symbols"), common.pop("prices"), common.pop("lots")
    risk = covariance_risk(symbols, np.array([[0.16**2, 0.0], [0.0, 0.05**2]]))
    taxed = make_inputs(symbols, prices, lots, taxable=True, st_rate=0.408, lt_rate=0.238, **common)
    exempt = make_inputs(symbols, prices, lots, taxable=False, **common)
    t = make_template(taxed, risk, 1)
    sold_taxed = solve_account(t, taxed).solution.sell[0]
    sold_exempt = solve_account(t, exempt).solution.sell[0]
    assert sold_exempt == pytest.approx(0.1, abs=2e-3)  # fixes the 10 pp drift
    assert sold_taxed < 0.5 * sold_exempt


def test_infeasible_account_names_conflicting_constraints():
    """A cash floor that needs sales, while everything held is on the do-not-sell list."""
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 100.0],
        [(0, 100, 100.0, True)],
        slots=1,
        cash=-500.0,
        goal=[0.5, 0.5],
        do_not_sell=np.array([True, False]),
    )
    template = make_template(inputs, diagonal_risk(["A", "B"], [0.2, 0.2]), 1)
    with pytest.raises(InfeasibleError) as info:
        solve_account(template, inputs)
    text = str(info.value)
    assert "do-not-sell: A" in text
    assert "cash floor" in text


def test_minimum_trade_drops_small_trades():
    """A trade worth less than half the minimum is dropped; others are 0 or >= minimum."""
    inputs = make_inputs(
        ["A", "B", "C"],
        [100.0, 100.0, 100.0],
        [(0, 497, 100.0, True), (1, 300, 100.0, True), (2, 200, 100.0, True)],
        slots=1,
        cash=300.0,
        goal=[0.5, 0.3, 0.2],
        taxable=False,
        min_trade_value=[1000.0, 1000.0, 1000.0],
        cost_per_dollar=[0.0002] * 3,
    )
    template = make_template(inputs, diagonal_risk(["A", "B", "C"], [0.2] * 3), 1)
    report = solve_account(template, inputs)
    sol = report.solution
    dollars = (sol.sell + sol.buy) * inputs.value
    assert np.all((dollars < 1.0) | (dollars >= 1000.0 - 1e-3))
    # The $300 of cash would buy 3 shares of A ($300 < $1,000): dropped, not forced.
    assert report.inputs.min_trade[0] == 2
    ex = to_shares(inputs, sol.sell, sol.buy, whole_shares=True)
    traded = ex.buy_shares * inputs.prices + np.bincount(
        inputs.lot_security, weights=ex.sell_shares * inputs.lot_price, minlength=3
    )
    assert np.all((traded == 0) | (traded >= 1000.0))


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


def test_constraint_labels_are_readable():
    labels = [repr(c) for c in all_constraints()] + [repr(C.TurnoverCap(0.1))]
    assert "LotBounds(0 <= sold <= lot shares)" in labels
    assert "TurnoverCap(0.1)" in labels
    assert all("object at 0x" not in label for label in labels)


def test_objective_composes():
    obj = 0.005 * TrackingError() + TransactionCost() + 0.5 * default_objective().terms[2][1]
    assert [w for w, _ in obj.terms] == [0.005, 1.0, 0.5]
    assert "TrackingError" in repr(obj)


def test_market_impact_shrinks_large_trades():
    """The 3/2-power impact term (solved by Clarabel) makes the plan trade less."""
    from planner.program.objective import MarketImpact

    common = dict(slots=1, goal=[0.5, 0.5], taxable=False, cost_per_dollar=[0.0005, 0.0005])
    plain = make_inputs(["A", "B"], [100.0, 50.0], [(0, 1000, 100.0, True)], **common)
    costly = make_inputs(
        ["A", "B"],
        [100.0, 50.0],
        [(0, 1000, 100.0, True)],
        impact=np.array([0.5, 0.5]),
        **common,
    )
    risk = diagonal_risk(["A", "B"], [0.2, 0.2])
    objective = default_objective() + MarketImpact()
    template = make_template(plain, risk, 1, objective=objective)
    from planner.solvers import chain

    assert [chain(template).solver(n) is None for n in ("LOTQP", "PIQP", "CLARABEL")] == [
        True,
        True,
        False,
    ]
    without = solve_account(template, plain).solution
    with_impact = solve_account(template, costly).solution
    assert with_impact.ok and without.ok
    assert with_impact.sell[0] < without.sell[0] - 0.01
