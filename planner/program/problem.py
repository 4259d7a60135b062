"""The rebalance program of one model, compiled once and re-solved per account.

Variables (fractions of the account value ``V``): ``sell`` per lot slot, ``buy`` per security,
and the post-trade security weights ``weights = hold - S sell + buy`` (``S`` sums lot slots
into securities; keeping ``weights`` as a variable keeps the covariance factor from
multiplying ``S`` into a dense block). Post-trade cash is
``cash + flow + sum(sell) - sum(buy) - costs``.

Every account-specific number is a cvxpy Parameter vector, so the problem is DPP: it is
canonicalised once per template and each account only feeds new vectors. The constraints
and objective terms write those vectors (``Template.values``); LotQP (:mod:`planner.solvers.lotqp`)
solves the program from them directly, PIQP from cvxpy's canonicalisation updated in place,
and the other solvers through cvxpy. Lots are padded to a fixed number of slots per security
so that all accounts of a model share one template.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from constraints.base import AccountInputs, Constraint, Context
from planner.program.objective import Objective, is_conic
from planner.program.risk import RiskModel
from planner.solvers import lotqp
from planner.solvers.piqp import FastPIQP

DEFAULT_SOLVERS: tuple[str, ...] = (lotqp.NAME, "PIQP", "CLARABEL")
"""Solvers tried in order: LotQP (the structured interior-point method of
:mod:`planner.solvers.lotqp`) is fastest on these programs; PIQP takes what it does not solve (a
template it does not support, an account it does not converge on, infeasibility to
confirm); Clarabel is the last resort and solves the conic (market-impact) programs."""

SOLVER_OPTIONS: dict[str, dict] = {
    # Tighter than the defaults: trades are read to 1e-6 of account value, so the solver's
    # own tolerances must sit well below that.
    "PIQP": {
        "eps_abs": 1e-9,
        "eps_rel": 1e-9,
        "eps_duality_gap_abs": 1e-10,
        "eps_duality_gap_rel": 1e-10,
    },
    "CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
    "OSQP": {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iter": 20000},
}

_OK = {cp.OPTIMAL}
_INFEASIBLE = {cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE}


@dataclass(frozen=True)
class Solution:
    """A continuous solution of one solve: fractions of V per lot slot and security."""

    status: str
    solver: str
    sell: np.ndarray
    buy: np.ndarray
    objective: float
    solve_ms: float

    @property
    def ok(self) -> bool:
        return self.status == "optimal"

    @property
    def infeasible(self) -> bool:
        return self.status == "infeasible"


NOISE = 1e-7
"""Trades below this fraction of account value are solver round-off, read as zero."""


def _clean(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return np.where(x > NOISE, x, 0.0)


class Template:
    """The compiled program for one universe of securities and one lot-slot count."""

    def __init__(
        self,
        symbols: Sequence[str],
        asset_classes: Sequence[str],
        slots: int,
        risk: RiskModel,
        objective: Objective,
        constraints: Sequence[Constraint],
        solvers: Sequence[str] = DEFAULT_SOLVERS,
        fast: bool = True,
        dense_risk: bool = True,
    ):
        self.symbols = tuple(symbols)
        self.asset_classes = tuple(asset_classes)
        self.slots = int(slots)
        self.risk = risk.subset(self.symbols)
        self.objective = objective
        self.constraints = tuple(constraints)
        conic = is_conic(objective)
        # A non-quadratic term (market impact) needs a conic solver; LotQP and PIQP cannot
        # take it.
        self.solvers = tuple(solvers)
        if conic:
            quadratic = ("PIQP", lotqp.NAME)
            self.solvers = tuple(s for s in solvers if s not in quadratic) or ("CLARABEL",)
        self.fast = fast and not conic
        self._fast_qp = None
        self._lotqp: lotqp.LotQP | None = None
        n = len(self.symbols)
        m = n * self.slots
        classes = tuple(sorted(set(self.asset_classes)))
        lot_to_security = sp.kron(sp.eye(n), np.ones((1, self.slots))).tocsr()
        class_index = {c: k for k, c in enumerate(classes)}
        security_to_class = sp.csr_matrix(
            (np.ones(n), ([class_index[c] for c in self.asset_classes], np.arange(n))),
            shape=(len(classes), n),
        )
        sell = cp.Variable(m, name="sell")
        buy = cp.Variable(n, name="buy")
        weights = cp.Variable(n, name="weights")
        sales = cp.Variable(n, name="sales")
        ctx = Context(
            n=n,
            slots=self.slots,
            classes=classes,
            sell=sell,
            buy=buy,
            weights=weights,
            cash=None,  # set below, once the parameters exist
            lot_to_security=lot_to_security,
            security_to_class=security_to_class,
            sales=sales,
            # Clarabel, for the conic (market impact) programs, is more accurate on the
            # factor form too.
            dense_risk=dense_risk and not conic,
        )
        hold = ctx.param("hold", n, 0.0)
        cash0 = ctx.param("cash0", None, 0.0)
        cost = ctx.param("cost_per_dollar", n, 0.0)
        ctx.cash = cash0 + cp.sum(sales) - cp.sum(buy) - cost @ (sales + buy)
        rows = [sales == lot_to_security @ sell, weights == hold - sales + buy]
        self.labels: list[tuple[Constraint, int]] = []
        for c in self.constraints:
            cons = c.rows(ctx)
            rows.extend(cons)
            self.labels.append((c, len(cons)))
        goal = objective.expr(ctx, self.risk)
        rows.extend(ctx.extra_rows)
        self.problem = cp.Problem(cp.Minimize(goal), rows)
        self._search_constraints = tuple(c for c in self.constraints if c.search_state)
        self._base_key = None
        self.ctx = ctx
        self.n, self.m = n, m

    @property
    def classes(self) -> tuple[str, ...]:
        return self.ctx.classes

    def values(self, inputs: AccountInputs, skip: Iterable[Constraint] = ()) -> dict:
        """Parameter values for ``inputs``: slack defaults (padding lot slots capped at 0,
        whatever is relaxed), then every constraint not in ``skip`` and every objective
        term writes its own.

        The part that does not depend on the solve loop's state is kept for the last
        account seen, so each further pass only re-applies the search-state constraints.
        """
        skip = frozenset(skip)
        key = (inputs.account_id, id(inputs.lot_shares), id(inputs.hold_weight), skip)
        if self._base_key != key:
            base = {k: v.copy() for k, v in self.ctx.defaults.items()}
            # A padding slot holds nothing: no relaxation may sell it.
            base["sell_cap"] = np.where(inputs.lot_real, base["sell_cap"], 0.0)
            base["hold"] = inputs.hold_weight
            base["cash0"] = np.asarray(inputs.cash_weight)
            base["cost_per_dollar"] = inputs.cost_per_dollar
            for c in self.constraints:
                if c not in skip and not c.search_state:
                    c.apply(inputs, base)
            self.objective.apply(inputs, base, self.risk)
            # The key holds array ids: keep the arrays alive so the ids are not reused.
            self._base_key, self._base, self._base_arrays = (
                key,
                base,
                (inputs.lot_shares, inputs.hold_weight),
            )
        values = dict(self._base)
        for c in self._search_constraints:
            if c not in skip:
                c.apply(inputs, values)
        return values

    def sellable(self, inputs: AccountInputs) -> np.ndarray:
        """Lot slots the account's rules let it sell at all (held, not restricted, not
        wash-blocked, not held for long-term treatment); the solve loop's own search state
        (directions, minimum-trade choices) is left out."""
        rules = inputs.with_state(direction=None, wash_direction=None, min_trade=None)
        return inputs.lot_real & (self.values(rules)["sell_cap"] > 0)

    def solve(
        self,
        inputs: AccountInputs,
        skip: Iterable[Constraint] = (),
        solvers=None,
        confirm: bool = True,
    ) -> Solution:
        """Solve for one account; try each solver in turn until one is optimal. An
        infeasible verdict is confirmed by the next solver unless ``confirm`` is False
        (the many trial solves that explain an infeasible account)."""
        values = self.values(inputs, skip)
        solvers = tuple(solvers or self.solvers)
        last = None
        values_set = False
        for k, solver in enumerate(solvers):
            if solver == lotqp.NAME:
                if not (self.fast and self.lotqp_supported):
                    continue
                sol = self._solve_lotqp(values)
                # LotQP reports infeasible only for inconsistent bounds: certain.
                if sol.ok or sol.infeasible:
                    return sol
                last = sol
                continue
            if solver == "PIQP" and self.fast:
                sol = self._solve_fast(values)
                if sol.ok or (sol.infeasible and (not confirm or k == len(solvers) - 1)):
                    return sol
                last = sol
                continue
            if not values_set:
                # Setting cvxpy parameters validates every value: only done off the fast path.
                for name, value in values.items():
                    self.ctx.params[name].value = value
                values_set = True
            start = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.problem.solve(
                        solver=solver, warm_start=True, **SOLVER_OPTIONS.get(solver, {})
                    )
                status = self.problem.status
            except cp.error.SolverError:
                status = "solver_error"
            ms = (time.perf_counter() - start) * 1e3
            if status in _OK:
                return Solution(
                    "optimal",
                    solver,
                    _clean(self.ctx.sell.value),
                    _clean(self.ctx.buy.value),
                    float(self.problem.value),
                    ms,
                )
            last = Solution(
                "infeasible" if status in _INFEASIBLE else str(status),
                solver,
                np.zeros(self.m),
                np.zeros(self.n),
                float("nan"),
                ms,
            )
            if status in _INFEASIBLE and confirm and k < len(solvers) - 1:
                # Confirm infeasibility with the next solver before believing it.
                continue
            if status in _INFEASIBLE:
                return last
        return last

    @functools.cached_property
    def lotqp_supported(self) -> bool:
        """Whether LotQP knows every constraint and objective term of this template."""
        return lotqp.supports(self)

    def _solve_lotqp(self, values: dict[str, np.ndarray]) -> Solution:
        if self._lotqp is None:
            self._lotqp = lotqp.LotQP(self)
        status, sell, buy, objective, ms = self._lotqp.solve(values, base=self._base)
        if status != "optimal":
            return Solution(status, lotqp.NAME, np.zeros(self.m), np.zeros(self.n), objective, ms)
        return Solution("optimal", lotqp.NAME, _clean(sell), _clean(buy), objective, ms)

    def _solve_fast(self, values: dict[str, np.ndarray]) -> Solution:
        """PIQP through :class:`~planner.solvers.piqp.FastPIQP` (set up once, then updated)."""
        if self._fast_qp is None:
            for name, value in values.items():
                self.ctx.params[name].value = value
            self._fast_qp = FastPIQP(self.problem, SOLVER_OPTIONS["PIQP"])
        result = self._fast_qp.solve(values)
        if result.status != "optimal":
            return Solution(
                result.status,
                "PIQP",
                np.zeros(self.m),
                np.zeros(self.n),
                float("nan"),
                result.solve_ms,
            )
        x = result.x
        return Solution(
            "optimal",
            "PIQP",
            _clean(x[self._fast_qp.columns(self.ctx.sell)]),
            _clean(x[self._fast_qp.columns(self.ctx.buy)]),
            result.objective,
            result.solve_ms,
        )

    def explain_infeasible(self, inputs: AccountInputs) -> list[str]:
        """Labels of the constraints behind an infeasible account.

        First every constraint whose relaxation alone makes the account feasible; if none
        does, a minimal set found by a deletion filter (relax them all, then restore each
        one that is not needed). The lot bounds and no-shorting rows describe what the
        account holds, so they are never blamed.
        """
        candidates = [
            c
            for c, _ in self.labels
            if c.active(inputs) and type(c).__name__ not in ("NoShorting", "LotBounds")
        ]
        singles = [c for c in candidates if self.solve(inputs, skip=(c,), confirm=False).ok]
        if singles:
            return [c.describe(inputs) for c in singles]
        relaxed = list(candidates)
        if not relaxed or not self.solve(inputs, skip=relaxed, confirm=False).ok:
            return []
        for c in candidates:
            trial = [r for r in relaxed if r is not c]
            if self.solve(inputs, skip=trial, confirm=False).ok:
                relaxed = trial
        return [c.describe(inputs) for c in relaxed]
