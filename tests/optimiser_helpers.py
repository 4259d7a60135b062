"""Tiny hand-built optimiser inputs, independent of books and triggers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import constraints as C
from constraints.base import BIG, AccountInputs
from planner.program.objective import Objective, default_objective
from planner.program.problem import Template, constraints_for
from planner.program.risk import RiskModel


def diagonal_risk(symbols: Sequence[str], vols: Sequence[float]) -> RiskModel:
    vols = np.asarray(vols, dtype=float)
    return RiskModel(tuple(symbols), np.diag(vols), np.zeros(len(vols)), "test diagonal")


def covariance_risk(symbols: Sequence[str], cov: np.ndarray) -> RiskModel:
    return RiskModel(tuple(symbols), np.linalg.cholesky(cov).T, np.zeros(len(symbols)), "test")


def random_risk(symbols: Sequence[str], seed: int = 1) -> RiskModel:
    """A full-rank random covariance (about 20% volatility) in Cholesky form."""
    n = len(symbols)
    a = np.random.default_rng(seed).normal(size=(n, n))
    return covariance_risk(symbols, a @ a.T / n * 0.04 + np.eye(n) * 1e-3)


def random_lots(r: np.random.Generator, prices: np.ndarray, slots: int) -> list:
    """Between 1 and ``slots`` lots per security, about 60% long-term, bought at 0.5-1.5x
    the price: (security index, shares, unit cost, long_term) for :func:`make_inputs`."""
    return [
        (i, r.uniform(1, 50), prices[i] * r.uniform(0.5, 1.5), bool(r.random() < 0.6))
        for i in range(len(prices))
        for _ in range(int(r.integers(1, slots + 1)))
    ]


def make_inputs(
    symbols: Sequence[str],
    prices: Sequence[float],
    lots: Sequence[tuple[int, float, float, bool]],
    *,
    slots: int,
    cash: float = 0.0,
    goal: Sequence[float],
    classes: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    taxable: bool = True,
    st_rate: float = 0.40,
    lt_rate: float = 0.20,
    loss_benefit: float = 1.0,
    cost_per_dollar: Sequence[float] | None = None,
    min_trade_value: Sequence[float] | None = None,
    cash_floor: float = 0.0,
    **overrides,
) -> AccountInputs:
    """``lots`` are (security index, shares, unit cost, long_term); cash in dollars."""
    n = len(symbols)
    m = n * slots
    prices = np.asarray(prices, dtype=float)
    real = np.zeros(m, dtype=bool)
    shares = np.zeros(m)
    cost = np.zeros(m)
    lt = np.zeros(m, dtype=bool)
    ids = [""] * m
    used = [0] * n
    for k, (i, q, c, is_lt) in enumerate(lots):
        s = i * slots + used[i]
        used[i] += 1
        real[s], shares[s], cost[s], lt[s] = True, q, c, is_lt
        ids[s] = f"L{k}"
    held = np.bincount(np.repeat(np.arange(n), slots), weights=shares, minlength=n)
    value = float(held @ prices + cash)
    classes = tuple(classes or symbols)
    fields = dict(
        account_id="T1",
        value=value,
        symbols=tuple(symbols),
        asset_classes=classes,
        wash_groups=tuple(groups or symbols),
        prices=prices,
        in_model=np.ones(n, dtype=bool),
        hold_weight=held * prices / value,
        goal_weight=np.asarray(goal, dtype=float),
        cash_weight=cash / value,
        cost_per_dollar=np.asarray(cost_per_dollar if cost_per_dollar is not None else [0.0] * n),
        min_trade_value=np.asarray(min_trade_value if min_trade_value is not None else [0.0] * n),
        lot_real=real,
        lot_security=np.repeat(np.arange(n), slots),
        lot_shares=shares,
        lot_unit_cost=cost,
        lot_long_term=lt,
        lot_days_to_long_term=np.where(lt, -1, 100),
        lot_rows=np.arange(m),
        taxable=taxable,
        st_rate=st_rate,
        lt_rate=lt_rate,
        loss_benefit=loss_benefit,
        cash_floor_weight=cash_floor,
        cash_ceiling_weight=BIG,
        class_lower=np.full(len(set(classes)), -BIG),
        class_upper=np.full(len(set(classes)), BIG),
        restricted_buy=np.zeros(n, dtype=bool),
        restricted_sell=np.zeros(n, dtype=bool),
        do_not_buy=np.zeros(n, dtype=bool),
        do_not_sell=np.zeros(n, dtype=bool),
        wash_buy_blocked=np.zeros(n, dtype=bool),
        wash_loss_sale_blocked=np.zeros(n, dtype=bool),
        lot_acquired=np.full(m, np.datetime64("2020-01-01", "D")),
    )
    fields.update(overrides)
    return AccountInputs(**fields)


def all_constraints(min_trade: bool = True) -> list[C.Constraint]:
    """Every constraint a planned account's template has (both gain limits included)."""
    return constraints_for(min_trade=min_trade)


