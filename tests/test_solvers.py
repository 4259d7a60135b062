"""planner.solvers: LotQP and PIQP solve the same program as Clarabel through cvxpy, on every
constraint family, both risk forms, small and large accounts; the chain's rules."""

from __future__ import annotations

import numpy as np
import pytest

import constraints as C
from planner.program.objective import Tax, TrackingError, TransactionCost
from planner.program.risk import RiskModel
from planner.solvers import chain, lotqp, solve
from planner.solvers.lotqp import LotQP
from tests.optimiser_helpers import (
    all_constraints,
    make_inputs,
    make_template,
    random_lots,
    random_risk,
)

N, SLOTS = 12, 4
SYMBOLS = [f"S{i}" for i in range(N)]
CLASSES = [f"C{i % 4}" for i in range(N)]


def _dense_risk():
    return random_risk(SYMBOLS)


def _factor_risk():
    rng = np.random.default_rng(2)
    exposures = rng.normal(size=(3, N)) * 0.1
    return RiskModel(tuple(SYMBOLS), exposures, rng.uniform(1e-3, 4e-3, N), "test factors")


def _inputs(seed: int, **overrides):
    r = np.random.default_rng(seed)
    prices = r.uniform(20, 300, N)
    lots = random_lots(r, prices, SLOTS)
    fields = dict(
        slots=SLOTS,
        cash=r.uniform(-500, 5000),
        goal=r.dirichlet(np.ones(N)) * 0.98,
        cost_per_dollar=r.uniform(1e-4, 5e-4, N),
        classes=CLASSES,
        groups=[f"G{i // 2}" for i in range(N)],
        loss_benefit=0.5,
        cash_floor=0.005,
        min_trade_value=np.full(N, 200.0),
        do_not_buy=r.random(N) < 0.1,
        do_not_sell=r.random(N) < 0.1,
        wash_buy_blocked=r.random(N) < 0.1,
    )
    fields.update(overrides)
    return make_inputs(SYMBOLS, prices, lots, **fields)


def _with_state(inputs, seed: int):
    """Search state as the solve loop sets it: directions, wash sides, minimum trades."""
    r = np.random.default_rng(seed)
    return inputs.with_state(
        direction=r.choice([-1, 0, 0, 1], N),
        wash_direction=r.choice([-1, 0, 0, 1], N),
        min_trade=r.choice([-1, 0, 0, 0, 1, 2], N),
    )


def _check(inputs, risk, constraints=None, objective=None, atol=2e-5, per_lot=True):
    """LotQP against Clarabel through cvxpy: the same objective, the same trades (per lot,
    or per security where the program is degenerate in the lots)."""
    template = make_template(inputs, risk, SLOTS, objective, constraints)
    assert LotQP.supports(template)
    # Warm the template on another account first: what matters is the path it runs per account.
    solve(template, _inputs(999), solvers=("LOTQP",))
    a = solve(template, inputs, solvers=("LOTQP",))
    b = solve(template, inputs, solvers=("CLARABEL",))
    if b.infeasible:
        # LotQP certifies only inconsistent boxes; anything else it leaves to the next solver.
        assert a.status in ("infeasible", "not_converged")
        return a, b
    assert a.status == b.status == "optimal", (a.status, b.status)
    assert a.solver == "LOTQP"
    assert a.objective == pytest.approx(b.objective, abs=1e-8)
    if per_lot:
        np.testing.assert_allclose(a.sell, b.sell, atol=atol)
    sales = [np.bincount(inputs.lot_security, weights=x.sell, minlength=N) for x in (a, b)]
    np.testing.assert_allclose(*sales, atol=atol)
    np.testing.assert_allclose(a.buy, b.buy, atol=atol)
    return a, b


@pytest.mark.parametrize("seed", range(6))
def test_relaxation_matches_cvxpy(seed):
    _check(_inputs(seed), _dense_risk())


@pytest.mark.parametrize("seed", range(6))
def test_search_state_matches_cvxpy(seed):
    """Directions, wash sides, forced and dropped minimum trades: caps, buy and sale floors."""
    _check(_with_state(_inputs(seed), seed + 50), _dense_risk())


@pytest.mark.parametrize("seed", range(4))
def test_gain_limits_match_cvxpy(seed):
    r = np.random.default_rng(seed)
    inputs = _inputs(
        seed, gain_budget=float(r.uniform(0, 3e3)), st_gain_cap=float(r.uniform(0, 1e3))
    )
    _check(inputs, _dense_risk())


