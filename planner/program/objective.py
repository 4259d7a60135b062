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

from constraints.base import BIG, AccountInputs, Context
from planner import tax
from planner.program.risk import RiskModel
from planner.tax import regimes

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

    def apply_state(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        """Write the values that depend on the solve loop's state (on every pass)."""

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

    def apply_state(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        for _, t in self.terms:
            t.apply_state(inputs, values)

    def weight_of(self, kind: type) -> float:
        """The total weight of the terms of type ``kind``."""
        return sum(w for w, t in self.terms if type(t) is kind)

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

    Exact US netting is piecewise linear in the plan's net short- and long-term gains but not
    convex (:mod:`planner.tax.regimes`), so the term has two forms.

    - The convex model, for the relaxation and the search over trade directions: each lot
      taxed at its ST or LT rate (a loss a benefit at that rate); of the net, ``N``, a loss
      beyond what the return can use this year (its net gains so far and then the deduction,
      at the ST rate: see :func:`ordinary_offset`) only carries forward and is valued at
      ``loss_benefit`` (0..1) of its face value: ``N + (1 - loss_benefit) * max(0, -N -
      offset)``.
    - Within a netting regime (the search state ``tax_regime``): the regime's exact tax,
      linear in the sales, with the regime's bounds on the plan's short-term, long-term and
      total gain as rows (:func:`regime_bounds`).

    :meth:`exact` is the exact value the search ranks plans by. IRA and Roth accounts pay no
    tax.
    """

    def expr(self, ctx: Context, risk: RiskModel) -> cp.Expression:
        coef = ctx.param("tax_coef", ctx.m, 0.0)
        # Per-security sums, one short row each: a single row over every lot slot would be
        # dense and slow the solver's factorisation.
        net = cp.Variable(ctx.n, name="net_tax")
        ctx.extra_rows.append(net == ctx.lot_to_security @ cp.multiply(coef, ctx.sell))
        keep = ctx.param("carry_keep", None, 0.0, nonneg=True)
        keep_offset = ctx.param("carry_keep_offset", None, 0.0)
        gains = []
        for term in ("st", "lt"):
            frac = ctx.param(f"{term}_gain_frac", ctx.m, 0.0)
            gain = cp.Variable(ctx.n, name=f"{term}_gain")
            ctx.extra_rows.append(gain == ctx.lot_to_security @ cp.multiply(frac, ctx.sell))
            gains.append(cp.sum(gain))
        # The regime's bounds on the plan's gains (slack but within a regime).
        for name, gain in zip(REGIME_BOUNDS, (*gains, gains[0] + gains[1]), strict=True):
            low = ctx.param(f"regime_{name}_low", None, -BIG)
            high = ctx.param(f"regime_{name}_high", None, BIG)
            ctx.extra_rows += [gain >= low, gain <= high]
        return cp.sum(net) + cp.pos(-keep * cp.sum(net) - keep_offset)

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray], risk=None) -> None:
        values["tax_coef"] = tax_per_dollar(inputs)
        keep = 1.0 - inputs.loss_benefit if inputs.taxable else 0.0
        values["carry_keep"] = np.asarray(keep)
        values["carry_keep_offset"] = np.asarray(keep * ordinary_offset(inputs))
        st_frac, lt_frac = gain_fracs(inputs)
        values["st_gain_frac"], values["lt_gain_frac"] = st_frac, lt_frac

    def apply_state(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        """The regime form (class doc) when the search fixes ``inputs.tax_regime``."""
        if inputs.tax_regime is None or not inputs.taxable:
            return
        piece = regime_pieces(inputs)[inputs.tax_regime]
        st_frac, lt_frac = gain_fracs(inputs)
        values["tax_coef"] = piece.st_slope * st_frac + piece.lt_slope * lt_frac
        values["carry_keep"] = np.asarray(0.0)
        values["carry_keep_offset"] = np.asarray(0.0)
        # A regime no plan reaches keeps the bound it cannot meet: the solver says so.
        for name, (low, high) in regime_bounds(inputs, piece, values["sell_cap"]).items():
            values[f"regime_{name}_low"] = np.asarray(max(low, -BIG))
            values[f"regime_{name}_high"] = np.asarray(min(high, BIG))

    def value(self, inputs, risk, sell, buy, weights) -> float:
        """The convex model's value net of its value without trades (a carried-in loss
        beyond what the year uses makes that nonzero), so that no trade is worth 0; within
        a regime, the regime's tax."""
        if inputs.taxable and inputs.tax_regime is not None:
            st, lt = realized(inputs, sell)
            return regime_pieces(inputs)[inputs.tax_regime].value(st, lt) / inputs.value
        net = float(tax_per_dollar(inputs) @ sell)
        if not inputs.taxable:
            return net
        offset = ordinary_offset(inputs)
        excess = max(0.0, -net - offset) - max(0.0, -offset)
        return net + (1.0 - inputs.loss_benefit) * excess

    def model(self, inputs: AccountInputs, sell: np.ndarray) -> float:
        """What a solve's objective holds for this term at ``sell`` (fractions of V), in the
        form ``inputs`` selects: with its constant, without the regime's constant."""
        if not inputs.taxable:
            return 0.0
        if inputs.tax_regime is None:
            net = float(tax_per_dollar(inputs) @ sell)
            keep = 1.0 - inputs.loss_benefit
            return net + max(0.0, keep * (-net - ordinary_offset(inputs)))
        piece = regime_pieces(inputs)[inputs.tax_regime]
        st, lt = realized(inputs, sell)
        return (piece.st_slope * st + piece.lt_slope * lt) / inputs.value

    def exact(self, inputs: AccountInputs, sell: np.ndarray) -> float:
        """The exact tax the sales add to the return's year, less ``loss_benefit`` times the
        tax value of the loss they carry forward (fractions of V; see
        :func:`planner.tax.regimes.valued_increment`)."""
        if not inputs.taxable:
            return 0.0
        st, lt = realized(inputs, sell)
        year = inputs.tax_year or tax.YearSoFar()
        return (
            regimes.valued_increment(
                year, st, lt, inputs.st_rate, inputs.lt_rate, inputs.loss_benefit
            )
            / inputs.value
        )

    def __repr__(self) -> str:
        return "Tax()"


REGIME_BOUNDS = ("st", "lt", "sum")
"""The gains a regime bounds: short-term, long-term and their total."""


def _gain_ranges(inputs: AccountInputs, sell_cap: np.ndarray | None):
    """Per bounded gain (short-term, long-term, total): its gain per unit of sale of each
    lot slot, and the least and most it can be with lot sales within ``sell_cap``
    (fractions of V per slot; default: every lot)."""
    st_frac, lt_frac = gain_fracs(inputs)
    cap = inputs.lot_value_weight
    if sell_cap is not None:
        cap = np.minimum(cap, sell_cap)
    for name, frac in (("st", st_frac), ("lt", lt_frac), ("sum", st_frac + lt_frac)):
        yield name, float(np.minimum(frac, 0.0) @ cap), float(np.maximum(frac, 0.0) @ cap)


def _piece_bounds(inputs: AccountInputs, piece: regimes.Piece) -> dict[str, tuple[float, float]]:
    """A regime's bounds on the plan's gains in fractions of V."""
    bounds = {"st": piece.st_bounds, "lt": piece.lt_bounds, "sum": piece.sum_bounds}
    return {k: (lo / inputs.value, hi / inputs.value) for k, (lo, hi) in bounds.items()}


def regime_bounds(
    inputs: AccountInputs, piece: regimes.Piece, sell_cap: np.ndarray | None = None
) -> dict[str, tuple[float, float]]:
    """The bounds (fractions of V) a regime puts on the plan's short-term, long-term and
    total gain, each left slack (``-BIG``, ``BIG``) where lot sales within ``sell_cap``
    (fractions of V per slot; default: every lot) cannot cross it: a row no plan can leave
    is degenerate for an interior-point solver (selling no short-term lot leaves the
    short-term gain at exactly 0)."""
    bounds = _piece_bounds(inputs, piece)
    out = {}
    for name, least, most in _gain_ranges(inputs, sell_cap):
        low, high = bounds[name]
        out[name] = (
            low if low > least + REGIME_SLACK else -BIG,
            high if high < most - REGIME_SLACK else BIG,
        )
    return out


def regime_reachable(
    inputs: AccountInputs, piece: regimes.Piece, sell_cap: np.ndarray | None = None
) -> bool:
    """Whether lot sales within ``sell_cap`` can bring each of the plan's gains within the
    regime's bounds (each on its own)."""
    bounds = _piece_bounds(inputs, piece)
    for name, least, most in _gain_ranges(inputs, sell_cap):
        low, high = bounds[name]
        if low > most + REGIME_SLACK or high < least - REGIME_SLACK:
            return False
    return True


REGIME_SLACK = 1e-9
"""A regime bound within this (fraction of V) of what the sales can reach at most is left
out: no plan can cross it."""


def gain_fracs(inputs: AccountInputs) -> tuple[np.ndarray, np.ndarray]:
    """Realised gain per unit of sale (fractions of V) of each lot slot, split into its
    short- and long-term part (the other is 0)."""
    gain = inputs.lot_gain_frac
    return np.where(inputs.lot_long_term, 0.0, gain), np.where(inputs.lot_long_term, gain, 0.0)


def realized(inputs: AccountInputs, sell: np.ndarray) -> tuple[float, float]:
    """Short- and long-term gains (dollars) of lot sales ``sell`` (fractions of V)."""
    st_frac, lt_frac = gain_fracs(inputs)
    return float(st_frac @ sell) * inputs.value, float(lt_frac @ sell) * inputs.value


def regime_pieces(inputs: AccountInputs) -> list[regimes.Piece]:
    """The netting regimes of the account's return this year (in :data:`regimes.REGIMES`
    order), as functions of the plan's gains in dollars."""
    year = inputs.tax_year or tax.YearSoFar()
    return regimes.pieces(year, inputs.st_rate, inputs.lt_rate, inputs.loss_benefit)


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