def make_template(
    inputs: AccountInputs,
    risk: RiskModel,
    slots: int,
    objective: Objective | None = None,
    constraints: list[C.Constraint] | None = None,
    solvers: Sequence[str] = (),
) -> Template:
    return Template(
        inputs.symbols,
        inputs.asset_classes,
        slots,
        risk,
        objective or default_objective(),
        constraints if constraints is not None else all_constraints(),
        solvers,
    )


def brute_force(template: Template, inputs: AccountInputs):
    """The best plan over every per-security trade state and netting regime, for small
    accounts (3^n states): each security trades not at all, buys at least its minimum, or
    (if held) sells at least its minimum; a wash group with a buy sells no loss lot, one
    without may. Each state is a convex program, solved with the convex tax model and then,
    for a taxable account, in every netting regime its sales can reach (where the tax is
    exact: :mod:`planner.tax.regimes`); the best by the exact objective that obeys every
    rule wins (the continuous objective, before rounding). ``None`` if no state is
    feasible."""
    import itertools

    from planner import solvers
    from planner.program.objective import Tax, regime_pieces, regime_reachable
    from planner.search_state import obeys_rules
    from planner.search_tax import with_exact_tax

    n = len(inputs.symbols)
    held = np.bincount(inputs.lot_security, weights=inputs.lot_real, minlength=n) > 0
    choices = [(2, 1, -1) if held[i] else (2, 1) for i in range(n)]
    groups = inputs.group_codes
    rules = [c for c in template.constraints if c.nonconvex]
    tax_weight = template.objective.weight_of(Tax)
    best = None
    for state in itertools.product(*choices):
        state = np.array(state)
        buys = np.bincount(groups, weights=state == 1, minlength=groups.max() + 1) > 0
        sells = np.bincount(groups, weights=state == -1, minlength=groups.max() + 1) > 0
        wash = np.where(buys[groups], 1, np.where(sells[groups], -1, 0))
        direction = np.where(state == 2, 0, state)
        candidate = inputs.with_state(direction=direction, wash_direction=wash, min_trade=state)
        forms = [candidate]
        if inputs.taxable and tax_weight:
            cap = template.values(candidate)["sell_cap"]
            forms += [
                candidate.with_state(tax_regime=k)
                for k, piece in enumerate(regime_pieces(inputs))
                if regime_reachable(inputs, piece, cap)
            ]
        for form in forms:
            sol = solvers.solve(template, form, confirm=False)
            if not sol.ok or not obeys_rules(rules, form, sol):
                if form is candidate:
                    break  # the state itself is infeasible: so is each regime of it
                continue
            sol = with_exact_tax(tax_weight, form, sol)
            if best is None or sol.objective < best.objective:
                best = sol
    return best


def random_account(seed: int, n: int = 5, slots: int = 3):
    """A small taxable account: gains and losses, substitutes sharing classes, minimum
    trades of 1-8 % of the account, a drifted portfolio."""
    r = np.random.default_rng(seed)
    symbols = [f"S{i}" for i in range(n)]
    prices = r.uniform(20, 200, n)
    lots = [
        (i, float(r.integers(5, 60)), prices[i] * r.uniform(0.6, 1.4), bool(r.random() < 0.5))
        for i in range(n)
        for _ in range(int(r.integers(0, slots + 1)))
    ]
    goal = r.dirichlet(np.ones(n)) * 0.97
    classes = [f"C{i % 3}" for i in range(n)]
    # Securities of one class are close substitutes (correlation ~0.97), in different groups.
    base = r.normal(size=(3, 3))
    class_cov = base @ base.T / 3 * 0.03 + np.eye(3) * 0.01
    cls = np.array([i % 3 for i in range(n)])
    cov = class_cov[np.ix_(cls, cls)] * 0.97 + np.diag(np.diag(class_cov[np.ix_(cls, cls)])) * 0.03
    held_value = sum(q * prices[i] for i, q, _, _ in lots) + 2000.0
    inputs = make_inputs(
        symbols,
        prices,
        lots,
        slots=slots,
        cash=float(r.uniform(0, 3000)),
        goal=goal,
        cost_per_dollar=r.uniform(1e-4, 1e-3, n),
        min_trade_value=np.full(n, float(held_value * r.uniform(0.01, 0.08))),
        classes=classes,
        groups=[f"G{i}" if r.random() < 0.7 else "GX" for i in range(n)],
        loss_benefit=0.5,
        st_rate=0.408,
        lt_rate=0.238,
    )
    return inputs, covariance_risk(symbols, cov)
