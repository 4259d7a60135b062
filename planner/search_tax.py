"""The search's tax: every candidate ranked by the exact netted tax, whatever tax model it
was solved with (the convex model or a netting regime's, :mod:`planner.tax.regimes`), and
the tests of whether a plan's tax is exact. Objectives are fractions of account value."""

from __future__ import annotations

import dataclasses

import numpy as np

from constraints.base import AccountInputs
from planner import tax
from planner.program.objective import (
    Tax,
    ordinary_offset,
    realized,
    regime_pieces,
    tax_per_dollar,
)
from planner.program.problem import Template
from planner.solvers import Solution
from planner.tax import regimes

REGIME_SOLVES = 3
"""Solves the standard effort may spend on netting regimes once it has a plan."""
REGIME_SOLVES_THOROUGH = 8
"""The same for the thorough effort."""
REGIME_TOLERANCE = 1e-7
"""Plan gains within this fraction of account value of a regime's boundary sit on it."""
REGIME_TIE = 1e-9
"""Objective (fraction of account value) within which a plan solved in its regime counts as
good as the convex model's plan, and is kept in its place."""


def with_exact_tax(tax_weight: float, inputs: AccountInputs, sol: Solution) -> Solution:
    """``sol`` with its objective taken with the exact tax (:meth:`Tax.exact`, weighted by
    ``tax_weight``) in place of the form the solve used (:meth:`Tax.model`), so that every
    candidate is ranked by the same objective whatever form it was solved in."""
    if not (sol.ok and inputs.taxable and tax_weight):
        return sol
    tax_term = Tax()
    exact = tax_term.exact(inputs, sol.sell) - tax_term.model(inputs, sol.sell)
    return dataclasses.replace(sol, objective=sol.objective + tax_weight * exact)


def plan_objective(
    template: Template, inputs: AccountInputs, sell: np.ndarray, buy: np.ndarray
) -> float:
    """The template's objective at a plan (``sell`` per lot slot, ``buy`` per security;
    fractions of V) with the exact tax, for plans no solve produced (a harvest undone by
    hand): comparable with another plan's value here, not with a solve's objective."""
    sales = np.bincount(inputs.lot_security, weights=sell, minlength=len(buy))
    weights = inputs.hold_weight - sales + buy
    total = 0.0
    for weight, term in template.objective.terms:
        if isinstance(term, Tax):
            total += weight * term.exact(inputs, sell)
        else:
            total += weight * term.value(inputs, template.risk, sell, buy, weights)
    return total


def in_regime(inputs: AccountInputs, sell: np.ndarray) -> bool:
    """Whether lot sales ``sell`` (fractions of V) keep the plan in the netting regime its
    tax was solved in (so that the regime's tax is exact for them); always for an IRA."""
    if not inputs.taxable:
        return True
    if inputs.tax_regime is None:
        return False
    st, lt = realized(inputs, sell)
    piece = regime_pieces(inputs)[inputs.tax_regime]
    return piece.violation(st, lt) <= REGIME_TOLERANCE * inputs.value


def plan_regimes(
    inputs: AccountInputs, sell: np.ndarray, tolerance: float
) -> tuple[int, list[int]]:
    """The netting regime of the plan selling ``sell`` (fractions of V per lot slot), and
    the other regimes that lie within ``tolerance`` (fraction of account value) of its
    gains: with :data:`REGIME_TOLERANCE`, those whose boundary it sits on."""
    year = inputs.tax_year or tax.YearSoFar()
    st, lt = realized(inputs, sell)
    near = regimes.neighbours(year, st, lt, tolerance * inputs.value)
    return regimes.regime_of(year, st, lt), near


def model_is_locally_exact(inputs: AccountInputs, sol: Solution) -> bool:
    """Whether the convex tax model lies below the exact tax around ``sol`` and meets it
    there (up to a constant): then ``sol``, optimal for the model, is locally optimal for
    the exact tax, and no regime's solve can improve it nearby."""
    net = float(tax_per_dollar(inputs) @ sol.sell)
    excess = -net - ordinary_offset(inputs)
    rates = (inputs.st_rate, inputs.lt_rate)
    slopes = []
    if excess <= REGIME_TOLERANCE:  # the carry term off: each lot at its rate
        slopes.append(rates)
    if excess >= -REGIME_TOLERANCE:  # on: a net loss at loss_benefit of its value
        slopes.append(tuple(inputs.loss_benefit * r for r in rates))
    st, lt = realized(inputs, sol.sell)
    return regimes.locally_above(
        regime_pieces(inputs), st, lt, slopes, 10 * REGIME_TOLERANCE * inputs.value
    )
