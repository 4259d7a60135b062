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
import scipy.sparse as sp

from constraints.base import AccountInputs, Context
from planner import tax
from planner.program.risk import RiskModel

PP2 = 1e-4
"""One squared percentage point of tracking variance, as a fraction squared."""


class Term:
    """One objective term; ``weight * term`` and ``term + term`` build an :class:`Objective`."""

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        raise NotImplementedError

    def apply(
        self, inputs: AccountInputs, values: dict[str, np.ndarray], risk: RiskModel | None = None
    ) -> None:
        """Write this account's values of the parameters the term owns (``risk``: the
        template's risk model, for terms whose parameters depend on it)."""

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

    def __mul__(self, weight: float) -> Objective:
        return self.__rmul__(weight)

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        return sum(w * t.expr(ctx, risk) for w, t in self.terms if w != 0)

    def apply(
        self, inputs: AccountInputs, values: dict[str, np.ndarray], risk: RiskModel | None = None
    ) -> None:
        for _, t in self.terms:
            t.apply(inputs, values, risk)

    def __repr__(self) -> str:
        return " + ".join(f"{w:g} * {t!r}" for w, t in self.terms)


class TrackingError(Term):
    """Tracking variance to the goal weights, ``(w - g)' S (w - g)``, in pp^2.

    The goal enters only linear terms, ``w' S w - 2 (S g)' w + g' S g``, so the solver sees
    no auxiliary copy of ``w - g``. A full-rank (Cholesky) model gives ``S`` to the solver
    as a dense quadratic, the cheapest form up to about a hundred securities; a factor model
    ``S = X'X + diag(d)`` gives ``k`` factor variables ``f = X w`` and a diagonal:
    ``||f||^2 - 2 (X g)' f + w' diag(d) w - 2 (d g)' w + const``.
    """

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        scale = 1.0 / PP2
        if ctx.dense_risk and _dense(risk):
            covariance = risk.covariance * scale
            covariance = (covariance + covariance.T) / 2
            out = cp.quad_form(ctx.weights, covariance, assume_PSD=True)
            out = out - 2 * ctx.param("goal_covariance", ctx.n, 0.0) @ ctx.weights
            return out + ctx.param("goal_variance", None, 0.0)
        exposures = risk.exposures * np.sqrt(scale)
        factors = cp.Variable(exposures.shape[0], name="factor_exposure")
        ctx.extra_rows.append(factors == exposures @ ctx.weights)
        goal_factors = ctx.param("goal_factors", exposures.shape[0], 0.0)
        out = cp.sum_squares(factors) - 2 * goal_factors @ factors
        if np.any(risk.specific_variance > 0):
            specific = sp.diags(risk.specific_variance * scale)
            out = out + cp.quad_form(ctx.weights, specific, assume_PSD=True)
            out = out - 2 * ctx.param("goal_specific", ctx.n, 0.0) @ ctx.weights
        return out + ctx.param("goal_variance", None, 0.0)

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray], risk=None) -> None:
        scale = 1.0 / PP2
        goal = inputs.goal_weight
        if "goal_covariance" in values:
            goal_covariance = risk.covariance @ goal * scale
            values["goal_covariance"] = goal_covariance
            values["goal_variance"] = np.asarray(goal_covariance @ goal)
            return
        goal_factors = (risk.exposures * np.sqrt(scale)) @ goal
        goal_specific = risk.specific_variance * scale * goal
        values["goal_factors"] = goal_factors
        if "goal_specific" in values:
            values["goal_specific"] = goal_specific
        values["goal_variance"] = np.asarray(goal_factors @ goal_factors + goal_specific @ goal)

    def value(self, inputs, risk, sell, buy, weights) -> float:
        return risk.tracking_error(weights - inputs.goal_weight) ** 2 / PP2


DENSE_COVARIANCE_MAX = 100
"""Securities up to which a full-rank risk model is given to the solver as a dense matrix."""


def _dense(risk: RiskModel) -> bool:
    n = risk.exposures.shape[1]
    full_rank = risk.exposures.shape[0] >= n and not np.any(risk.specific_variance > 0)
    return full_rank and n <= DENSE_COVARIANCE_MAX


class TransactionCost(Term):
    """Half-spread plus commission on every dollar traded (fractions of V)."""

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        cost = ctx.param("cost_per_dollar", ctx.n, 0.0)
        return cost @ (ctx.security_sales + ctx.buy)

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray], risk=None) -> None:
        values["cost_per_dollar"] = inputs.cost_per_dollar

    def value(self, inputs, risk, sell, buy, weights) -> float:
        sales = np.bincount(inputs.lot_security, weights=sell, minlength=len(buy))
        return float(inputs.cost_per_dollar @ (sales + buy))


