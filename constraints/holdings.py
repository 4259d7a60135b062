"""Constraints on positions, cash, weights and turnover."""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from constraints.base import BIG, AccountInputs, Constraint, Context


class NoShorting(Constraint):
    """Sales and buys are non-negative (a sale can only reduce a long lot)."""

    blamable = False

    def rows(self, ctx: Context) -> list[cp.Constraint]:
        return [ctx.sell >= 0, ctx.buy >= 0]

    def __repr__(self) -> str:
        return "NoShorting(sell >= 0, buy >= 0)"


class LotBounds(Constraint):
    """A lot sale is at most the lot (``0 <= x_l <= q_l``); owns the shared caps.

    The rows ``sell <= sell_cap`` and ``buy <= buy_cap`` carry every per-lot and
    per-security restriction: other constraints only tighten the caps.
    """

    blamable = False

    def rows(self, ctx: Context) -> list[cp.Constraint]:
        sell_cap = ctx.param("sell_cap", ctx.m, BIG)
        buy_cap = ctx.param("buy_cap", ctx.n, BIG)
        return [ctx.sell <= sell_cap, ctx.buy <= buy_cap]

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        values["sell_cap"] = np.minimum(values["sell_cap"], inputs.lot_value_weight)

    def describe(self, inputs: AccountInputs) -> str:
        return f"lot bounds: sell at most the {int(inputs.lot_real.sum())} lots held"

    def __repr__(self) -> str:
        return "LotBounds(0 <= sold <= lot shares)"


class CashFloor(Constraint):
    """Post-trade cash is at least the floor (the cash target minus its band)."""

    def rows(self, ctx: Context) -> list[cp.Constraint]:
        return [ctx.cash >= ctx.param("cash_floor", None, -BIG)]

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        values["cash_floor"] = np.asarray(inputs.cash_floor_weight)

    def describe(self, inputs: AccountInputs) -> str:
        return (
            f"cash floor: cash >= {inputs.cash_floor_weight:.2%} "
            f"({inputs.money(inputs.cash_floor_weight)})"
        )

    def __repr__(self) -> str:
        return "CashFloor(cash >= target - band)"


class ClassBands(Constraint):
    """Post-trade class weights inside the bounds the trigger asked for (partial rebalance).

    Without bounds (a full rebalance) the rows are slack and the objective does the work.
    """

    def rows(self, ctx: Context) -> list[cp.Constraint]:
        c = len(ctx.classes)
        lower = ctx.param("class_lower", c, -BIG)
        upper = ctx.param("class_upper", c, BIG)
        cash_upper = ctx.param("cash_upper", None, BIG)
        class_weights = ctx.security_to_class @ ctx.weights
        return [class_weights >= lower, class_weights <= upper, ctx.cash <= cash_upper]

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        values["class_lower"] = np.asarray(inputs.class_lower, dtype=float)
        values["class_upper"] = np.asarray(inputs.class_upper, dtype=float)
        values["cash_upper"] = np.asarray(inputs.cash_ceiling_weight)

    def active(self, inputs: AccountInputs) -> bool:
        return bool(np.any(inputs.class_lower > -BIG) or np.any(inputs.class_upper < BIG))

    def describe(self, inputs: AccountInputs) -> str:
        return "bands: post-trade class weights inside the trigger's band edge/midpoint"

    def __repr__(self) -> str:
        return "ClassBands(lower <= class weight <= upper)"


class WeightLimits(Constraint):
    """Per-security post-trade weight limits (fractions of account value).

    The upper limit binds on every model security; the lower limit only on the securities
    the model targets (a positive model target weight): alternates and legacy holdings have
    target 0, and a floor there would make the plan buy a sliver of each of them.
    """

    def __init__(self, lower: float | None = None, upper: float | None = None):
        self.lower = lower
        self.upper = upper

    def rows(self, ctx: Context) -> list[cp.Constraint]:
        lower = ctx.param("weight_lower", ctx.n, -BIG)
        upper = ctx.param("weight_upper", ctx.n, BIG)
        return [ctx.weights >= lower, ctx.weights <= upper]

    @staticmethod
    def targeted(inputs: AccountInputs) -> np.ndarray:
        """Securities with a positive model target: ``target_weight`` when the planner gives
        it, else ``goal_weight`` (the plan's goal, which a partial rebalance may move)."""
        target = inputs.target_weight if inputs.target_weight is not None else inputs.goal_weight
        return inputs.in_model & (np.asarray(target, dtype=float) > 0)

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        # Legacy holdings are being wound down: no limit binds on them.
        if self.lower is not None:
            values["weight_lower"] = np.where(self.targeted(inputs), self.lower, -BIG)
        if self.upper is not None:
            values["weight_upper"] = np.where(inputs.in_model, self.upper, BIG)

    def active(self, inputs: AccountInputs) -> bool:
        return self.upper is not None or (
            self.lower is not None and bool(self.targeted(inputs).any())
        )

    def describe(self, inputs: AccountInputs) -> str:
        parts = []
        if self.lower is not None:
            names = [s for s, t in zip(inputs.symbols, self.targeted(inputs), strict=True) if t]
            parts.append(f"weight >= {self.lower:.2%} for {', '.join(names) or 'none'}")
        if self.upper is not None:
            parts.append(f"weight <= {self.upper:.2%} for model securities")
        return "weight limits: " + "; ".join(parts or ["none"])

    def __repr__(self) -> str:
        return f"WeightLimits(lower={self.lower}, upper={self.upper})"


class TurnoverCap(Constraint):
    """Total traded (sales plus buys) at most ``cap`` of account value."""

    def __init__(self, cap: float):
        self.cap = cap

    def rows(self, ctx: Context) -> list[cp.Constraint]:
        return [
            cp.sum(ctx.security_sales) + cp.sum(ctx.buy) <= ctx.param("turnover_cap", None, BIG)
        ]

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        values["turnover_cap"] = np.asarray(self.cap)

    def describe(self, inputs: AccountInputs) -> str:
        return f"turnover cap: traded <= {self.cap:.1%} ({inputs.money(self.cap)})"

    def __repr__(self) -> str:
        return f"TurnoverCap({self.cap:g})"


class CashFlowMode(Constraint):
    """A cash-flow rebalance only buys (contribution) or only sells (withdrawal)."""

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        if inputs.cash_flow_mode == "buy_only":
            values["sell_cap"] = np.zeros_like(values["sell_cap"])
        elif inputs.cash_flow_mode == "sell_only":
            values["buy_cap"] = np.zeros_like(values["buy_cap"])

    def active(self, inputs: AccountInputs) -> bool:
        return inputs.cash_flow_mode != "none"

    def describe(self, inputs: AccountInputs) -> str:
        return f"cash-flow mode: {inputs.cash_flow_mode.replace('_', '-')}"

    def __repr__(self) -> str:
        return "CashFlowMode(buy-only | sell-only)"
