"""Heuristic mode against exact mode (SCIP) on small random accounts.

The exact mixed-integer solve is a global optimum of the same continuous objective, so the
heuristic can never beat it, and both must obey the non-convex rules: one direction per
security, never a buy and a loss sale in one wash group, every trade 0 or at least its
minimum (or the whole position). See examples/heuristic_gap.py for the gap itself.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from planner.search import TRADE_EPS, obeys_rules, solve_account, trades
from tests.optimiser_helpers import all_constraints, covariance_risk, make_inputs, make_template

pytest.importorskip("pyscipopt")

from planner.exact import solve_exact  # noqa: E402

SEEDS = range(15)
SLOTS = 3


def small_account(seed: int):
    """3-5 securities; the first two share a wash group (substitutes: same class, correlation
    0.98); 1-3 lots each, about a third of them at a loss, short- and long-term; minimum
    trades of 2-8 % of the account; a drifted goal; some cash."""
    r = np.random.default_rng(1000 + seed)
    n = int(r.integers(3, 6))
    symbols = [f"S{i}" for i in range(n)]
    prices = r.uniform(20, 200, n)
    lots = []
    for i in range(n):
        for _ in range(int(r.integers(1, SLOTS + 1))):
            loss = r.random() < 0.35
            cost = prices[i] * (r.uniform(1.05, 1.4) if loss else r.uniform(0.5, 0.95))
            lots.append((i, float(r.integers(5, 60)), float(cost), bool(r.random() < 0.5)))
    classes = ["C0", "C0", *(f"C{i}" for i in range(1, n - 1))]
    groups = ["G0", "G0", *(f"G{i}" for i in range(1, n - 1))]
    vols = r.uniform(0.05, 0.25, n)
    vols[1] = vols[0] * r.uniform(0.95, 1.05)
    corr = np.full((n, n), 0.3)
    corr[0, 1] = corr[1, 0] = 0.98
    np.fill_diagonal(corr, 1.0)
    cov = corr * np.outer(vols, vols)
    cash = float(r.uniform(0, 3000))
    held_value = sum(q * prices[i] for i, q, _, _ in lots) + cash
    inputs = make_inputs(
        symbols,
        prices,
        lots,
        slots=SLOTS,
        cash=cash,
        goal=r.dirichlet(np.ones(n)) * 0.98,
        classes=classes,
        groups=groups,
        cost_per_dollar=r.uniform(1e-4, 1e-3, n),
        min_trade_value=held_value * r.uniform(0.02, 0.08, n),
        loss_benefit=0.5,
        st_rate=0.408,
        lt_rate=0.238,
    )
    return inputs, covariance_risk(symbols, cov)


@pytest.fixture(scope="module")
def solved():
    out = []
    for seed in SEEDS:
        inputs, risk = small_account(seed)
        template = make_template(inputs, risk, SLOTS)
        heuristic = solve_account(template, inputs)
        exact = solve_exact(template, inputs, time_limit=20.0)
        out.append((seed, inputs, heuristic, exact))
    return out


def test_generated_accounts_have_what_the_rules_need(solved):
    """The accounts exercise the rules: loss lots in the shared wash group, minimum trades
    that bind, and plans that trade."""
    shared_losses = sum(
        bool((inputs.lot_loss & (inputs.lot_security < 2)).any()) for _, inputs, _, _ in solved
    )
    assert shared_losses >= 5
    traded = [
        (exact.solution.buy > TRADE_EPS).any() or (exact.solution.sell > TRADE_EPS).any()
        for *_, exact in solved
    ]
    assert sum(traded) >= 12
    assert (
        sum(bool(heuristic.notes) or heuristic.passes > 1 for _, _, heuristic, _ in solved) >= 3
    ), "the heuristic should have had to repair some relaxations"


@pytest.mark.parametrize("k", range(len(SEEDS)))
def test_exact_objective_is_never_worse_than_heuristic(solved, k):
    seed, inputs, heuristic, exact = solved[k]
    assert exact.solution.solver == "SCIP"
    assert exact.solution.objective <= heuristic.solution.objective + 1e-7, (
        seed,
        exact.solution.objective,
        heuristic.solution.objective,
    )


SCIP_NOISE = 1e-5
"""Trades up to this fraction of V in a direction that exact mode's binaries switched off:
SCIP's integrality tolerance (1e-6) times the big-M of 2 on buys, plus its feasibility
tolerance. Above the planner's TRADE_EPS (1e-7), so the rules see them as trades."""


def valid(inputs, sol) -> bool:
    return obeys_rules(all_constraints(), inputs, sol)


def without_scip_noise(sol):
    return replace(
        sol,
        sell=np.where(sol.sell > SCIP_NOISE, sol.sell, 0.0),
        buy=np.where(sol.buy > SCIP_NOISE, sol.buy, 0.0),
    )


def assert_rules(inputs, sol, where) -> None:
    """The rules as the constraints judge them, and written out once more."""
    assert valid(inputs, sol), where
    assert np.all(sol.sell <= inputs.lot_value_weight + 1e-7), where
    done = trades(inputs, sol)
    sales, loss_sales = done.sales, done.loss_sales
    assert not np.any((sol.buy > TRADE_EPS) & (sales > TRADE_EPS)), where
    shared = slice(0, 2)  # the one wash group with two members
    assert not (sol.buy[shared].sum() > TRADE_EPS and loss_sales[shared].sum() > TRADE_EPS), where
    dollars = (sales + sol.buy) * inputs.value
    whole = sales >= inputs.hold_weight - 1e-9
    traded = dollars > TRADE_EPS * inputs.value
    assert np.all(~traded | whole | (dollars >= inputs.min_trade_value * (1 - 1e-6))), where


@pytest.mark.parametrize("k", range(len(SEEDS)))
def test_both_modes_obey_the_non_convex_rules(solved, k):
    seed, inputs, heuristic, exact = solved[k]
    assert_rules(inputs, heuristic.solution, (seed, "heuristic"))
    assert_rules(inputs, without_scip_noise(exact.solution), (seed, "exact"))


def test_exact_solutions_are_valid_as_returned(solved):
    """Exact mode zeroes the trades its yes/no switches turned off (SCIP leaves dust of up
    to ~1e-6 of account value there), so its plans obey the rules as returned."""
    for seed, inputs, _, exact in solved:
        assert valid(inputs, exact.solution), seed
