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


def _lot_order(inputs: AccountInputs, slots: np.ndarray, method: str, continuous) -> np.ndarray:
    """Lot slots of one security in the order the relief method sells them."""
    acquired = inputs.lot_acquired[slots].astype("datetime64[D]").astype(np.int64)
    if method == "fifo":
        key = np.lexsort((slots, acquired))
    elif method == "lifo":
        key = np.lexsort((slots, -acquired))
    elif method == "hifo":
        key = np.lexsort((slots, -inputs.lot_unit_cost[slots]))
    elif method == "min_tax":
        key = np.lexsort((slots, tax_per_dollar(inputs)[slots]))
    else:  # optimal: the optimiser's own choice first, then cheapest tax
        key = np.lexsort((slots, tax_per_dollar(inputs)[slots], -continuous[slots]))
    return slots[key]


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

    sell_shares = np.zeros_like(cont_sell)
    for i in range(n):
        slots = np.flatnonzero((inputs.lot_security == i) & inputs.lot_real)
        if slots.size == 0:
            continue
        held = inputs.lot_shares[slots].sum()
        total = cont_sell[slots].sum()
        if total <= 0:
            continue
        if total >= held - 1e-6 * max(1.0, held):
            sell_shares[slots] = inputs.lot_shares[slots]
            continue
        chosen = slots[cont_sell[slots] > 0]
        available = inputs.lot_shares[chosen].sum()
        steps = min(np.round(total / step), np.floor(available / step + 1e-9))
        target = steps * step
        if target <= 0 or target * prices[i] < inputs.min_trade_value[i] * (1 - 1e-9):
            continue
        remaining = target
        for s in _lot_order(inputs, chosen, method, cont_sell):
            take = min(inputs.lot_shares[s], remaining)
            sell_shares[s] = take
            remaining -= take
            if remaining <= 1e-12:
                break
    if method != "optimal":
        sell_shares = _relieve(inputs, sell_shares, method, sellable & inputs.lot_real)

    if not whole_shares:
        # Keep 1e-6-share granularity, except for lots sold whole.
        whole_lot = np.isclose(sell_shares, inputs.lot_shares) & (sell_shares > 0)
        sell_shares = np.where(whole_lot, sell_shares, np.floor(sell_shares / step + 1e-6) * step)
    costs = inputs.cost_per_dollar
    sold_value = np.bincount(inputs.lot_security, weights=sell_shares * lot_price, minlength=n)
    floor = inputs.cash_floor_weight * value
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
    while (shortfall := floor - cash_after(buy_steps)) > 0 and buy_steps.sum() > 0:
        i = int(np.argmax(buy_steps * prices))
        cut = np.ceil(shortfall / (prices[i] * (1 + costs[i]) * step))
        buy_steps[i] = max(0.0, buy_steps[i] - max(cut, 1.0))
    # Rounded-down sales can leave cash short with nothing left to trim: sell one more step
    # of a security already being sold (lowest tax per dollar first) until the floor holds.
    if floor - cash_after(buy_steps) > 0:
        tax = tax_per_dollar(inputs)
        for s_ in np.argsort(np.where(sell_shares > 0, tax, np.inf), kind="stable"):
            if sell_shares[s_] <= 0:
                break
            while (
                floor - cash_after(buy_steps) > 0
                and sell_shares[s_] + step <= inputs.lot_shares[s_] + 1e-12
            ):
                sell_shares[s_] += step
                gained = step * lot_price[s_] * (1 - costs[inputs.lot_security[s_]])
                base_cash += gained
            if floor - cash_after(buy_steps) <= 0:
                break
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
    return Executable(sell_shares, buy_shares, cash, residual)


def _relieve(
    inputs: AccountInputs, sell_shares: np.ndarray, method: str, sellable: np.ndarray
) -> np.ndarray:
    """Re-assign each security's sold shares to its lots in the relief method's order.

    Only lots the account may sell are used: a lot the optimiser could not sell (a wash-sale
    block, a near-long-term hold) is skipped, so the method applies among the rest.
    """
    out = np.zeros_like(sell_shares)
    n = len(inputs.prices)
    for i in range(n):
        slots = np.flatnonzero((inputs.lot_security == i) & sellable)
        total = sell_shares[inputs.lot_security == i].sum()
        if total <= 0:
            continue
        remaining = total
        for s in _lot_order(inputs, slots, method, sell_shares):
            take = min(inputs.lot_shares[s], remaining)
            out[s] = take
            remaining -= take
            if remaining <= 1e-12:
                break
    return out
