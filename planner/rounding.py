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
) -> Executable:
    """Round a continuous solution (fractions of V) to shares; see the module rules."""
    value = inputs.value
    prices = inputs.prices
    n = len(prices)
    lot_price = inputs.lot_price
    cont_sell = np.where(inputs.lot_real, sell * value / np.where(lot_price > 0, lot_price, 1), 0)
    cont_buy = buy * value / prices
    step = 1.0 if whole_shares else 10.0**-FRACTION_DECIMALS

    sell_shares = np.zeros_like(cont_sell)
    for i in range(n):
        slots = np.flatnonzero((inputs.lot_security == i) & inputs.lot_real)
        if slots.size == 0:
            continue
        held = inputs.lot_shares[slots].sum()
        total = cont_sell[slots].sum()
        if total <= 1e-9:
            continue
        if total >= held - 1e-6:
            sell_shares[slots] = inputs.lot_shares[slots]
            continue
        target = min(np.round(total / step) * step, held)
        if target * prices[i] < inputs.min_trade_value[i] * (1 - 1e-9):
            continue
        remaining = target
        for s in _lot_order(inputs, slots, method, cont_sell):
            take = min(inputs.lot_shares[s], remaining)
            sell_shares[s] = take
            remaining -= take
            if remaining <= 1e-12:
                break

    costs = inputs.cost_per_dollar
    sold_value = np.bincount(inputs.lot_security, weights=sell_shares * lot_price, minlength=n)
    floor = inputs.cash_floor_weight * value
    buy_shares = np.floor(cont_buy / step + 1e-9) * step

    def cash_after(b: np.ndarray) -> float:
        bought = b * prices
        return float(
            inputs.cash_weight * value
            + sold_value.sum()
            - bought.sum()
            - costs @ (sold_value + bought)
        )

    remainder = cont_buy - buy_shares
    for i in np.argsort(-remainder, kind="stable"):
        if remainder[i] < step / 2 or cont_buy[i] <= 0:
            break
        trial = buy_shares.copy()
        trial[i] += step
        if cash_after(trial) >= floor - 1e-9:
            buy_shares = trial
    # Trim buys while cash is below its floor (largest buy first).
    while (shortfall := floor - cash_after(buy_shares)) > 1e-9 and buy_shares.sum() > 0:
        i = int(np.argmax(buy_shares * prices))
        cut = np.ceil(shortfall / (prices[i] * (1 + costs[i])) / step - 1e-9) * step
        buy_shares[i] = max(0.0, buy_shares[i] - max(cut, step))
    small = (buy_shares * prices) < inputs.min_trade_value * (1 - 1e-9)
    buy_shares = np.where(small, 0.0, buy_shares)
    if not whole_shares:
        buy_shares = np.round(buy_shares, FRACTION_DECIMALS)
        sell_shares = np.round(sell_shares, FRACTION_DECIMALS)
    residual = float(
        np.abs((sell_shares - cont_sell) * lot_price).sum()
        + np.abs((buy_shares - cont_buy) * prices).sum()
    )
    return Executable(sell_shares, buy_shares, cash_after(buy_shares), residual)
