"""Minimum trade size and whole shares: the non-convex trade rules and their handles."""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from constraints.base import (
    TRADE_EPS,
    AccountInputs,
    Constraint,
    Context,
    Switches,
    Trades,
    cap_buys,
    cap_sells,
)


class MinimumTrade(Constraint):
    """A trade of a security is 0 or at least its ``min_trade_value`` dollars; selling a
    whole position smaller than that is allowed (nothing is left behind).

    Non-convex; the solve loop decides per security (``inputs.min_trade``) to force the
    trade up to the minimum (+1 buy, -1 sell) or to drop it (2), and this constraint turns
    that decision into floors and caps. Exact mode makes the same choice with binaries.
    """

    nonconvex = True
    search_state = True
    TOLERANCE = 1e-6
    """A solver's trade within this fraction of its minimum meets it (solver round-off)."""
    EXACT = 1e-9
    """The same for amounts that are exact: shares rounded for the blotter, and the search's
    choice of trades to pin (a solve that pins one lands within this)."""

    @classmethod
    def below(cls, dollars, minimum, tolerance: float = EXACT):
        """Whether a trade of ``dollars`` falls short of a ``minimum`` (dollars)."""
        return dollars < minimum * (1 - tolerance)

    @classmethod
    def short(cls, inputs: AccountInputs, dollars: np.ndarray) -> np.ndarray:
        """Securities whose exact trade of ``dollars`` is below their minimum."""
        return cls.below(dollars, inputs.min_trade_value)

    @classmethod
    def below_minimum(
        cls, inputs: AccountInputs, trades: Trades, tolerance: float = TOLERANCE
    ) -> np.ndarray:
        """Securities that trade, but less than their minimum and not a whole position."""
        dollars = trades.dollars
        whole = (trades.sales > TRADE_EPS) & (trades.sales >= inputs.hold_weight - 1e-9)
        small = cls.below(dollars, inputs.min_trade_value, tolerance)
        return (dollars > TRADE_EPS * inputs.value) & small & ~whole

    def violations(self, trades: Trades) -> np.ndarray:
        return self.below_minimum(trades.inputs, trades)

    def mixed_integer_rows(self, ctx: Context, switches: Switches) -> list[cp.Constraint]:
        inputs = switches.inputs
        minimum = inputs.min_trade_value / inputs.value
        smallest_sale = np.minimum(minimum, inputs.hold_weight)
        return [
            ctx.buy >= cp.multiply(minimum, switches.is_buy),
            ctx.security_sales >= cp.multiply(smallest_sale, switches.is_sell),
        ]

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