class Tax(Term):
    """Capital-gains tax of the lot sales (fractions of V), netted the way the tax year nets.

    Each lot is taxed at its ST or LT rate on its gain; a loss is a benefit at the same
    rate. The net of the plan, ``N``, is what the sales cost in tax. A net loss beyond what
    the return can use this year (its net gains so far and then the deduction from ordinary
    income, at the ST rate: see :func:`ordinary_offset`) only carries forward, so that part
    is valued at ``loss_benefit`` (0..1) of its face value: the term is ``N + (1 -
    loss_benefit) * max(0, -N - offset)``, convex in the sales. When the return's carried
    losses already exceed what the year uses, ``offset`` is negative and a gain of the plan
    first uses up such a loss, at ``loss_benefit`` of its tax. IRA and Roth accounts pay no
    tax. The plan's report computes the exact netted liability afterwards.
    """

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        coef = ctx.param("tax_coef", ctx.m, 0.0)
        # Net tax per security, one short row each: a single row over every lot slot would
        # be dense and slow the solver's factorisation.
        net = cp.Variable(ctx.n, name="net_tax")
        ctx.extra_rows.append(net == ctx.lot_to_security @ cp.multiply(coef, ctx.sell))
        keep = ctx.param("carry_keep", None, 0.0, nonneg=True)
        keep_offset = ctx.param("carry_keep_offset", None, 0.0)
        return cp.sum(net) + cp.pos(-keep * cp.sum(net) - keep_offset)

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray], risk=None) -> None:
        values["tax_coef"] = tax_per_dollar(inputs)
        keep = 1.0 - inputs.loss_benefit if inputs.taxable else 0.0
        values["carry_keep"] = np.asarray(keep)
        values["carry_keep_offset"] = np.asarray(keep * ordinary_offset(inputs))

    def value(self, inputs, risk, sell, buy, weights) -> float:
        """The term's value net of its value without trades (a carried-in loss beyond what
        the year uses makes that nonzero), so that no trade is worth 0."""
        net = float(tax_per_dollar(inputs) @ sell)
        if not inputs.taxable:
            return net
        offset = ordinary_offset(inputs)
        excess = max(0.0, -net - offset) - max(0.0, -offset)
        return net + (1.0 - inputs.loss_benefit) * excess

    def __repr__(self) -> str:
        return "Tax()"


def ordinary_offset(inputs: AccountInputs) -> float:
    """Tax at the ST (ordinary) rate on the net loss the return can still use this year
    (:attr:`planner.tax.YearSoFar.usable_loss`: its net gains so far, then the $3,000 or
    $1,500 deduction), as a fraction of account value; negative when carried losses
    already exceed that; 0 for IRA and Roth accounts."""
    if not inputs.taxable:
        return 0.0
    year = inputs.tax_year or tax.YearSoFar()
    return inputs.st_rate * year.usable_loss / inputs.value


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

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray], risk=None) -> None:
        base = np.zeros(len(inputs.symbols)) if inputs.impact is None else inputs.impact
        values["impact"] = np.maximum(self.coefficient * base, 0.0)

    def value(self, inputs, risk, sell, buy, weights) -> float:
        sales = np.bincount(inputs.lot_security, weights=sell, minlength=len(buy))
        base = np.zeros(len(buy)) if inputs.impact is None else inputs.impact
        return float(self.coefficient * base @ (sales + buy) ** 1.5)

    def __repr__(self) -> str:
        return f"MarketImpact({self.coefficient:g})"


def is_conic(objective: Objective) -> bool:
    """Whether the objective needs a conic solver (it has a non-quadratic term)."""
    return any(getattr(t, "conic", False) for _, t in objective.terms)


def tax_per_dollar(inputs: AccountInputs) -> np.ndarray:
    """Tax per dollar of proceeds of each lot slot at its ST or LT rate (negative for a
    loss: the tax it saves); zeros for IRA and Roth accounts."""
    if not inputs.taxable:
        return np.zeros(len(inputs.lot_real))
    rate = np.where(inputs.lot_long_term, inputs.lt_rate, inputs.st_rate)
    return rate * inputs.lot_gain_frac


def default_objective(tracking_error_value: float = 0.005) -> Objective:
    """``tracking_error_value * TrackingError() + TransactionCost() + Tax()``."""
    return tracking_error_value * TrackingError() + TransactionCost() + Tax()
