"""Constraints on realised gains."""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from constraints.base import BIG, AccountInputs, Constraint, Context, cap_sells


class GainBudget(Constraint):
    """Net realised gains of the plan at most the account's gain budget (dollars)."""

    def rows(self, ctx: Context) -> list[cp.Constraint]:
        coef = ctx.param("gain_coef", ctx.m, 0.0)
        return [coef @ ctx.sell <= ctx.param("gain_cap", None, BIG)]

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        if inputs.taxable and inputs.gain_budget is not None:
            values["gain_coef"] = inputs.lot_gain_frac
            values["gain_cap"] = np.asarray(inputs.gain_budget / inputs.value)

    def active(self, inputs: AccountInputs) -> bool:
        return inputs.taxable and inputs.gain_budget is not None

    def describe(self, inputs: AccountInputs) -> str:
        return f"gain budget: net realised gains <= ${inputs.gain_budget:,.2f}"

    def __repr__(self) -> str:
        return "GainBudget(net realised gain <= budget)"


class ShortTermGainCap(Constraint):
    """Net short-term gains of the plan at most the account's cap (dollars)."""

    def rows(self, ctx: Context) -> list[cp.Constraint]:
        coef = ctx.param("st_gain_coef", ctx.m, 0.0)
        return [coef @ ctx.sell <= ctx.param("st_gain_cap", None, BIG)]

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        if inputs.taxable and inputs.st_gain_cap is not None:
            values["st_gain_coef"] = np.where(inputs.lot_long_term, 0.0, inputs.lot_gain_frac)
            values["st_gain_cap"] = np.asarray(inputs.st_gain_cap / inputs.value)

    def active(self, inputs: AccountInputs) -> bool:
        return inputs.taxable and inputs.st_gain_cap is not None

    def describe(self, inputs: AccountInputs) -> str:
        return f"short-term gain cap: net ST gains <= ${inputs.st_gain_cap:,.2f}"

    def __repr__(self) -> str:
        return "ShortTermGainCap(net ST gain <= cap)"


class HarvestLimit(Constraint):
    """Loss lots of a security the account may not harvest sell at most what moving the
    security to its goal needs (the caps of :attr:`AccountInputs.loss_sale_cap`)."""

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        if inputs.taxable and inputs.loss_sale_cap is not None:
            values["sell_cap"] = np.minimum(values["sell_cap"], inputs.loss_sale_cap)

    def active(self, inputs: AccountInputs) -> bool:
        return (
            inputs.taxable
            and inputs.loss_sale_cap is not None
            and bool((inputs.loss_sale_cap < BIG).any())
        )

    def describe(self, inputs: AccountInputs) -> str:
        capped = inputs.lot_real & (inputs.loss_sale_cap < BIG)
        names = sorted({inputs.symbols[i] for i in inputs.lot_security[capped].tolist()})
        return f"no tax-loss harvest of {', '.join(names)}: loss lots sell only to rebalance"

    def __repr__(self) -> str:
        return "HarvestLimit(loss sales <= excess over goal where not harvested)"


class HoldNearLongTerm(Constraint):
    """Do not sell gain lots that turn long-term within ``days`` days."""

    def __init__(self, days: int):
        self.days = days

    def _mask(self, inputs: AccountInputs) -> np.ndarray:
        return (
            inputs.lot_real
            & ~inputs.lot_long_term
            & (inputs.lot_gain_frac > 0)
            & (inputs.lot_days_to_long_term <= self.days)
        )

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        if inputs.taxable:
            cap_sells(values, self._mask(inputs))

    def active(self, inputs: AccountInputs) -> bool:
        return inputs.taxable and bool(self._mask(inputs).any())

    def describe(self, inputs: AccountInputs) -> str:
        return f"hold {int(self._mask(inputs).sum())} gain lots turning long-term within {self.days} days"

    def __repr__(self) -> str:
        return f"HoldNearLongTerm(days={self.days})"
