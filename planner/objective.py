"""Objective terms that compose: ``0.005 * TrackingError() + TransactionCost() + Tax()``.

Every term is measured in fractions of account value, except tracking error, which is in
squared percentage points of annualised tracking error (a 2 pp tracking error is 4 units).
The weight of :class:`TrackingError` is therefore "the fraction of account value worth paying
to remove one unit", and the default, 0.005, says: paying 0.5 % of the account in tax and
costs is worth removing a 1 pp tracking error (or 2 % to remove a 2 pp one).
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from constraints.base import AccountInputs, Context
from planner.risk import RiskModel

PP2 = 1e-4
"""One squared percentage point of tracking variance, as a fraction squared."""


class Term:
    """One objective term; ``weight * term`` and ``term + term`` build an :class:`Objective`."""

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        raise NotImplementedError

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        """Write this account's values of the parameters the term owns."""

    def value(self, inputs: AccountInputs, risk: RiskModel, sell, buy, weights) -> float:
        """The term's value at a solution (fractions of V), for reports."""
        raise NotImplementedError

    def __rmul__(self, weight: float) -> Objective:
        return Objective(((float(weight), self),))

    def __mul__(self, weight: float) -> Objective:
        return self.__rmul__(weight)

    def __add__(self, other: Term | Objective) -> Objective:
        return Objective(((1.0, self),)) + other

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True)
class Objective:
    """A weighted sum of terms."""

    terms: tuple[tuple[float, Term], ...]

    def __add__(self, other: Term | Objective) -> Objective:
        if isinstance(other, Term):
            other = Objective(((1.0, other),))
        return Objective(self.terms + other.terms)

    def __radd__(self, other: Term | Objective) -> Objective:
        if isinstance(other, Term):
            return Objective(((1.0, other),)) + self
        return other + self

    def __rmul__(self, weight: float) -> Objective:
        return Objective(tuple((weight * w, t) for w, t in self.terms))

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        return sum(w * t.expr(ctx, risk) for w, t in self.terms if w != 0)

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        for _, t in self.terms:
            t.apply(inputs, values)

    def __repr__(self) -> str:
        return " + ".join(f"{w:g} * {t!r}" for w, t in self.terms)


class TrackingError(Term):
    """Tracking variance to the goal weights, ``(w - g)' S (w - g)``, in pp^2."""

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        goal = ctx.param("goal", ctx.n, 0.0)
        active = ctx.weights - goal
        scale = 1.0 / np.sqrt(PP2)
        out = cp.sum_squares((risk.exposures * scale) @ active)
        if np.any(risk.specific_variance > 0):
            out = out + cp.sum_squares(cp.multiply(np.sqrt(risk.specific_variance) * scale, active))
        return out

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        values["goal"] = inputs.goal_weight

    def value(self, inputs, risk, sell, buy, weights) -> float:
        return risk.tracking_error(weights - inputs.goal_weight) ** 2 / PP2


class TransactionCost(Term):
    """Half-spread plus commission on every dollar traded (fractions of V)."""

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        cost = ctx.param("cost_per_dollar", ctx.n, 0.0)
        return cost @ (ctx.security_sales + ctx.buy)

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        values["cost_per_dollar"] = inputs.cost_per_dollar

    def value(self, inputs, risk, sell, buy, weights) -> float:
        sales = np.bincount(inputs.lot_security, weights=sell, minlength=len(buy))
        return float(inputs.cost_per_dollar @ (sales + buy))


class Tax(Term):
    """Capital-gains tax of the lot sales at each lot's ST or LT rate (fractions of V).

    A loss is a benefit scaled by ``loss_benefit`` (losses only pay off when gains exist to
    absorb them); IRA and Roth accounts pay no tax. This is the optimiser's linear model; the
    plan's report computes the exact netted liability afterwards.
    """

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        return ctx.param("tax_coef", ctx.m, 0.0) @ ctx.sell

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        values["tax_coef"] = tax_per_dollar(inputs)

    def value(self, inputs, risk, sell, buy, weights) -> float:
        return float(tax_per_dollar(inputs) @ sell)


class MarketImpact(Term):
    """Square-root market impact, ``b * sigma * |t|^1.5 / sqrt(ADV)`` dollars for a trade of
    ``t`` dollars (Almgren et al. 2005); in fractions of V it is
    ``b * sigma * sqrt(V / ADV) * (t / V)^1.5``. Convex, but not quadratic: a template with
    this term is solved by a conic solver (Clarabel), not PIQP. Securities without ``adv`` and
    ``volatility`` have no impact.
    """

    conic = True

    def __init__(self, coefficient: float = 1.0):
        self.coefficient = coefficient

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        impact = ctx.param("impact", ctx.n, 0.0, nonneg=True)
        traded = ctx.security_sales + ctx.buy
        return impact @ cp.power(traded, 1.5)

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        base = np.zeros(len(inputs.symbols)) if inputs.impact is None else inputs.impact
        values["impact"] = np.maximum(self.coefficient * base, 0.0)

    def value(self, inputs, risk, sell, buy, weights) -> float:
        sales = np.bincount(inputs.lot_security, weights=sell, minlength=len(buy))
        base = np.zeros(len(buy)) if inputs.impact is None else inputs.impact
        return float(self.coefficient * base @ (sales + buy) ** 1.5)

    def __repr__(self) -> str:
        return f"MarketImpact({self.coefficient:g})"


def tracking_error_weight(objective: Objective) -> float:
    """Total weight of the :class:`TrackingError` terms of ``objective`` (fraction of V per
    squared percentage point)."""
    return float(sum(w for w, t in objective.terms if isinstance(t, TrackingError)))


def is_conic(objective: Objective) -> bool:
    """Whether the objective needs a conic solver (it has a non-quadratic term)."""
    return any(getattr(t, "conic", False) for _, t in objective.terms)


def tax_per_dollar(inputs: AccountInputs) -> np.ndarray:
    """Linear tax per dollar of proceeds of each lot slot (negative for a loss)."""
    if not inputs.taxable:
        return np.zeros(len(inputs.lot_real))
    rate = np.where(inputs.lot_long_term, inputs.lt_rate, inputs.st_rate)
    gain = inputs.lot_gain_frac
    return rate * np.where(gain < 0, inputs.loss_benefit * gain, gain)


def default_objective(tracking_error_value: float = 0.005) -> Objective:
    """``tracking_error_value * TrackingError() + TransactionCost() + Tax()``."""
    return tracking_error_value * TrackingError() + TransactionCost() + Tax()
