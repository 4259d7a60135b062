"""Minimum trade size and whole shares: the non-convex trade rules and their handles."""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from constraints.base import AccountInputs, Constraint, Context, cap_buys, cap_sells


class MinimumTrade(Constraint):
    """A trade of a security is 0 or at least its ``min_trade_value`` dollars.

    Non-convex; the solve loop decides per security (``inputs.min_trade``) to force the
    trade up to the minimum (+1 buy, -1 sell) or to drop it (2), and this constraint turns
    that decision into floors and caps.
    """

    search_state = True

    def rows(self, ctx: Context) -> list[cp.Constraint]:
        buy_floor = ctx.param("buy_floor", ctx.n, 0.0)
        sell_floor = ctx.param("sell_floor", ctx.n, 0.0)
        return [ctx.buy >= buy_floor, ctx.security_sales >= sell_floor]

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        state = inputs.min_trade
        if state is None:
            return
        minimum = inputs.min_trade_value / inputs.value
        values["buy_floor"] = np.where(state == 1, minimum, 0.0)
        # A position smaller than the minimum can still be sold whole.
        values["sell_floor"] = np.where(state == -1, np.minimum(minimum, inputs.hold_weight), 0.0)
        cap_buys(values, state == 2)
        cap_sells(values, (state == 2)[inputs.lot_security])

    def active(self, inputs: AccountInputs) -> bool:
        return inputs.min_trade is not None and bool(np.any(inputs.min_trade != 0))

    def describe(self, inputs: AccountInputs) -> str:
        return "minimum trade size: each trade 0 or at least its minimum"

    def __repr__(self) -> str:
        return "MinimumTrade(0 or >= min_trade_value)"


class WholeShares(Constraint):
    """Trades in whole shares unless the account allows fractions.

    Not a row of the convex program: the plan's repair pass rounds the continuous solution,
    never selling more than a lot holds and keeping cash at or above its floor.
    """

    def active(self, inputs: AccountInputs) -> bool:
        return False

    def __repr__(self) -> str:
        return "WholeShares(repair pass after the solve)"
