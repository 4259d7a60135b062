"""The two hot loops of :mod:`planner.rounding`, compiled with numba: the optimiser's own lot
sales rounded to steps, and the buys rounded up step by step.

Loops over a few hundred slots, where numpy expressions would spend their time in call
overhead. The arithmetic keeps the order of the numpy expressions they replaced
(per-security sums in slot order, as ``np.bincount`` adds them; ties broken by position, as
stable sorts do). The rules themselves are documented in :mod:`planner.rounding`.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

_JIT = {"cache": True, "error_model": "numpy"}


@njit(**_JIT)
def _per_security(sec, per_lot, n):
    """``np.bincount(sec, weights=per_lot, minlength=n)``: added in slot order."""
    out = np.zeros(n)
    for k in range(sec.shape[0]):
        out[sec[k]] += per_lot[k]
    return out


@njit(**_JIT)
def _by_security(sec, n):
    """(slots grouped by security in slot order, start of each security's run): the slots
    of security ``i`` are ``order[start[i]:start[i + 1]]``."""
    start = np.zeros(n + 1, np.int64)
    for k in range(sec.shape[0]):
        start[sec[k] + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    order = np.empty(sec.shape[0], np.int64)
    for k in range(sec.shape[0]):
        order[fill[sec[k]]] = k
        fill[sec[k]] += 1
    return order, start


@njit(**_JIT)
def _lots_of(i, order, start, mask):
    """Slots of security ``i`` where ``mask`` holds, in slot order."""
    run = order[start[i] : start[i + 1]]
    return run[mask[run]]


@njit(**_JIT)
def _descending(keys, idx):
    """``idx`` stably sorted by ``keys[idx]`` from largest to smallest (ties keep order)."""
    if idx.shape[0] < 2:
        return idx
    order = np.argsort(-keys[idx], kind="mergesort")
    return idx[order]


@njit(**_JIT)
def optimal_sales(
    real,
    cont_sell,
    allowed,
    shares,
    cap_steps,
    sec,
    held,
    prices,
    minimum,
    n,
    step,
    whole_shares,
    whole_lot_tolerance,
    forced_factor,
):
    """Shares per lot slot sold from the optimiser's own lots (``cont_sell``: continuous
    shares per slot; ``allowed``: slots that may sell; ``held``: shares per security; a
    sale at least ``forced_factor`` times its minimum was forced up to it)."""
    m = shares.shape[0]
    chosen = np.empty(m, np.bool_)
    cont = np.zeros(m)
    for k in range(m):
        chosen[k] = real[k] and cont_sell[k] > 0 and allowed[k]
        if chosen[k]:
            cont[k] = min(cont_sell[k], shares[k])
    total = _per_security(sec, cont, n)

    # Lots sold (within round-off, or a step in fractional accounts) whole.
    extra_slack = 0.0 if whole_shares else step
    whole_lot = np.zeros(m, np.bool_)
    out = np.empty(m)
    rem = np.zeros(m)
    open_lot = np.zeros(m, np.bool_)
    for k in range(m):
        slack = whole_lot_tolerance * max(1.0, shares[k]) + extra_slack
        whole = chosen[k] and shares[k] - cont[k] <= slack
        if whole and whole_shares:  # a fraction of a share is only sold with its position
            whole = abs(shares[k] - np.round(shares[k])) < 1e-9
        whole_lot[k] = whole
        floor_steps = min(np.floor(cont[k] / step + 1e-9), cap_steps[k])
        out[k] = shares[k] if whole else floor_steps * step
        if chosen[k] and not whole:
            rem[k] = cont[k] / step - floor_steps
            open_lot[k] = floor_steps < cap_steps[k]

    # The steps left of each security's rounded total, by largest remainder.
    order, start = _by_security(sec, n)
    rounded = _per_security(sec, out, n)
    leftover = np.empty(n)
    for i in range(n):
        leftover[i] = np.round((np.round(total[i] / step) * step - rounded[i]) / step)
    for i in range(n):
        if leftover[i] <= 0:
            continue
        lots = _descending(rem, _lots_of(i, order, start, open_lot))
        for r in range(min(lots.shape[0], int(leftover[i]))):
            k = lots[r]
            out[k] = out[k] + step
            rem[k] = rem[k] - 1.0

    # A security sold (nearly) whole is liquidated, fractions included.
    kept = np.zeros(n, np.bool_)
    for k in range(m):
        if real[k] and not allowed[k] and shares[k] > 0:
            kept[sec[k]] = True
    liquidate = np.empty(n, np.bool_)
    for i in range(n):
        liquidate[i] = (
            total[i] > 0 and total[i] >= held[i] - 1e-6 * max(1.0, held[i]) and not kept[i]
        )
    for k in range(m):
        if liquidate[sec[k]] and real[k]:
            out[k] = shares[k]

    # Minimum trade: forced sales are rounded up to it, other small sales dropped.
    sold_value = _per_security(sec, out, n) * prices
    small = np.empty(n, np.bool_)
    for i in range(n):
        small[i] = sold_value[i] < minimum[i] * (1 - 1e-9) and not liquidate[i]
        forced = small[i] and minimum[i] > 0 and total[i] * prices[i] >= minimum[i] * forced_factor
        if not forced:
            continue
        lots = _descending(rem, _lots_of(i, order, start, chosen & ~whole_lot))
        need = np.ceil((minimum[i] - sold_value[i]) / (prices[i] * step) - 1e-9)
        for s in lots:
            take = min(need, cap_steps[s] - np.round(out[s] / step))
            if take > 0:
                out[s] += take * step
                need -= take
        if need <= 0:
            small[i] = False
    for k in range(m):
        if small[sec[k]]:
            out[k] = 0.0
    return out


@njit(**_JIT)
def round_buys(
    buy_floor,
    cont_buy,
    remainder,
    forced,
    prices,
    costs,
    held,
    klass,
    lower,
    upper,
    goal_weight,
    minimum,
    value,
    step,
    cash,
    floor,
    ceiling,
):
    """Whole steps bought per security (``buy_floor``: the continuous buys rounded down;
    ``held``: dollars per security after the sales; ``cash``: dollars of cash after them and
    ``buy_floor``); cash kept at or above ``floor``, classes within their bands where a
    round-up can do it (see :mod:`planner.rounding`)."""
    n = prices.shape[0]
    n_class = lower.shape[0]
    steps = buy_floor.copy()
    # Cash and class weights are kept up to date step by step.
    class_dollars = np.zeros(n_class)
    for i in range(n):
        class_dollars[klass[i]] += held[i] + steps[i] * step * prices[i]
    class_weights = class_dollars / value

    # Buys the optimiser forced up to the minimum: to the smallest step at or above it.
    below = np.zeros(n, np.bool_)
    for i in range(n):
        below[i] = forced[i] and buy_floor[i] * step * prices[i] < minimum[i] * (1 - 1e-9)
    for i in range(n):
        if below[i]:
            need = np.ceil(minimum[i] / (prices[i] * step) - 1e-9)
            cash = _set_steps(
                steps, i, need, step, prices, costs, klass, class_weights, value, cash
            )
            if cash < floor:
                cash = _set_steps(
                    steps, i, 0.0, step, prices, costs, klass, class_weights, value, cash
                )
    # Largest remainder first, each at most one step up.
    open_ = (cont_buy > 0) & ~below & (remainder > 1e-3)
    order = np.argsort(-remainder, kind="mergesort")
    first = order[open_[order] & (remainder[order] >= 0.5)]
    for i in first:
        cash = _round_up(
            steps, i, step, prices, costs, klass, class_weights, value, cash, floor, upper
        )
        open_[i] = False
    # Then the rest, where a class ends below its band or cash above its ceiling.
    for i in order[open_[order]]:
        k = klass[i]
        if class_weights[k] < lower[k] - 1e-12 or cash > ceiling:
            cash = _round_up(
                steps, i, step, prices, costs, klass, class_weights, value, cash, floor, upper
            )
            open_[i] = False
    # Still below a band or above the ceiling (e.g. sales rounded up to their minimum):
    # more steps of buys the plan makes, in the class furthest under its goal first.
    goal = np.zeros(n_class)
    dollars = np.zeros(n_class)
    for i in range(n):
        goal[klass[i]] += goal_weight[i]
        dollars[klass[i]] += held[i] + steps[i] * step * prices[i]
    under_goal = goal - dollars / value
    buying = np.flatnonzero((steps > 0) & (cont_buy > 0))
    if buying.shape[0] > 1:
        buying = buying[np.argsort(-under_goal[klass[buying]], kind="mergesort")]
    low = np.flatnonzero(class_weights < lower - 1e-12)
    for pass_ in range(low.shape[0] + 1):
        k = low[pass_] if pass_ < low.shape[0] else -1
        for i in buying:
            if k >= 0 and klass[i] != k:
                continue
            per_step = prices[i] * step
            if k < 0:
                need = (cash - ceiling) / (per_step * (1 + costs[i]))
            else:
                need = (lower[k] - class_weights[k]) * value / per_step
            room = min(
                (cash - floor) / (per_step * (1 + costs[i])),
                (upper[klass[i]] - class_weights[klass[i]]) * value / per_step,
            )
            if need <= 0:
                break
            more = max(min(np.ceil(need - 1e-9), np.floor(room + 1e-9)), 0.0)
            cash = _set_steps(
                steps, i, steps[i] + more, step, prices, costs, klass, class_weights, value, cash
            )
    # Trim buys while cash is below its floor (largest buy first).
    while floor - cash > 1e-4 and steps.sum() > 0:
        shortfall = floor - cash
        i = int(np.argmax(steps * prices))
        cut = np.ceil(shortfall / (prices[i] * (1 + costs[i]) * step))
        cash = _set_steps(
            steps,
            i,
            max(0.0, steps[i] - max(cut, 1.0)),
            step,
            prices,
            costs,
            klass,
            class_weights,
            value,
            cash,
        )
    return steps


@njit(**_JIT)
def _set_steps(steps, i, new, step, prices, costs, klass, class_weights, value, cash):
    """Set buy ``i`` to ``new`` steps; returns the cash after it."""
    change = (new - steps[i]) * step * prices[i]
    steps[i] = new
    class_weights[klass[i]] += change / value
    return cash - change * (1 + costs[i])


@njit(**_JIT)
def _round_up(steps, i, step, prices, costs, klass, class_weights, value, cash, floor, upper):
    """One more step of buy ``i`` unless cash falls below its floor or the class goes above
    its upper bound; returns the cash after it."""
    cash = _set_steps(
        steps, i, steps[i] + 1, step, prices, costs, klass, class_weights, value, cash
    )
    k = klass[i]
    if cash < floor or class_weights[k] > upper[k] + 1e-12:
        cash = _set_steps(
            steps, i, steps[i] - 1, step, prices, costs, klass, class_weights, value, cash
        )
    return cash


@functools.cache
def load_kernel() -> None:
    """Compile both loops, or load them from numba's cache (once per process)."""
    one, none = np.ones(2), np.zeros(2)
    slot = np.array([0, 1], dtype=np.int64)
    flags = np.ones(2, dtype=np.bool_)
    optimal_sales(flags, one, flags, one, one, slot, one, one, none, 2, 1.0, True, 1e-6, 0.9999)
    round_buys(
        none, one, none, flags, one, none, one, slot, none - 1, one + 1, one, none, 10.0, 1.0,
        10.0, 0.0, np.inf,
    )  # fmt: skip
