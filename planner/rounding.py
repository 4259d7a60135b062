"""From a continuous solution to executable shares: lot relief and the whole-share repair.

Shares are computed from the solution's fractions of account value (``shares = f V / p``).
Rules of the repair pass:
- a security whose sales (nearly) empty the position sells the whole position, fractional
  remainders included (liquidating a position is always allowed);
- otherwise sales are rounded to whole shares (or to 1e-6 share for fractional accounts) and
  never exceed what a lot holds;
- buys are rounded down, then rounded up again one share at a time (largest remainder first)
  while post-trade cash stays at or above its floor; if cash is still below the floor, buys
  are trimmed one share at a time;
- a trade that rounding leaves below its minimum size is dropped.
The dollars by which the rounded trades differ from the continuous ones are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from constraints.base import AccountInputs
from planner.objective import tax_per_dollar

ReliefMethod = Literal["optimal", "min_tax", "hifo", "fifo", "lifo"]
RELIEF_METHODS: tuple[str, ...] = ("optimal", "min_tax", "hifo", "fifo", "lifo")
FRACTION_DECIMALS = 6
"""Shares are kept to 1e-6 share in fractional accounts."""


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


def _lot_order(inputs: AccountInputs, method: str, continuous: np.ndarray) -> np.ndarray:
    """Every lot slot, grouped by security, each security's slots in the order the relief
    method sells them: FIFO/LIFO by acquisition date, HIFO by unit cost, min-tax by tax per
    dollar, and the optimiser's own choice (largest continuous sale first, then least tax)."""
    slots = np.arange(len(inputs.lot_real))
    if method in ("fifo", "lifo"):
        acquired = inputs.lot_acquired.astype("datetime64[D]").astype(np.int64)
        key = acquired if method == "fifo" else -acquired
        return np.lexsort((slots, key, inputs.lot_security))
    if method == "hifo":
        return np.lexsort((slots, -inputs.lot_unit_cost, inputs.lot_security))
    tax = tax_per_dollar(inputs)
    if method == "min_tax":
        return np.lexsort((slots, tax, inputs.lot_security))
    return np.lexsort((slots, tax, -continuous, inputs.lot_security))


