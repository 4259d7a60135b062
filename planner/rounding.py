"""From a continuous solution to executable shares: lot relief and the whole-share repair.

Shares are computed from the solution's fractions of account value (``shares = f V / p``) and
counted in steps: 1 share, or 1e-6 share in fractional accounts. Rules, in order:

- Dust. No order is smaller than ``max(dust_value, min_trade_value)`` (the account's
  ``dust_value``, the book setting) but a sale that closes a whole position: the rules below
  read that larger minimum. The search plans with ``min_trade_value`` alone (a positive
  minimum on every security would send every account through the minimum-trade search), so
  a trade it leaves below the dust size is dropped here; a dropped sale that cash needs is
  made again, at the dust size, by the cash repair, and noted.
- Sales. A security whose sales (nearly) empty the position sells the whole position,
  fractional remainders included (liquidating a position is always allowed). Otherwise each
  lot the optimiser sold from keeps its own sale rounded down to a step (a lot sold to within
  a step of its size is sold whole), and the steps left of the security's rounded total go to
  those lots by largest remainder, never above a lot's shares. A sale the optimiser forced up
  to the minimum trade is rounded up to the minimum when its lots have the shares; any other
  sale below the minimum is dropped. Where a bounded class would end outside its band, a
  sale in it is rounded the other way by one step if that breaks no other rule.
- Wash sales. A loss lot of a wash group the plan may buy in is never sold (a buy and a loss
  sale in one group in one plan is a wash sale).
- Relief. ``fifo``/``lifo``/``hifo``/``min_tax`` re-assign each security's rounded sale to its
  lots in the method's order among the lots the account may sell; a security whose method lots
  would break the gain budget or the short-term gain cap keeps the optimiser's lots (noted).
- Gain limits (taxable accounts): if the rounded sales realise more net gain (or net
  short-term gain) than the account allows, steps move to lower-gain lots of the same
  security, then sales shrink, until they fit; what still does not fit is reported. Rounding
  answers only for what it adds: a continuous plan already over a limit is kept, and reported.
- Buys are rounded down, then up one step at a time while cash stays at or above its floor: a
  buy the optimiser forced up to the minimum trade first (to the smallest step at or above
  it, else dropped), then by largest remainder, skipping a round-up that would lift its
  class above its band; then, while a bounded class is below its band or cash above its
  ceiling, buys the plan makes take more steps (in that class, or in the class furthest
  under its goal). If cash is still below the floor, buys are trimmed, then more is sold
  (:func:`_cover_shortfall`); a buy left below its minimum is dropped.
The dollars by which the rounded trades differ from the continuous ones are reported, and so
is whatever could not be honoured (cash shortfall, gain-limit excess), with notes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import numpy as np

import constraints as C
from constraints.base import BIG, AccountInputs, name_codes
from planner import rounding_kernel
from planner.program.objective import tax_per_dollar

ReliefMethod = Literal["optimal", "min_tax", "hifo", "fifo", "lifo"]
RELIEF_METHODS: tuple[str, ...] = ("optimal", "min_tax", "hifo", "fifo", "lifo")
FRACTION_DECIMALS = 6
"""Shares are kept to 1e-6 share in fractional accounts."""
GAIN_TOLERANCE = 0.01
"""Dollars of realised gain above a gain limit that count as within it (a cent)."""
WHOLE_LOT_TOLERANCE = 1e-6
"""A lot whose continuous sale is within this fraction of its size (plus one step in
fractional accounts) of the whole lot is sold whole (solver round-off)."""
FORCED_TOLERANCE = 1e-4
"""A continuous trade within this fraction of its minimum is one the optimiser forced up to it."""


@dataclass(frozen=True)
class Executable:
    """Shares to trade: per lot slot sold and per security bought, plus the residual."""

    sell_shares: np.ndarray
    buy_shares: np.ndarray
    cash_after: float
    rounding_residual: float
    cash_shortfall: float = 0.0
    """Dollars by which cash ends below its floor when no whole-share repair could meet it
    (e.g. the only sellable lot is a fraction of a share); 0 otherwise."""
    gain_excess: float = 0.0
    """Dollars by which the rounded plan's net realised gain exceeds the account's gain
    budget when no re-allocation or smaller sale could meet it; 0 otherwise."""
    st_gain_excess: float = 0.0
    """The same for net short-term gain and the short-term gain cap."""
    notes: tuple[str, ...] = ()
    """What rounding changed against the optimiser's plan or could not honour, for people."""


