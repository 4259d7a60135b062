"""The search's last resorts around one plan (:mod:`planner.search`): the thorough effort's
local improvement of the best plan, and the fallback that shrinks a plan the rules could
not be met for. Trades are fractions of account value."""

from __future__ import annotations

import itertools

import numpy as np

from constraints.base import AccountInputs
from planner.search_state import (
    TRADE_EPS,
    Search,
    below_minimum,
    fixed_states,
    members,
    trade_states,
    trades,
    wash_conflicts,
    zeros,
)
from planner.solvers import Solution

LOCAL_SOLVES = 80
"""Solves the thorough effort's local improvement may spend on one account: on 12 securities
a round of one-security moves (at most 2 each), then the likeliest pair moves."""


def improve(
    search: Search,
    relaxed_inputs: AccountInputs,
    relaxed: Solution,
    budget: int = 0,
    regime: int | None = None,
) -> None:
    """Local improvement of the best valid plan: change one security's trade state (to
    buying, to selling if it holds any, or to not trading), or two at once where they
    share an asset class or a wash group, solve with every state fixed, and move to the
    first plan that improves; repeat from there within ``budget`` solves
    (:data:`LOCAL_SOLVES` by default). Single moves come first, then pairs where one
    security hands its trade to the other, then pairs of a buy and a sale starting or
    stopping together, then the rest; within each, securities whose net trade the rules
    moved furthest from the relaxation's: a large account's neighbourhood does not fit
    the budget. With ``regime``, the moves are solved with the tax in that netting regime
    rather than the plan's (moves that pay only across a regime's edge)."""
    budget = budget or LOCAL_SOLVES
    while budget > 0:
        inputs, sol = search.valid
        state = trade_states(inputs, sol)
        held = np.bincount(inputs.lot_security, weights=inputs.lot_real, minlength=len(state)) > 0
        net = sol.buy - trades(inputs, sol).sales
        wanted = relaxed.buy - trades(relaxed_inputs, relaxed).sales
        order = np.argsort(-np.abs(net - wanted), kind="stable").tolist()
        options = [(2, 1, -1) if held[i] else (2, 1) for i in range(len(state))]
        moves = [((i,), (o,)) for i in order for o in options[i] if o != state[i]]
        classes, groups = inputs.class_codes, inputs.group_codes
        handovers, offsetting, pairs = [], [], []
        for a, i in enumerate(order):
            for j in order[a + 1 :]:
                if classes[i] != classes[j] and groups[i] != groups[j]:
                    continue
                for pair in itertools.product(options[i], options[j]):
                    if pair[0] == state[i] or pair[1] == state[j]:
                        continue
                    # The pairs likeliest to pay first: one security handing its trade
                    # to the other (a substitute swap), then a buy and a sale that
                    # offset each other starting or stopping together.
                    if (pair[0] == 2 and pair[1] == state[i]) or (
                        pair[1] == 2 and pair[0] == state[j]
                    ):
                        handovers.append(((i, j), pair))
                    elif _opposite(pair) or (pair == (2, 2) and _opposite(state[[i, j]])):
                        offsetting.append(((i, j), pair))
                    else:
                        pairs.append(((i, j), pair))
        moves += handovers + offsetting + pairs
        before = sol.objective
        for where, states in moves:
            if budget <= 0:
                break
            trial = state.copy()
            trial[list(where)] = states
            passes = search.passes
            # One solve per move, in the plan's regime: the final regime search
            # (planner.search._exact_tax) looks across the best plan's edges, and a
            # second solve per move would halve the moves the budget affords.
            candidate = fixed_states(inputs, trial)
            if regime is not None:
                candidate = candidate.with_state(tax_regime=regime)
            search.run(candidate, across_edge=False)
            budget -= search.passes - passes  # a move solved before costs nothing
            if search.valid[1].objective < before - 1e-12:
                break  # the first move that improves: start again from its plan
        if search.valid[1].objective >= before - 1e-12:
            break


def _opposite(states) -> bool:
    """Whether two trade states are a buy and a sale."""
    return sorted(int(x) for x in states) == [-1, 1]


def fall_back(search: Search, inputs, sol, notes) -> None:
    """Last resort when the search found no rule-abiding solution: candidates that can only
    shrink the last solution's trades. Every security keeps the side it trades on and no
    new trade may start; small trades are dropped (or, next, forced up to the minimum); a
    wash group that both buys and sells at a loss keeps its buys (or, next, its loss
    sales). Then one of the largest buys alone, at least its minimum. Last, no trade at
    all. The first that obeys every rule and is feasible wins."""
    done = trades(inputs, sol)
    sales = done.sales
    traded = (sol.buy > TRADE_EPS) | (sales > TRADE_EPS)
    side = np.where(sol.buy > sales, 1, -1)
    direction = np.where(traded, side, 0)
    small = traded & below_minimum(done)
    codes = inputs.group_codes
    conflicting = members(codes, wash_conflicts(inputs, sol))
    base = inputs.with_state(direction=direction)
    for small_state in (2, 0):  # drop small trades, then force them up to the minimum
        state = np.where(~traded, 2, 0)
        state = np.where(small, small_state if small_state else side, state)
        for wash_side in (1, -1):  # keep buys, then keep loss sales
            wash = np.where(conflicting, wash_side, zeros(inputs, "wash_direction"))
            search.run(base.with_state(min_trade=state, wash_direction=wash))
            if search.valid is not None:
                notes.append("trade rules met by shrinking the plan (fallback)")
                return
    # One buy instead of many small ones: a cash band may need buys that are each under
    # the minimum trade, and one of them forced up to it (every other trade dropped) can
    # take them all. The three largest are tried and the best kept.
    for i in np.argsort(-sol.buy, kind="stable")[:3].tolist():
        if sol.buy[i] > TRADE_EPS:
            one = np.full(len(inputs.symbols), 2)
            one[i] = 1
            search.run(fixed_states(inputs, one))
    if search.valid is not None:
        notes.append("trade rules met by one buy at its minimum in place of small ones (fallback)")
        return
    nothing = np.full(len(inputs.symbols), 2)
    search.run(inputs.with_state(min_trade=nothing, direction=None, wash_direction=None))
    if search.valid is not None:
        notes.append("no rule-abiding trades found: the account is left as it is")
