"""planner.program.objective: each term on tiny problems whose optimum or value is known
independently (closed forms, a direct cvxpy formulation, tax worked out in dollars)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from planner.program.objective import (
    PP2,
    MarketImpact,
    Tax,
    TrackingError,
    TransactionCost,
    default_objective,
    tax_per_dollar,
)
from planner.search import solve_account
from planner.solvers import chain
from tests.optimiser_helpers import covariance_risk, diagonal_risk, make_inputs, make_template

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


def test_objective_composes():
    obj = 0.005 * TrackingError() + TransactionCost() + 0.5 * default_objective().terms[2][1]
    assert [w for w, _ in obj.terms] == [0.005, 1.0, 0.5]
    assert "TrackingError" in repr(obj)


def test_market_impact_shrinks_large_trades():
    """The 3/2-power impact term (solved by Clarabel) makes the plan trade less."""
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

    assert [chain(template).solver(n) is None for n in ("LOTQP", "PIQP", "CLARABEL")] == [
        True,
        True,
        False,
    ]
    without = solve_account(template, plain).solution
    with_impact = solve_account(template, costly).solution
    assert with_impact.ok and without.ok
    assert with_impact.sell[0] < without.sell[0] - 0.01


# -- Tax ------------------------------------------------------------------------------------

PRICE, LOSS_COST, SHARES = 100.0, 130.0, 1000.0
ST_RATE, LT_RATE = 0.40, 0.20
HARVEST_COV = np.array([[0.04, 0.0396], [0.0396, 0.04]])


def _harvest(loss_benefit: float, taxable: bool = True):
    """A holds one short-term lot of 1,000 shares bought at $130, now $100 (a $30,000 loss
    if sold whole); B is a 0.99-correlated substitute in another wash group; the goal is
    all A, so only the tax benefit pays for a swap. Account value $100,000."""
    inputs = make_inputs(
        ["A", "B"],
        [PRICE, PRICE],
        [(0, SHARES, LOSS_COST, False)],
        slots=1,
        goal=[1.0, 0.0],
        classes=["EQ", "EQ"],
        groups=["GA", "GB"],
        taxable=taxable,
        st_rate=ST_RATE,
        lt_rate=LT_RATE,
        loss_benefit=loss_benefit,
        cost_per_dollar=[0.0002, 0.0002],
    )
    risk = covariance_risk(["A", "B"], HARVEST_COV)
    template = make_template(inputs, risk, 1)
    return inputs, risk, template, solve_account(template, inputs).solution


def _tax_in_dollars(shares_sold: float, loss_benefit: float) -> float:
    """The Tax term by hand, in dollars: the short-term loss saves 40% of it; the part of
    the net loss beyond the $3,000 ordinary deduction (worth 40% x $3,000 = $1,200) counts
    at ``loss_benefit`` of its face value."""
    gain = shares_sold * (PRICE - LOSS_COST)  # negative: a loss
    net = ST_RATE * gain
    usable = ST_RATE * 3000.0
    beyond = max(0.0, -net - usable)
    return net + (1.0 - loss_benefit) * beyond


@pytest.mark.parametrize("loss_benefit", [0.5, 1.0])
def test_tax_counts_a_loss_beyond_the_year_at_loss_benefit(loss_benefit):
    """At the solution the Tax term equals the hand computation in dollars, and the sale
    realises more loss than the year can use, so the loss_benefit part is exercised."""
    inputs, risk, template, sol = _harvest(loss_benefit)
    assert sol.ok
    value = inputs.value
    assert value == pytest.approx(SHARES * PRICE)
    shares_sold = sol.sell[0] * value / PRICE
    assert shares_sold * (LOSS_COST - PRICE) * ST_RATE > 2 * ST_RATE * 3000.0
    weights = inputs.hold_weight - np.bincount(inputs.lot_security, weights=sol.sell) + sol.buy
    term = Tax().value(inputs, risk, sol.sell, sol.buy, weights)
    assert term * value == pytest.approx(_tax_in_dollars(shares_sold, loss_benefit), abs=1e-6)
    # The solver's objective is the weighted sum of the terms' values at its solution.
    terms = template.objective.terms
    total = sum(w * t.value(inputs, risk, sol.sell, sol.buy, weights) for w, t in terms)
    assert sol.objective == pytest.approx(total, abs=1e-8)


def test_tax_term_hand_values_at_fixed_sales():
    """Within the $3,000 the loss counts in full whatever loss_benefit is; beyond it, at
    loss_benefit: selling 500 shares ($15,000 loss, $6,000 of tax saved, $4,800 beyond the
    $1,200 the deduction is worth) is -$6,000 + (1 - b) x $4,800."""
    inputs, risk, _, _ = _harvest(0.25)
    weights = inputs.hold_weight
    for shares, expected in [
        (50.0, -600.0),  # $1,500 loss: $600 saved, within the deduction
        (100.0, -1200.0),  # exactly the $3,000 deduction
        (500.0, -6000.0 + 0.75 * 4800.0),
        (1000.0, -12000.0 + 0.75 * 10800.0),
    ]:
        sell = np.array([shares * PRICE / inputs.value, 0.0])  # slot 1: B's padding
        term = Tax().value(inputs, risk, sell, np.zeros(2), weights)
        assert term * inputs.value == pytest.approx(expected, abs=1e-9), shares


def test_worthless_carryforward_harvests_exactly_the_deduction():
    """With loss_benefit 0 a loss beyond the $3,000 deduction is worth nothing this year,
    so the plan harvests exactly $3,000 of loss (100 shares of the $30 loss lot) and stops:
    past that, each further dollar sold only costs tracking error and spread."""
    inputs, risk, _, sol = _harvest(0.0)
    shares_sold = sol.sell[0] * inputs.value / PRICE
    assert shares_sold == pytest.approx(100.0, abs=1e-3)
    weights = inputs.hold_weight - np.bincount(inputs.lot_security, weights=sol.sell) + sol.buy
    assert Tax().value(inputs, risk, sol.sell, sol.buy, weights) * inputs.value == pytest.approx(
        -1200.0, abs=1e-3
    )
    # With the whole loss valued, the plan sells every share of the lot.
    _, _, _, full = _harvest(1.0)
    assert full.sell[0] * inputs.value / PRICE == pytest.approx(SHARES, abs=1e-3)


def test_tax_per_dollar_on_a_hand_built_account():
    """Rate x (1 - cost / price) per lot slot: LT gain, ST loss, ST at cost, LT loss,
    padding slots 0."""
    inputs = make_inputs(
        ["A", "B"],
        [100.0, 50.0],
        [
            (0, 10.0, 80.0, True),  # LT gain of 20%: 0.20 x 0.20
            (0, 5.0, 125.0, False),  # ST loss of 25%: 0.40 x -0.25
            (1, 20.0, 50.0, False),  # at cost: no tax
            (1, 4.0, 60.0, True),  # LT loss of 20%: 0.20 x -0.20
        ],
        slots=3,
        goal=[0.5, 0.5],
        st_rate=0.40,
        lt_rate=0.20,
    )
    expected = [0.04, -0.10, 0.0, 0.0, -0.04, 0.0]
    np.testing.assert_allclose(tax_per_dollar(inputs), expected, rtol=0, atol=1e-15)


def test_ira_account_has_no_tax():
    """The same harvest in an IRA: no tax per dollar, a Tax term of 0 at any sale, and a
    plan that does not trade, since without tax nothing pays for the swap."""
    inputs, risk, template, sol = _harvest(0.5, taxable=False)
    np.testing.assert_array_equal(tax_per_dollar(inputs), np.zeros(2))
    for sell in (np.array([0.3, 0.0]), np.array([1.0, 0.0])):
        assert Tax().value(inputs, risk, sell, np.array([0.0, 0.3]), inputs.hold_weight) == 0.0
    assert sol.ok
    assert sol.sell[0] < 1e-7 and sol.buy.sum() < 1e-7
    taxed = _harvest(0.5, taxable=True)[3]
    assert taxed.sell[0] > 0.5  # the same account, taxable, harvests
