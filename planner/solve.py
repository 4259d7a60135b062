"""Solve one account: the convex relaxation, then the non-convex rules by re-solving.

1. Relaxation: every convex constraint, none of the non-convex rules.
2. Wash groups (Moehle, Kochenderfer, Boyd & Ang 2021, "Tax-aware portfolio construction via
   convex optimization"): where the relaxation both buys and sells at a loss in one wash
   group, re-solve once with the group's buys forbidden and once with its loss sales
   forbidden, and keep the better. Then fix each traded security's direction (buy or sell)
   by the sign of its net trade and re-solve; with directions fixed, "no buy and loss sale in
   one group" is a pair of linear bounds.
3. Minimum trade size: trades below their minimum are forced up to it (if at least half of
   it) or dropped, and the program re-solved, a bounded number of times; a pass that turns
   infeasible forces its dropped trades instead, and failing that is undone.

All passes reuse one compiled template, so each is a parameter update and a solver call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from constraints.base import AccountInputs
from planner.errors import InfeasibleError
from planner.problem import Solution, Template

TRADE_EPS = 1e-7
"""A trade smaller than this fraction of account value counts as no trade."""


@dataclass(frozen=True)
class SolveReport:
    """The continuous solution an account ends with, and how it got there."""

    inputs: AccountInputs
    solution: Solution
    passes: int
    solve_ms: float
    notes: tuple[str, ...]


def _security_totals(inputs: AccountInputs, sol: Solution) -> tuple[np.ndarray, np.ndarray]:
    n = len(inputs.symbols)
    sales = np.bincount(inputs.lot_security, weights=sol.sell, minlength=n)
    loss_sales = np.bincount(
        inputs.lot_security, weights=np.where(inputs.lot_loss, sol.sell, 0.0), minlength=n
    )
    return sales, loss_sales


def _wash_conflicts(inputs: AccountInputs, sol: Solution) -> list[str]:
    """Wash groups where the solution buys and also sells at a loss."""
    _, loss_sales = _security_totals(inputs, sol)
    groups = np.array(inputs.wash_groups)
    out = []
    for g in sorted(set(inputs.wash_groups)):
        mask = groups == g
        if sol.buy[mask].sum() > TRADE_EPS and loss_sales[mask].sum() > TRADE_EPS:
            out.append(g)
    return out


def solve_account(template: Template, inputs: AccountInputs, max_min_trade_passes: int = 3):
    """Run the passes for one account; raises :class:`InfeasibleError` when even the
    relaxation is infeasible (naming the constraints whose relaxation would fix it)."""
    passes = 0
    total_ms = 0.0
    notes: list[str] = []

    def run(candidate: AccountInputs) -> Solution:
        nonlocal passes, total_ms
        sol = template.solve(candidate)
        passes += 1
        total_ms += sol.solve_ms
        return sol

    inputs = replace(inputs, direction=None, wash_direction=None, min_trade=None)
    best = run(inputs)
    if not best.ok:
        if best.infeasible:
            raise InfeasibleError(inputs.account_id, template.explain_infeasible(inputs))
        raise InfeasibleError(
            inputs.account_id, [], f"solver status {best.status} with {best.solver}"
        )

    # 2a. one direction per wash group, choosing by objective where the relaxation mixes.
    n = len(inputs.symbols)
    groups = np.array(inputs.wash_groups)
    wash_direction = np.zeros(n, dtype=int)
    for group in _wash_conflicts(inputs, best):
        mask = groups == group
        options = []
        for choice in (+1, -1):
            trial_dir = wash_direction.copy()
            trial_dir[mask] = choice
            trial = replace(inputs, wash_direction=trial_dir)
            sol = run(trial)
            if sol.ok:
                options.append((sol.objective, choice, trial, sol))
        if options:
            _, choice, inputs, best = min(options, key=lambda o: (o[0], -o[1]))
            wash_direction[mask] = choice
            notes.append(f"wash group {group}: {'buys kept' if choice > 0 else 'loss sales kept'}")

    # 2b. fix each traded security's direction and re-solve.
    sales, _ = _security_totals(inputs, best)
    direction = np.where(best.buy > sales, 1, -1) * ((best.buy > TRADE_EPS) | (sales > TRADE_EPS))
    if np.any((best.buy > TRADE_EPS) & (sales > TRADE_EPS)) or np.any(direction):
        fixed = replace(inputs, direction=direction.astype(int))
        sol = run(fixed)
        if sol.ok:
            inputs, best = fixed, sol

    # 3. minimum trade sizes.
    minimum = inputs.min_trade_value
    if np.any(minimum > 0):
        state = np.zeros(n, dtype=int)
        for _ in range(max_min_trade_passes):
            sales, _ = _security_totals(inputs, best)
            dollars = (sales + best.buy) * inputs.value
            # A sale of a whole position below the minimum is fine: nothing is left behind.
            whole_position = (sales > TRADE_EPS) & (sales >= inputs.hold_weight - 1e-9)
            small = (
                (dollars > TRADE_EPS * inputs.value)
                & (dollars < minimum * (1 - 1e-9))
                & (state == 0)
                & ~whole_position
            )
            if not small.any():
                break
            side = np.where(best.buy > sales, 1, -1)
            force = small & (dollars >= minimum / 2)
            trial_state = state.copy()
            trial_state[force] = side[force]
            trial_state[small & ~force] = 2
            trial = replace(inputs, min_trade=trial_state)
            sol = run(trial)
            if not sol.ok:
                # Dropping made it infeasible: force those trades up to the minimum instead.
                dropped = small & ~force
                trial_state[dropped] = side[dropped]
                trial = replace(inputs, min_trade=trial_state)
                sol = run(trial)
            if not sol.ok:
                notes.append("minimum trade sizes could not all be met")
                break
            state, inputs, best = trial_state, trial, sol
    return SolveReport(inputs, best, passes, total_ms, tuple(notes))
