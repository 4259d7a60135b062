"""Wash-sale constraints (IRS Pub. 550): look-back blocks and one direction per group."""

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


class WashSaleLookback(Constraint):
    """Blocks from history: no buys in a group with a loss sale in the last 30 days; no loss
    sales in a group with a buy in the last 30 days."""

    def _loss_mask(self, inputs: AccountInputs) -> np.ndarray:
        return inputs.lot_loss & inputs.wash_loss_sale_blocked[inputs.lot_security]

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        cap_buys(values, inputs.wash_buy_blocked)
        cap_sells(values, self._loss_mask(inputs))

    def active(self, inputs: AccountInputs) -> bool:
        return bool(inputs.wash_buy_blocked.any() or self._loss_mask(inputs).any())

    def describe(self, inputs: AccountInputs) -> str:
        buys = [s for s, b in zip(inputs.symbols, inputs.wash_buy_blocked, strict=True) if b]
        return f"wash-sale look-back: no buys of {', '.join(buys) or 'none'}; no loss sales in recently bought groups"

    def __repr__(self) -> str:
        return "WashSaleLookback(30-day blocks from history)"


class WashSaleOneDirection(Constraint):
    """Never a buy and a loss sale in one wash group in one plan.

    Non-convex as stated; the solve loop picks a direction per group (buys, or loss sales)
    and records it per security in ``inputs.wash_direction`` (+1: the group buys, so no loss
    sales; -1: the group sells at a loss, so no buys), after which this is two bound masks.
    Exact mode gives each group a binary: it buys, or it sells no loss lot.
    """

    nonconvex = True
    search_state = True

    @staticmethod
    def washed_loss_lots(inputs: AccountInputs, buying: np.ndarray) -> np.ndarray:
        """Loss lots whose sale would be washed by a buy of the securities in ``buying``:
        the loss lots of every wash group with such a buy."""
        codes = inputs.group_codes
        groups = np.zeros(int(codes.max()) + 1 if len(codes) else 0, dtype=bool)
        groups[codes[buying]] = True
        return inputs.lot_real & inputs.lot_loss & groups[codes][inputs.lot_security]

    def violations(self, trades: Trades) -> np.ndarray:
        """Wash groups (sorted names) that buy and sell at a loss."""
        buys, losses = trades.group_totals
        return (buys > TRADE_EPS) & (losses > TRADE_EPS)

    def mixed_integer_rows(self, ctx: Context, switches: Switches) -> list[cp.Constraint]:
        inputs = switches.inputs
        loss_sales = ctx.lot_to_security @ cp.multiply(inputs.lot_loss.astype(float), ctx.sell)
        buys_in_group = switches.group_members.T @ switches.group_buys
        return [loss_sales <= cp.multiply(inputs.hold_weight, 1 - buys_in_group)]

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        if inputs.wash_direction is None:
            return
        cap_buys(values, inputs.wash_direction < 0)
        cap_sells(values, (inputs.wash_direction > 0)[inputs.lot_security] & inputs.lot_loss)

    def active(self, inputs: AccountInputs) -> bool:
        return inputs.wash_direction is not None and bool(np.any(inputs.wash_direction != 0))

    def describe(self, inputs: AccountInputs) -> str:
        return "wash sale: no buy and loss sale in one wash group"

    def __repr__(self) -> str:
        return "WashSaleOneDirection(no buy + loss sale per group)"


class TradeDirection(Constraint):
    """One direction per security: a security is bought or sold in a plan, not both."""

    nonconvex = True
    search_state = True

    def violations(self, trades: Trades) -> np.ndarray:
        """Securities both bought and sold."""
        return (trades.buy > TRADE_EPS) & (trades.sales > TRADE_EPS)

    def mixed_integer_rows(self, ctx: Context, switches: Switches) -> list[cp.Constraint]:
        return [switches.is_buy + switches.is_sell <= 1]

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        if inputs.direction is None:
            return
        cap_buys(values, inputs.direction < 0)
        cap_sells(values, (inputs.direction > 0)[inputs.lot_security])

    def active(self, inputs: AccountInputs) -> bool:
        return inputs.direction is not None and bool(np.any(inputs.direction != 0))

    def __repr__(self) -> str:
        return "TradeDirection(buy or sell per security)"