def _lot_order(inputs: AccountInputs, method: str) -> np.ndarray:
    """Every lot slot, grouped by security, each security's slots in the order the relief
    method sells them: FIFO/LIFO by acquisition date, HIFO by unit cost, min-tax by tax per
    dollar."""
    slots = np.arange(len(inputs.lot_real))
    if method in ("fifo", "lifo"):
        acquired = inputs.lot_acquired.astype("datetime64[D]").astype(np.int64)
        key = acquired if method == "fifo" else -acquired
        return np.lexsort((slots, key, inputs.lot_security))
    if method == "hifo":
        return np.lexsort((slots, -inputs.lot_unit_cost, inputs.lot_security))
    if method == "min_tax":
        return np.lexsort((slots, tax_per_dollar(inputs), inputs.lot_security))
    raise ValueError(f"no fixed lot order for relief method {method!r}")


def _group_rank(order: np.ndarray, security: np.ndarray) -> np.ndarray:
    """Position of each entry of ``order`` within its security's run (0 for the first)."""
    sec = security[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sec[1:] != sec[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    return np.arange(len(order)) - start


def _fill(
    order: np.ndarray, security: np.ndarray, capacity: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """Shares per slot when each security sells ``target[i]`` shares from its slots in
    ``order`` (grouped by security), each slot at most its ``capacity``."""
    cap = capacity[order]
    cum = np.cumsum(cap)
    sec = security[order]
    start_index = np.arange(len(order)) - _group_rank(order, security)
    before = cum - cap - (cum[start_index] - cap[start_index])
    out = np.zeros(len(capacity))
    out[order] = np.clip(target[sec] - before, 0.0, cap)
    # Cumulative sums carry round-off: a lot within 1e-9 share of empty or full is so.
    out = np.where(out < 1e-9, 0.0, out)
    return np.where(capacity - out < 1e-9, capacity, out)


class _Account:
    """One account's lot arrays, step and gain limits, shared by the rounding passes."""

    def __init__(self, inputs: AccountInputs, whole_shares: bool):
        self.inputs = inputs
        self.whole_shares = whole_shares
        self.step = 1.0 if whole_shares else 10.0**-FRACTION_DECIMALS
        self.n = len(inputs.prices)
        self.sec = inputs.lot_security
        self.real = inputs.lot_real
        self.shares = np.where(self.real, inputs.lot_shares, 0.0)
        self.price = inputs.lot_price
        self.held = self.per_security(self.shares)
        self.cap_steps = np.floor(self.shares / self.step + 1e-9)
        gain = np.where(self.real, self.price - inputs.lot_unit_cost, 0.0)
        self.gain = gain if inputs.taxable else np.zeros_like(gain)
        self.st_gain = np.where(inputs.lot_long_term, 0.0, self.gain)
        self.budget = inputs.gain_budget if inputs.taxable else None
        self.st_cap = inputs.st_gain_cap if inputs.taxable else None
        self.gain_limit, self.st_limit = self.budget, self.st_cap
        # Class bands, in the template's class order (sorted class names).
        names, self.klass = name_codes(tuple(inputs.asset_classes))
        self.lower = np.asarray(inputs.class_lower, dtype=float)
        self.upper = np.asarray(inputs.class_upper, dtype=float)
        if len(self.lower) != len(names) or len(self.upper) != len(names):
            self.lower, self.upper = np.full(len(names), -BIG), np.full(len(names), BIG)
        self.bounded = bool(np.any(self.lower > -BIG) or np.any(self.upper < BIG))

    def class_weights(self, sold_value: np.ndarray, bought_value: np.ndarray) -> np.ndarray:
        """Post-trade weight of each class (fractions of the account value)."""
        inputs = self.inputs
        dollars = inputs.hold_weight * inputs.value - sold_value + bought_value
        return np.bincount(self.klass, weights=dollars, minlength=len(self.lower)) / inputs.value

    def per_security(self, per_lot: np.ndarray) -> np.ndarray:
        return np.bincount(self.sec, weights=per_lot, minlength=self.n)

    def aim(self, cont_sell: np.ndarray) -> None:
        """Gain limits for the repair: the account's, or the continuous plan's own gains
        where those already exceed them (rounding only answers for what it adds)."""
        if self.budget is not None:
            self.gain_limit = max(self.budget, float(cont_sell @ self.gain))
        if self.st_cap is not None:
            self.st_limit = max(self.st_cap, float(cont_sell @ self.st_gain))

    def excess(self, sell: np.ndarray, limits: bool = False) -> tuple[float, float]:
        """Dollars of net realised gain and net short-term gain above the repair's limits
        (``limits``: the account's own; negative: room left; ``-inf`` without a limit)."""
        budget = self.budget if limits else self.gain_limit
        st_cap = self.st_cap if limits else self.st_limit
        over = -np.inf if budget is None else float(sell @ self.gain) - budget
        st_over = -np.inf if st_cap is None else float(sell @ self.st_gain) - st_cap
        return over, st_over

    def violation(self, sell: np.ndarray) -> float:
        over, st_over = self.excess(sell)
        return max(over, 0.0) + max(st_over, 0.0)

    def snap(self, sell: np.ndarray) -> np.ndarray:
        """Sales on the step grid. Fractional accounts: partial lot sales floored to a step
        (a lot sold whole keeps its shares). Whole-share accounts: a security that is not
        sold whole sells a whole number of shares, else its lot sales are floored."""
        floored = np.floor(sell / self.step + 1e-9) * self.step
        if self.whole_shares:
            total = self.per_security(sell)
            whole = (np.abs(total - np.round(total)) < 1e-9) | (total >= self.held - 1e-9)
            out = np.where(whole[self.sec], sell, floored)
        else:
            out = np.where(sell >= self.shares - 1e-12, sell, floored)
        return np.where(self.real, out, 0.0)


def to_shares(
    inputs: AccountInputs,
    sell: np.ndarray,
    buy: np.ndarray,
    *,
    whole_shares: bool,
    method: str = "optimal",
    sellable: np.ndarray | None = None,
) -> Executable:
    """Round a continuous solution (fractions of V) to shares; see the module rules.

    Shares are counted in integer steps (1 share, or 1e-6 share for fractional accounts) so
    that the cash check is exact; sales are only taken from lots the optimiser sold from
    (or, for a fixed relief method, the gain-limit repair and a cash shortfall, from lots in
    ``sellable``, the lots the account may sell).
    """
    if method not in RELIEF_METHODS:
        raise ValueError(f"relief method {method!r}: expected one of {RELIEF_METHODS}")
    if sellable is None:
        sellable = inputs.lot_real
    inputs, own_minimum = _with_dust(inputs), inputs.min_trade_value
    acct = _Account(inputs, whole_shares)
    value, prices = inputs.value, inputs.prices
    step = acct.step
    safe_price = np.where(acct.price > 0, acct.price, 1.0)
    cont_sell = np.where(acct.real, np.maximum(sell, 0.0) * value / safe_price, 0.0)
    cont_buy = np.maximum(buy, 0.0) * value / prices
    acct.aim(cont_sell)
    notes: list[str] = []

    # Buys that rounding may keep; their wash groups sell no loss lot.
    buy_floor = np.floor(cont_buy / step + 1e-9)
    remainder = np.where(cont_buy > 0, cont_buy / step - buy_floor, 0.0)
    minimum = inputs.min_trade_value
    forced_buy = (minimum > 0) & (cont_buy * prices >= minimum * (1 - FORCED_TOLERANCE))
    may_buy = (cont_buy > 0) & ((buy_floor >= 1) | (remainder > 1e-3) | forced_buy)
    wash_loss = C.WashSaleOneDirection.washed_loss_lots(inputs, may_buy)

    sell_shares = _optimal_sales(acct, cont_sell, ~wash_loss)
    if acct.bounded:
        sell_shares = _sales_toward_bands(
            acct, sell_shares, np.where(wash_loss, 0.0, cont_sell), cont_buy, buy_floor
        )
    if method != "optimal":
        sell_shares = _relieve_within_limits(
            acct, sell_shares, method, sellable & acct.real & ~wash_loss, notes
        )
    sell_shares = _fit_gain_limits(acct, sell_shares, sellable & acct.real & ~wash_loss, notes)

    sold_value = acct.per_security(sell_shares * acct.price)
    buy_steps = _round_buys(acct, sold_value, cont_buy, buy_floor, remainder, forced_buy)
    floor = inputs.cash_floor_weight * value
    # Cash within a hundredth of a cent of its floor is at the floor (solver round-off).
    tolerance = 1e-4
    if floor - _cash_after(acct, sold_value, buy_steps) > tolerance:
        sell_shares = _cover_shortfall(
            inputs,
            sell_shares,
            cont_sell,
            buy_steps,
            sellable,
            step,
            floor - _cash_after(acct, sold_value, buy_steps),
            acct,
        )
    small = C.MinimumTrade.short(inputs, buy_steps * step * prices)
    buy_steps = np.where(small, 0.0, buy_steps)
    notes.extend(_dust_notes(inputs, own_minimum, cont_sell, acct.per_security(sell_shares)))
    buy_shares = buy_steps * step
    residual = float(
        np.abs((sell_shares - cont_sell) * acct.price).sum()
        + np.abs((buy_shares - cont_buy) * prices).sum()
    )
    final_sold = acct.per_security(sell_shares * acct.price)
    cash = _cash_after(acct, final_sold, buy_steps)
    shortfall = floor - cash
    over, st_over = acct.excess(sell_shares, limits=True)
    over = over if over > GAIN_TOLERANCE else 0.0
    st_over = st_over if st_over > GAIN_TOLERANCE else 0.0
    limits = (
        ("net realised gains", "gain budget", acct.budget, over, acct.gain_limit),
        ("net short-term gains", "short-term gain cap", acct.st_cap, st_over, acct.st_limit),
    )
    for what, limit, cap, excess, aimed in limits:
        if excess > 0:
            cause = (
                "the optimiser's plan already exceeds it"
                if aimed > cap + GAIN_TOLERANCE
                else "no executable lot choice meets it"
            )
            notes.append(
                f"{what} ${cap + excess:,.2f} exceed the {limit} ${cap:,.2f} "
                f"by ${excess:,.2f}: {cause}"
            )
    return Executable(
        sell_shares,
        buy_shares,
        cash,
        residual,
        shortfall if shortfall > tolerance else 0.0,
        over,
        st_over,
        tuple(notes),
    )


def _with_dust(inputs: AccountInputs) -> AccountInputs:
    """``inputs`` with each minimum trade raised to the dust size (a shallow copy; the
    same object when the dust raises none)."""
    minimum = np.maximum(inputs.min_trade_value, inputs.dust_value)
    if np.array_equal(minimum, inputs.min_trade_value):
        return inputs
    out = copy.copy(inputs)
    out.min_trade_value = minimum
    return out


def _dust_notes(
    inputs: AccountInputs, own_minimum: np.ndarray, cont_sell: np.ndarray, sold: np.ndarray
) -> list[str]:
    """A note per sale the optimiser made below the dust size (not a whole position) that
    the cash repair made again at the dust size (``sold``: final shares per security)."""
    prices = inputs.prices
    planned = np.bincount(inputs.lot_security, weights=cont_sell, minlength=len(prices))
    dust = inputs.min_trade_value
    below = (planned > 0) & (planned * prices < dust * (1 - 1e-9)) & (dust > own_minimum)
    raised = below & (sold > planned + 1e-9) & (sold * prices >= dust * (1 - 1e-9))
    return [
        f"sale of {inputs.symbols[i]} ${planned[i] * prices[i]:,.2f} is below the "
        f"${dust[i]:,.0f} dust size: sold ${sold[i] * prices[i]:,.2f} to keep cash at its floor"
        for i in np.flatnonzero(raised)
    ]


def _cash_after(acct: _Account, sold_value: np.ndarray, buy_steps: np.ndarray) -> float:
    inputs = acct.inputs
    costs = inputs.cost_per_dollar
    bought = buy_steps * acct.step * inputs.prices
    return float(
        inputs.cash_weight * inputs.value
        + sold_value.sum()
        - bought.sum()
        - costs @ sold_value
        - costs @ bought
    )


def _optimal_sales(acct: _Account, cont_sell: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Shares per lot slot from the optimiser's own lots (see the module rules)."""
    inputs = acct.inputs
    return rounding_kernel.optimal_sales(
        acct.real,
        cont_sell,
        allowed,
        acct.shares,
        acct.cap_steps,
        acct.sec,
        acct.held,
        inputs.prices,
        inputs.min_trade_value,
        acct.n,
        acct.step,
        acct.whole_shares,
        WHOLE_LOT_TOLERANCE,
        1 - FORCED_TOLERANCE,
    )


def _sales_toward_bands(
    acct: _Account,
    sell: np.ndarray,
    cont_sell: np.ndarray,
    cont_buy: np.ndarray,
    buy_floor: np.ndarray,
) -> np.ndarray:
    """Round a sale the other way, one step, where that brings a bounded class back inside
    its band: up (from a lot the optimiser sold from) when the class ends above its upper
    bound, down when below its lower bound. Buys are counted at their continuous values;
    a change is kept only if it breaks no gain limit, minimum trade or the cash floor."""
    inputs, step, sec = acct.inputs, acct.step, acct.sec
    prices = inputs.prices
    floor = inputs.cash_floor_weight * inputs.value
    cont_total = acct.per_security(cont_sell)
    bought = cont_buy * prices
    out = sell.copy()

    def weights(trial: np.ndarray) -> np.ndarray:
        return acct.class_weights(acct.per_security(trial) * prices, bought)

    w = weights(out)
    for k in np.flatnonzero((w > acct.upper + 1e-12) | (w < acct.lower - 1e-12)):
        above = w[k] > acct.upper[k]
        sold = acct.per_security(out)
        gap = (cont_total - sold) if above else (sold - cont_total)
        members = np.flatnonzero((acct.klass == k) & (sold > 0) & (gap > 1e-9))
        for i in members[np.argsort(-gap[members], kind="stable")]:
            lots = np.flatnonzero(sec == i)
            if above:  # one more step from the optimiser's lot with the least gain
                lots = lots[(cont_sell[lots] > 0) & (acct.shares[lots] - out[lots] >= step - 1e-12)]
                lots = lots[np.argsort(acct.gain[lots], kind="stable")]
            else:  # one step less from a partly sold lot with the most gain
                lots = lots[(out[lots] >= step - 1e-12) & (out[lots] < acct.shares[lots])]
                lots = lots[np.argsort(-acct.gain[lots], kind="stable")]
            for s in lots:
                trial = out.copy()
                trial[s] += step if above else -step
                sale = acct.per_security(trial)[i] * prices[i]
                if C.MinimumTrade.below(sale, inputs.min_trade_value[i]):
                    continue
                if acct.violation(trial) > max(acct.violation(out), GAIN_TOLERANCE):
                    continue
                sold_value = acct.per_security(trial * acct.price)
                if not above and _cash_after(acct, sold_value, buy_floor) < floor:
                    continue
                out = trial
                break
            w = weights(out)
            if acct.lower[k] - 1e-12 <= w[k] <= acct.upper[k] + 1e-12:
                break
    return out


def _relieve_within_limits(
    acct: _Account, optimal: np.ndarray, method: str, sellable: np.ndarray, notes: list[str]
) -> np.ndarray:
    """:func:`_relieve`, keeping the optimiser's lots for a security whose method lots cannot
    supply its sale, or would break the gain budget or short-term cap where its own lots
    keep them."""
    inputs = acct.inputs
    relieved = _relieve(inputs, optimal, method, sellable)
    if not acct.whole_shares:  # partial lots up to a step (a lot sold whole keeps its shares)
        partial = (relieved > 0) & (relieved < acct.shares)
        up = np.minimum(np.ceil(relieved / acct.step - 1e-9) * acct.step, acct.shares)
        relieved = np.where(partial, up, relieved)
    short = acct.per_security(relieved) < acct.per_security(optimal) - 1e-9
    relieved = np.where(short[acct.sec], optimal, relieved)
    kept: list[str] = []
    over, st_over = acct.excess(relieved)
    broken = [
        name
        for name, excess in (("gain budget", over), ("short-term gain cap", st_over))
        if excess > GAIN_TOLERANCE
    ]
    if broken:
        more = relieved - optimal
        worse = acct.per_security(more * acct.gain) * (over > GAIN_TOLERANCE)
        worse = worse + acct.per_security(more * acct.st_gain) * (st_over > GAIN_TOLERANCE)
        for i in np.argsort(-worse, kind="stable"):
            if worse[i] <= 0 or acct.violation(relieved) <= GAIN_TOLERANCE:
                break
            lots = acct.sec == i
            relieved[lots] = optimal[lots]
            kept.append(inputs.symbols[i])
    if kept:
        notes.append(
            f"{method} relief would break the {' and '.join(broken)}: the optimiser's lots "
            f"are sold instead for {', '.join(kept)}"
        )
    return relieved


def _fit_gain_limits(
    acct: _Account, sell: np.ndarray, movable: np.ndarray, notes: list[str]
) -> np.ndarray:
    """Bring the rounded sales within the gain budget and short-term cap: first move steps
    to lower-gain lots of the same security (``movable``: lots the account may sell), then
    sell less, always the change that removes the most excess per dollar of sale dropped.
    A security whose sale falls below its minimum trade is dropped. Returns the new sales;
    they may still exceed a limit (the caller reports it)."""
    if acct.violation(sell) <= GAIN_TOLERANCE:
        return sell
    step, sec = acct.step, acct.sec
    out = sell.copy()
    # Moves: same security, same shares, so cash and trades are unchanged.
    for _ in range(4 * len(out)):
        over, st_over = acct.excess(out)
        if max(over, st_over) <= GAIN_TOLERANCE:
            return out
        best = None
        for i in np.unique(sec[out > 0]):
            lots = np.flatnonzero(sec == i)
            give = lots[out[lots] >= step - 1e-12]
            take = lots[movable[lots] & (acct.shares[lots] - out[lots] >= step - 1e-12)]
            for a in give:
                for b in take:
                    if a == b:
                        continue
                    q = _move_size(acct, out, a, b, over, st_over)
                    if q is None:
                        continue
                    benefit, shares_moved = q
                    if best is None or benefit > best[0]:
                        best = (benefit, a, b, shares_moved)
        if best is None:
            break
        _, a, b, q = best
        out[a] -= q
        out[b] += q
        out = acct.snap(out)
    # Drops: sell less of the lot that removes the most excess per dollar.
    inputs = acct.inputs
    before = out.copy()
    for _ in range(4 * len(out)):
        now = acct.violation(out)
        if now <= GAIN_TOLERANCE:
            break
        over, st_over = acct.excess(out)
        best = None
        for a in np.flatnonzero(out > 0):
            per_share = acct.gain[a] * (over > GAIN_TOLERANCE) + acct.st_gain[a] * (
                st_over > GAIN_TOLERANCE
            )
            if per_share <= 0:
                continue
            need = max(over, st_over, 0.0) / per_share
            q = min(out[a], np.ceil(need / step - 1e-9) * step)
            trial = out.copy()
            trial[a] -= q
            trial = acct.snap(trial)
            i = sec[a]
            sale = acct.per_security(trial)[i] * inputs.prices[i]
            if sale > 0 and C.MinimumTrade.below(sale, inputs.min_trade_value[i]):
                trial[sec == i] = 0.0
            gained = now - acct.violation(trial)
            dollars = float(((out - trial) * acct.price).sum())
            if gained > 1e-12 and dollars > 0:
                new_over, new_st = acct.excess(trial)
                if (over <= GAIN_TOLERANCE < new_over) or (st_over <= GAIN_TOLERANCE < new_st):
                    continue
                if best is None or gained / dollars > best[0]:
                    best = (gained / dollars, trial)
        if best is None:
            break
        out = best[1]
    dropped = acct.per_security(before - out)
    if np.any(dropped > 0):
        what = ", ".join(
            f"{_fmt_shares(dropped[i])} {inputs.symbols[i]}" for i in np.flatnonzero(dropped > 0)
        )
        notes.append(
            f"sells fewer shares than planned to keep realised gains within limits: {what}"
        )
    return out


def _move_size(
    acct: _Account, sell: np.ndarray, a: int, b: int, over: float, st_over: float
) -> tuple[float, float] | None:
    """(benefit per share, shares) of moving shares of a sale from lot ``a`` to lot ``b`` of
    the same security, or None when the move does not reduce an exceeded limit without
    breaking the other."""
    step = acct.step
    moves = (
        (over, float(acct.gain[b] - acct.gain[a])),
        (st_over, float(acct.st_gain[b] - acct.st_gain[a])),
    )
    benefit = 0.0
    need = 0.0
    limit = min(np.floor(sell[a] / step + 1e-9), np.floor((acct.shares[b] - sell[b]) / step + 1e-9))
    for excess, change in moves:
        if excess > GAIN_TOLERANCE:
            if change > 0:
                return None
            if change < 0:
                benefit -= change
                need = max(need, excess / -change)
        elif change > 0 and np.isfinite(excess):
            limit = min(limit, np.floor(-excess / change / step + 1e-9))
    if benefit <= 0 or limit < 1:
        return None
    return benefit, min(limit, np.ceil(need / step - 1e-9)) * step


def _fmt_shares(q: float) -> str:
    return f"{q:,.0f}" if abs(q - round(q)) < 1e-9 else f"{q:,.6f}"


def _round_buys(
    acct: _Account,
    sold_value: np.ndarray,
    cont_buy: np.ndarray,
    buy_floor: np.ndarray,
    remainder: np.ndarray,
    forced: np.ndarray,
) -> np.ndarray:
    """Whole steps per security bought, cash kept at or above its floor (see the module
    rules); bounded classes and cash kept inside their bands where a round-up can do it."""
    inputs = acct.inputs
    value = inputs.value
    ceiling = inputs.cash_ceiling_weight * value if inputs.cash_ceiling_weight < BIG else np.inf
    return rounding_kernel.round_buys(
        buy_floor,
        cont_buy,
        remainder,
        forced,
        inputs.prices,
        inputs.cost_per_dollar,
        inputs.hold_weight * value - sold_value,
        acct.klass,
        acct.lower,
        acct.upper,
        inputs.goal_weight,
        inputs.min_trade_value,
        value,
        acct.step,
        _cash_after(acct, sold_value, buy_floor),
        inputs.cash_floor_weight * value,
        ceiling,
    )


def _cover_shortfall(
    inputs: AccountInputs,
    sell_shares: np.ndarray,
    cont_sell: np.ndarray,
    buy_steps: np.ndarray,
    sellable: np.ndarray,
    step: float,
    shortfall: float,
    acct: _Account | None = None,
) -> np.ndarray:
    """Sell more, one security at a time, until ``shortfall`` dollars of cash are raised.

    Securities are tried in order: those the optimiser sold from first, then the cheapest in
    tax per dollar. A security qualifies if it is not being bought, and its lots that the
    account may sell are not loss lots of a wash group being bought. Each takes whole steps
    from its qualifying lots (lowest tax first) until the shortfall is covered and, for a
    security not sold before, its sale reaches the minimum trade size; if its qualifying lots
    cannot reach that minimum, it is sold whole when every lot qualifies, else skipped. No
    lot takes more than the gain budget and short-term cap leave room for (``acct``).
    Returns new sale shares per slot; cash may stay short if nothing qualifies.
    """
    out = sell_shares.copy()
    prices, costs = inputs.prices, inputs.cost_per_dollar
    lot_price = inputs.lot_price
    net = lot_price * (1 - costs[inputs.lot_security])  # cash raised per share sold
    tax = tax_per_dollar(inputs)
    qualifies = (
        sellable
        & inputs.lot_real
        & (buy_steps[inputs.lot_security] == 0)
        & ~C.WashSaleOneDirection.washed_loss_lots(inputs, buy_steps > 0)
        & (out < inputs.lot_shares - 1e-12)
    )
    optimiser_chose = np.bincount(inputs.lot_security, weights=cont_sell, minlength=len(prices))
    securities = np.unique(inputs.lot_security[qualifies])
    best_tax = {i: tax[qualifies & (inputs.lot_security == i)].min() for i in securities}
    order = sorted(securities, key=lambda i: (optimiser_chose[i] <= 0, best_tax[i], i))

    def room(trial: np.ndarray, s_: int) -> float:
        """Steps lot ``s_`` may add before a gain limit binds."""
        if acct is None:
            return np.inf
        out_room = np.inf
        over, st_over = acct.excess(trial)
        for excess, per_share in ((over, acct.gain[s_]), (st_over, acct.st_gain[s_])):
            if per_share > 0 and np.isfinite(excess):
                out_room = min(out_room, max(np.floor(-excess / per_share / step + 1e-9), 0.0))
        return out_room

    for i in order:
        if shortfall <= 0:
            break
        lots = np.flatnonzero(qualifies & (inputs.lot_security == i))
        lots = lots[np.argsort(tax[lots], kind="stable")]
        already = float((out[inputs.lot_security == i] * lot_price[inputs.lot_security == i]).sum())
        minimum = inputs.min_trade_value[i] if already == 0 else 0.0
        need = max(shortfall, 0.0)
        trial = out.copy()
        raised = sold_value = 0.0
        for s_ in lots:
            space = np.floor((inputs.lot_shares[s_] - trial[s_]) / step + 1e-9)
            want = np.ceil(max(need - raised, minimum - sold_value, 0.0) / (net[s_] * step))
            take = min(space, want, room(trial, s_))
            trial[s_] += take * step
            raised += take * step * net[s_]
            sold_value += take * step * lot_price[s_]
            if raised >= need and not C.MinimumTrade.below(sold_value, minimum):
                break
        if C.MinimumTrade.below(sold_value, minimum):
            every_lot = inputs.lot_real & (inputs.lot_security == i)
            if not np.all(qualifies[every_lot] | (out[every_lot] >= inputs.lot_shares[every_lot])):
                continue
            trial = out.copy()
            trial[every_lot] = inputs.lot_shares[every_lot]
            if acct is not None and acct.violation(trial) > max(
                acct.violation(out), GAIN_TOLERANCE
            ):
                continue
            raised = float(((trial - out) * net)[every_lot].sum())
        out = trial
        shortfall -= raised
    return out


def _relieve(
    inputs: AccountInputs, sell_shares: np.ndarray, method: str, sellable: np.ndarray
) -> np.ndarray:
    """Re-assign each security's sold shares to its lots in the relief method's order.

    Only lots the account may sell are used: a lot the optimiser could not sell (a wash-sale
    block, a near-long-term hold) is skipped, so the method applies among the rest.
    """
    n = len(inputs.prices)
    total = np.bincount(inputs.lot_security, weights=sell_shares, minlength=n)
    capacity = np.where(sellable, inputs.lot_shares, 0.0)
    return _fill(_lot_order(inputs, method), inputs.lot_security, capacity, total)