def _fill(
    order: np.ndarray, security: np.ndarray, capacity: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """Shares per slot when each security sells ``target[i]`` shares from its slots in
    ``order`` (grouped by security), each slot at most its ``capacity``."""
    cap = capacity[order]
    cum = np.cumsum(cap)
    sec = security[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sec[1:] != sec[:-1]
    start_index = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    before = cum - cap - (cum[start_index] - cap[start_index])
    out = np.zeros(len(capacity))
    out[order] = np.clip(target[sec] - before, 0.0, cap)
    return out


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
    (or, for a fixed relief method, from lots in ``sellable``, the lots the account may sell).
    """
    if sellable is None:
        sellable = inputs.lot_real
    value = inputs.value
    prices = inputs.prices
    n = len(prices)
    lot_price = inputs.lot_price
    safe_price = np.where(lot_price > 0, lot_price, 1.0)
    cont_sell = np.where(inputs.lot_real, sell * value / safe_price, 0.0)
    cont_buy = buy * value / prices
    step = 1.0 if whole_shares else 10.0**-FRACTION_DECIMALS

    real = inputs.lot_real
    held = np.bincount(
        inputs.lot_security, weights=np.where(real, inputs.lot_shares, 0.0), minlength=n
    )
    total = np.bincount(inputs.lot_security, weights=cont_sell, minlength=n)
    chosen = real & (cont_sell > 0)
    available = np.bincount(
        inputs.lot_security, weights=np.where(chosen, inputs.lot_shares, 0.0), minlength=n
    )
    liquidate = (total > 0) & (total >= held - 1e-6 * np.maximum(1.0, held))
    steps = np.minimum(np.round(total / step), np.floor(available / step + 1e-9))
    target = steps * step
    keep = ~liquidate & (target > 0) & (target * prices >= inputs.min_trade_value * (1 - 1e-9))
    capacity = np.where(chosen, inputs.lot_shares, 0.0)
    order = _lot_order(inputs, method, cont_sell)
    sell_shares = _fill(order, inputs.lot_security, capacity, np.where(keep, target, 0.0))
    whole = liquidate[inputs.lot_security] & real
    sell_shares[whole] = inputs.lot_shares[whole]
    if method != "optimal":
        sell_shares = _relieve(inputs, sell_shares, method, sellable & inputs.lot_real)

    if not whole_shares:
        # Keep 1e-6-share granularity, except for lots sold whole.
        whole_lot = np.isclose(sell_shares, inputs.lot_shares) & (sell_shares > 0)
        sell_shares = np.where(whole_lot, sell_shares, np.floor(sell_shares / step + 1e-6) * step)
    costs = inputs.cost_per_dollar
    sold_value = np.bincount(inputs.lot_security, weights=sell_shares * lot_price, minlength=n)
    floor = inputs.cash_floor_weight * value
    # Cash within a hundredth of a cent of its floor is at the floor (solver round-off).
    tolerance = 1e-4
    base_cash = inputs.cash_weight * value + sold_value.sum() - costs @ sold_value

    def cash_after(steps: np.ndarray) -> float:
        bought = steps * step * prices
        return float(base_cash - bought.sum() - costs @ bought)

    buy_steps = np.floor(cont_buy / step + 1e-9)
    remainder = cont_buy / step - buy_steps
    for i in np.argsort(-remainder, kind="stable"):
        if remainder[i] < 0.5 or cont_buy[i] <= 0:
            break
        buy_steps[i] += 1
        if cash_after(buy_steps) < floor:
            buy_steps[i] -= 1
    # Trim buys while cash is below its floor (largest buy first).
    while (shortfall := floor - cash_after(buy_steps)) > tolerance and buy_steps.sum() > 0:
        i = int(np.argmax(buy_steps * prices))
        cut = np.ceil(shortfall / (prices[i] * (1 + costs[i]) * step))
        buy_steps[i] = max(0.0, buy_steps[i] - max(cut, 1.0))
    # Rounded-down sales can leave cash short with no buy left to trim: sell more, see
    # :func:`_cover_shortfall`.
    if floor - cash_after(buy_steps) > tolerance:
        sell_shares = _cover_shortfall(
            inputs,
            sell_shares,
            cont_sell,
            buy_steps,
            sellable,
            step,
            floor - cash_after(buy_steps),
        )
    small = (buy_steps * step * prices) < inputs.min_trade_value * (1 - 1e-9)
    buy_steps = np.where(small, 0.0, buy_steps)
    buy_shares = buy_steps * step
    residual = float(
        np.abs((sell_shares - cont_sell) * lot_price).sum()
        + np.abs((buy_shares - cont_buy) * prices).sum()
    )
    final_sold = np.bincount(inputs.lot_security, weights=sell_shares * lot_price, minlength=n)
    bought = buy_shares * prices
    cash = float(
        inputs.cash_weight * value + final_sold.sum() - bought.sum() - costs @ (final_sold + bought)
    )
    shortfall = floor - cash
    return Executable(
        sell_shares, buy_shares, cash, residual, shortfall if shortfall > tolerance else 0.0
    )


def _cover_shortfall(
    inputs: AccountInputs,
    sell_shares: np.ndarray,
    cont_sell: np.ndarray,
    buy_steps: np.ndarray,
    sellable: np.ndarray,
    step: float,
    shortfall: float,
) -> np.ndarray:
    """Sell more, one security at a time, until ``shortfall`` dollars of cash are raised.

    Securities are tried in order: those the optimiser sold from first, then the cheapest in
    tax per dollar. A security qualifies if it is not being bought, and its lots that the
    account may sell are not loss lots of a wash group being bought. Each takes whole steps
    from its qualifying lots (lowest tax first) until the shortfall is covered and, for a
    security not sold before, its sale reaches the minimum trade size; if its qualifying lots
    cannot reach that minimum, it is sold whole when every lot qualifies, else skipped.
    Returns new sale shares per slot; cash may stay short if nothing qualifies.
    """
    out = sell_shares.copy()
    prices, costs = inputs.prices, inputs.cost_per_dollar
    lot_price = inputs.lot_price
    net = lot_price * (1 - costs[inputs.lot_security])  # cash raised per share sold
    tax = tax_per_dollar(inputs)
    groups = np.asarray(inputs.wash_groups)
    bought_groups = list(set(groups[buy_steps > 0]))
    lot_group = groups[inputs.lot_security]
    qualifies = (
        sellable
        & inputs.lot_real
        & (buy_steps[inputs.lot_security] == 0)
        & ~(inputs.lot_loss & np.isin(lot_group, bought_groups))
        & (out < inputs.lot_shares - 1e-12)
    )
    optimiser_chose = np.bincount(inputs.lot_security, weights=cont_sell, minlength=len(prices))
    securities = np.unique(inputs.lot_security[qualifies])
    best_tax = {i: tax[qualifies & (inputs.lot_security == i)].min() for i in securities}
    order = sorted(securities, key=lambda i: (optimiser_chose[i] <= 0, best_tax[i], i))
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
            room = np.floor((inputs.lot_shares[s_] - trial[s_]) / step + 1e-9)
            want = np.ceil(max(need - raised, minimum - sold_value, 0.0) / (net[s_] * step))
            take = min(room, want)
            trial[s_] += take * step
            raised += take * step * net[s_]
            sold_value += take * step * lot_price[s_]
            if raised >= need and sold_value >= minimum * (1 - 1e-9):
                break
        if sold_value < minimum * (1 - 1e-9):
            every_lot = inputs.lot_real & (inputs.lot_security == i)
            if not np.all(qualifies[every_lot] | (out[every_lot] >= inputs.lot_shares[every_lot])):
                continue
            trial = out.copy()
            trial[every_lot] = inputs.lot_shares[every_lot]
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
    return _fill(_lot_order(inputs, method, sell_shares), inputs.lot_security, capacity, total)
