"""The search's state: one account's candidates solved and remembered (:class:`Search`),
their trades per security, and the per-security trade states the local search moves
between. Trades are fractions of account value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import constraints as C
from constraints.base import AccountInputs
from planner import solvers
from planner.program.objective import Tax
from planner.program.problem import Template
from planner.search_tax import REGIME_TOLERANCE, plan_regimes, with_exact_tax
from planner.solvers import Solution

TRADE_EPS = C.TRADE_EPS
"""A trade smaller than this fraction of account value counts as no trade."""
DIRECTION, WASH = C.TradeDirection(), C.WashSaleOneDirection()
"""The non-convex rules whose choices the search makes; each says where a solution breaks
it (``violations``), and the search fixes exactly that."""


@dataclass(frozen=True)
class SolveReport:
    """The continuous solution an account ends with, and how it got there."""

    inputs: AccountInputs
    solution: Solution
    passes: int
    solve_ms: float
    notes: tuple[str, ...]


def trades(inputs: AccountInputs, sol: Solution) -> C.Trades:
    """The solution's trades per security and wash group. The loop asks this of one
    solution many times; a solution belongs to one account, whose lots never change, so
    the answer is kept on the solution."""
    cached = sol.__dict__.get("_trades")
    if cached is None:
        cached = C.Trades(inputs, sol.sell, sol.buy)
        object.__setattr__(sol, "_trades", cached)
    return cached


def obeys_rules(constraints, inputs: AccountInputs, sol: Solution) -> bool:
    """Whether ``sol`` keeps every non-convex rule among ``constraints``, as each rule
    judges it (``Constraint.violations``)."""
    done = trades(inputs, sol)
    return not any(c.violations(done).any() for c in constraints if c.nonconvex)


class Search:
    """Solves candidates for one account, counting passes and time, and remembering the
    best solution that obeys every non-convex rule."""

    def __init__(self, template: Template):
        self.template = template
        self.chain = solvers.chain(template)
        self.rules = tuple(c for c in template.constraints if c.nonconvex)
        self.passes = 0
        self.ms = 0.0
        self.valid: tuple[AccountInputs, Solution] | None = None
        self.relaxed: tuple = ()  # constraints left out of every solve (see solve_account)
        self._seen: dict[tuple, Solution] = {}
        self.tax_weight = template.objective.weight_of(Tax)
        self.preset_regime: int | None = None  # set by the search from the relaxation

    def run(self, candidate: AccountInputs, across_edge: bool = True) -> Solution:
        """``candidate`` solved (once: the same restrictions again give the same answer)
        and ranked by the exact objective. A candidate in the regime taken from the
        relaxation whose plan is infeasible there or pinned to its edge is solved with the
        convex model too, and the better answer returned, unless ``across_edge`` is false."""
        key = (
            self.relaxed,
            candidate.tax_regime,
            *(
                None if x is None else x.tobytes()
                for x in (candidate.direction, candidate.wash_direction, candidate.min_trade)
            ),
        )
        if key in self._seen:  # the same restrictions again: the same answer, no solve
            return self._seen[key]
        # A netting regime the candidate cannot reach is an expected outcome, which
        # LotQP reports as not converging: no other solver is asked to confirm it, and
        # the search moves on without the regime.
        solved = self.chain.solve(
            candidate, skip=self.relaxed, fallback=candidate.tax_regime is None
        )
        sol = self.exact(candidate, solved)
        self._seen[key] = sol
        self.passes += 1
        self.ms += sol.solve_ms
        better = self.valid is None or sol.objective < self.valid[1].objective - 1e-12
        if sol.ok and better and self.obeyed(candidate, sol):
            self.valid = (candidate, sol)
        if across_edge and self._at_preset_edge(candidate, sol):
            # The candidate's restrictions push its plan to (or past) the edge of the
            # regime taken from the relaxation: solve it with the convex tax model too,
            # and go on from the better plan.
            other = self.run(candidate.with_state(tax_regime=None))
            if other.ok and (not sol.ok or other.objective < sol.objective):
                sol = self._seen[key] = other
        return sol

    def _at_preset_edge(self, inputs: AccountInputs, sol: Solution) -> bool:
        """Whether ``sol`` was solved in the regime the search took from the relaxation
        and is infeasible there or sits on its boundary."""
        if self.preset_regime is None or inputs.tax_regime != self.preset_regime:
            return False
        return not sol.ok or bool(plan_regimes(inputs, sol.sell, REGIME_TOLERANCE)[1])

    def exact(self, inputs: AccountInputs, sol: Solution) -> Solution:
        return with_exact_tax(self.tax_weight, inputs, sol)

    def obeyed(self, inputs: AccountInputs, sol: Solution) -> bool:
        """Whether ``sol`` keeps every non-convex rule of the template."""
        return obeys_rules(self.rules, inputs, sol)

    def best(self, candidates: list[AccountInputs]) -> tuple[AccountInputs, Solution] | None:
        found = []
        for k, c in enumerate(candidates):
            sol = self.run(c)
            if sol.ok:
                found.append((sol.objective, k, c, sol))
        if not found:
            return None
        _, _, c, sol = min(found, key=lambda f: (f[0], f[1]))
        return c, sol


def zeros(inputs: AccountInputs, attr: str) -> np.ndarray:
    value = getattr(inputs, attr)
    return np.zeros(len(inputs.symbols), dtype=int) if value is None else value.copy()


def members(codes: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Which entries of ``codes`` (small non-negative ints) are among ``chosen``."""
    flag = np.zeros(int(codes.max()) + 1 if len(codes) else 0, dtype=bool)
    flag[chosen] = True
    return flag[codes]


def trade_states(inputs: AccountInputs, sol: Solution) -> np.ndarray:
    """Each security's trade in ``sol`` as a state: 1 buys, -1 sells, 2 does not trade."""
    done = trades(inputs, sol)
    eps = TRADE_EPS
    return np.where(sol.buy > eps, 1, np.where(done.sales > eps, -1, 2))


def fixed_states(inputs: AccountInputs, state: np.ndarray) -> AccountInputs:
    """A candidate with every security's trade fixed to ``state`` (1 buy at least the
    minimum, -1 sell at least the minimum, 2 no trade): a wash group with a buy sells no
    loss lot, one with a sale buys nothing. One convex program."""
    groups = inputs.group_codes
    count = int(groups.max()) + 1 if len(groups) else 0
    buys = np.bincount(groups, weights=state == 1, minlength=count) > 0
    sells = np.bincount(groups, weights=state == -1, minlength=count) > 0
    wash = np.where(buys[groups], 1, np.where(sells[groups], -1, 0))
    return inputs.with_state(
        direction=np.where(state == 2, 0, state), wash_direction=wash, min_trade=state
    )


def below_minimum(done: C.Trades) -> np.ndarray:
    """Securities whose trade the minimum-trade search forces up or drops: those short of
    their minimum by more than a pinned solve's round-off."""
    return C.MinimumTrade.below_minimum(done.inputs, done, C.MinimumTrade.EXACT)


def wash_conflicts(inputs: AccountInputs, sol: Solution) -> np.ndarray:
    """Wash groups (indices into the sorted group names) that buy and sell at a loss."""
    return np.flatnonzero(WASH.violations(trades(inputs, sol)))