@pytest.mark.parametrize("seed", range(4))
def test_bands_weights_and_turnover_match_cvxpy(seed):
    """Partial-rebalance class bands and cash ceiling, weight limits, turnover cap."""
    inputs = _inputs(seed)
    held = np.bincount(np.arange(N) % 4, weights=inputs.hold_weight, minlength=4)
    inputs = _inputs(
        seed,
        class_lower=held - 0.02,
        class_upper=held + 0.03,
        cash_ceiling_weight=0.08,
        turnover_cap=0.3,
        weight_lower=0.0,
        weight_upper=0.15,
    )
    cons = all_constraints() + [C.TurnoverCap(0.3), C.WeightLimits(0.01, 0.15)]
    _check(inputs, _dense_risk(), cons)


@pytest.mark.parametrize("seed", range(4))
def test_factor_model_woodbury_path_matches_cvxpy(seed, monkeypatch):
    """The Woodbury solve used above DENSE_MAX securities, forced here on a small book."""
    monkeypatch.setattr(lotqp, "DENSE_MAX", 0)
    _check(_with_state(_inputs(seed), seed + 7), _factor_risk())


def test_factor_model_dense_path_matches_cvxpy():
    _check(_inputs(11), _factor_risk())


@pytest.mark.parametrize("loss_benefit", [0.0, 0.5, 1.0])
def test_carry_forward_term_matches_cvxpy(loss_benefit):
    """Mostly loss lots: the plan's net loss passes the $3,000 offset and the carry row binds."""
    r = np.random.default_rng(5)
    prices = r.uniform(20, 300, N)
    lots = [(i, r.uniform(50, 200), prices[i] * r.uniform(1.2, 2.0), False) for i in range(N)]
    inputs = make_inputs(
        SYMBOLS,
        prices,
        lots,
        slots=SLOTS,
        cash=1000.0,
        goal=r.dirichlet(np.ones(N)) * 0.98,
        classes=CLASSES,
        loss_benefit=loss_benefit,
        cost_per_dollar=np.full(N, 2e-4),
    )
    a, _ = _check(inputs, _dense_risk())
    assert a.sell.sum() > 0


def test_ira_account_matches_cvxpy():
    # No tax: a security's lots are interchangeable.
    _check(_inputs(3, taxable=False), _dense_risk(), per_lot=False)


def test_objective_weights_match_cvxpy():
    objective = 0.02 * TrackingError() + 2.0 * TransactionCost() + 0.5 * Tax()
    _check(_inputs(4), _dense_risk(), objective=objective)


def test_inconsistent_bounds_are_infeasible():
    """A forced buy of a security the account may not buy: the box is empty."""
    inputs = _inputs(1, do_not_buy=np.arange(N) == 0)
    state = np.zeros(N, dtype=int)
    state[0] = 1
    template = make_template(inputs, _dense_risk(), SLOTS)
    sol = solve(template, inputs.with_state(min_trade=state), solvers=("LOTQP",))
    assert sol.status == "infeasible"


def test_unknown_constraint_goes_to_piqp():
    class Custom(C.Constraint):
        pass

    inputs = _inputs(2)
    template = make_template(
        inputs, _dense_risk(), SLOTS, constraints=all_constraints() + [Custom()]
    )
    assert not LotQP.supports(template) and chain(template).solver("LOTQP") is None
    assert solve(template, inputs).solver == "PIQP"


# -- PIQP --------------------------------------------------------------------------------


def _piqp_risk():
    return random_risk(SYMBOLS)


def _piqp_inputs(seed: int):
    r = np.random.default_rng(seed)
    prices = r.uniform(20, 300, N)
    lots = random_lots(r, prices, SLOTS)
    return make_inputs(
        SYMBOLS,
        prices,
        lots,
        slots=SLOTS,
        cash=r.uniform(-500, 5000),
        goal=r.dirichlet(np.ones(N)) * 0.98,
        cost_per_dollar=r.uniform(1e-4, 5e-4, N),
        classes=[f"C{i % 4}" for i in range(N)],
        groups=[f"G{i // 2}" for i in range(N)],
        loss_benefit=0.5,
        gain_budget=float(r.uniform(0, 2e4)) if seed % 2 else None,
        st_gain_cap=float(r.uniform(0, 5e3)) if seed % 3 == 0 else None,
        do_not_buy=r.random(N) < 0.1,
        wash_buy_blocked=r.random(N) < 0.1,
    )


@pytest.mark.parametrize("seed", range(8))
def test_piqp_matches_clarabel(seed):
    """PIQP, set up once per template and updated per account (cvxpy's warm start)."""
    template = make_template(_piqp_inputs(100), _piqp_risk(), SLOTS)
    # Warm the template with another account first: the update path is what matters.
    solve(template, _piqp_inputs(seed + 1000), solvers=("PIQP",))
    inputs = _piqp_inputs(seed)
    a = solve(template, inputs, solvers=("PIQP",))
    b = solve(template, inputs, solvers=("CLARABEL",))
    assert a.status == b.status == "optimal"
    assert a.objective == pytest.approx(b.objective, abs=1e-8)
    np.testing.assert_allclose(a.sell, b.sell, atol=2e-5)
    np.testing.assert_allclose(a.buy, b.buy, atol=2e-5)


def test_piqp_reports_infeasible():
    inputs = _piqp_inputs(3)
    template = make_template(inputs, _piqp_risk(), SLOTS)
    solve(template, inputs)
    blocked = make_inputs(
        SYMBOLS[:N],
        inputs.prices,
        [(0, 1.0, 10.0, True)],
        slots=SLOTS,
        cash=-0.5 * inputs.prices[0],
        do_not_sell=np.arange(N) == 0,
        goal=np.full(N, 1.0 / N),
        classes=[f"C{i % 4}" for i in range(N)],
        groups=[f"G{i // 2}" for i in range(N)],
    )
    assert solve(template, blocked, solvers=("PIQP",)).status == "infeasible"


# -- larger accounts -----------------------------------------------------------------------


def _large_inputs(seed: int, n: int, slots: int):
    r = np.random.default_rng(seed)
    symbols = [f"S{i}" for i in range(n)]
    prices = r.uniform(20, 300, n)
    lots = random_lots(r, prices, slots)
    inputs = make_inputs(
        symbols,
        prices,
        lots,
        slots=slots,
        cash=r.uniform(-500, 5000),
        goal=r.dirichlet(np.ones(n)) * 0.98,
        cost_per_dollar=r.uniform(1e-4, 5e-4, n),
        classes=[f"C{i % 8}" for i in range(n)],
        groups=[f"G{i // 2}" for i in range(n)],
        loss_benefit=0.5,
        cash_floor=0.005,
        min_trade_value=np.full(n, 200.0),
        do_not_sell=r.random(n) < 0.05,
        wash_buy_blocked=r.random(n) < 0.05,
    )
    return symbols, _with_state_n(inputs, seed, n)


def _with_state_n(inputs, seed: int, n: int):
    r = np.random.default_rng(seed + 100)
    return inputs.with_state(
        direction=r.choice([-1, 0, 0, 1], n), wash_direction=r.choice([-1, 0, 0, 0, 1], n)
    )


def _lotqp_against_clarabel(inputs, risk, slots, atol):
    template = make_template(inputs, risk, slots)
    a = solve(template, inputs, solvers=("LOTQP",))
    b = solve(template, inputs, solvers=("CLARABEL",))
    assert a.status == b.status == "optimal", (a.status, b.status)
    assert a.objective == pytest.approx(b.objective, abs=1e-7)
    n = len(inputs.symbols)
    sales = [np.bincount(inputs.lot_security, weights=x.sell, minlength=n) for x in (a, b)]
    np.testing.assert_allclose(*sales, atol=atol)
    np.testing.assert_allclose(a.buy, b.buy, atol=atol)


@pytest.mark.parametrize("seed", range(3))
def test_fifty_securities_ten_lots_match_clarabel(seed):
    symbols, inputs = _large_inputs(seed, 50, 10)
    _lotqp_against_clarabel(inputs, random_risk(symbols, seed), 10, atol=5e-5)


@pytest.mark.parametrize("seed", range(2))
def test_five_hundred_securities_with_a_factor_model_match_clarabel(seed):
    """Above DENSE_MAX securities LotQP solves by Woodbury's identity on the factors."""
    n = 500
    symbols, inputs = _large_inputs(seed, n, 2)
    r = np.random.default_rng(seed + 7)
    risk = RiskModel(
        tuple(symbols), r.normal(size=(8, n)) * 0.05, r.uniform(1e-3, 4e-3, n), "test factors"
    )
    assert n > lotqp.DENSE_MAX
    _lotqp_against_clarabel(inputs, risk, 2, atol=1e-4)


# -- the chain -----------------------------------------------------------------------------


def test_a_solver_is_set_up_once_per_template():
    template = make_template(_inputs(1), _dense_risk(), SLOTS)
    first = chain(template).solver("PIQP")
    solve(template, _inputs(2), solvers=("PIQP",))
    assert chain(template).solver("PIQP") is first


def test_quadratic_solvers_pass_a_conic_template_to_clarabel():
    from planner.program.objective import MarketImpact, default_objective

    inputs = _inputs(3, impact=np.full(N, 0.2))
    template = make_template(
        inputs, _dense_risk(), SLOTS, objective=default_objective() + MarketImpact()
    )
    assert solve(template, inputs).solver == "CLARABEL"
