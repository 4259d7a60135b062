"""LotQP: the rebalance program of a template solved by a structured interior-point method.

A general sparse QP solver sees the program of :mod:`planner.program.problem` as some 700 variables
and 1,400 rows (50 securities x 10 lots) and factorises its KKT matrix 18 times per solve.
Its structure is much simpler: lots hang off their security, every row but a handful is a
bound or a row on the security weights, and the only dense coupling is the covariance. The
kernel (:mod:`planner.solvers.lotqp_kernel`) exploits exactly that, so each interior-point step
costs one ``n x n`` Cholesky (or a factor-sized Woodbury solve) plus work linear in the
lots.

This module reads the same parameter values the cvxpy template uses (``Template.values``)
and writes the same program for the kernel (its arguments, :class:`KernelProblem`); it is
not a second model of the constraints, and :meth:`LotQP.supports` refuses any template with
a constraint or objective term it does not know, which then goes to PIQP. Tests check it
against cvxpy's own solve.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from typing import ClassVar, NamedTuple

import numpy as np

import constraints as C
from constraints.base import BIG
from planner.program.inputs import lot_security_of
from planner.program.objective import PP2, Tax, TrackingError, TransactionCost
from planner.solvers import lotqp_kernel as kernel
from planner.solvers.base import Solution, clean, failed

TOLERANCE = 1e-9
"""Primal and dual residuals (fractions of V) at which a solve counts as converged."""
GAP_TOLERANCE = 1e-10
"""Complementarity gap (fractions of V) at which a solve counts as converged. The kernel
then puts every variable whose slack is far below its dual on that bound
(``lotqp_kernel.SNAP``), so that a trade the optimum does not make is 0 rather than dust the
minimum-trade search would have to remove."""
MAX_ITERATIONS = 80
DENSE_MAX = 150
"""Free securities up to which each step factorises a dense ``n x n`` matrix; above, a
factor risk model is solved by Woodbury's identity."""

KNOWN_CONSTRAINTS = (
    C.NoShorting,
    C.LotBounds,
    C.CashFloor,
    C.ClassBands,
    C.Restricted,
    C.DoNotBuy,
    C.DoNotSell,
    C.DoNotTrade,
    C.LegacyHoldings,
    C.CashFlowMode,
    C.WashSaleLookback,
    C.WashSaleOneDirection,
    C.TradeDirection,
    C.GainBudget,
    C.ShortTermGainCap,
    C.HoldNearLongTerm,
    C.HarvestLimit,
    C.TurnoverCap,
    C.WeightLimits,
    C.MinimumTrade,
    C.WholeShares,
)
_TERMS = (TrackingError, TransactionCost, Tax)
_SLACK = BIG / 2
"""A row bound at or beyond this (fractions of V) is a slack default: the row is left out."""


class KernelProblem(NamedTuple):
    """The arguments of ``lotqp_kernel.solve``, in its order (see that module's doc for the
    program): the box and objective of ``y = (lot sales, buys)``, the risk model, the goal,
    the class and weight bounds, the security rows, the lot rows and the tolerances."""

    slots: int
    lo: np.ndarray
    up: np.ndarray
    linear: np.ndarray
    has_z: bool
    z_weight: float
    use_dense: bool
    q_dense: np.ndarray
    q_x: np.ndarray
    q_d: np.ndarray
    q_lin: np.ndarray
    hold: np.ndarray
    klass: np.ndarray
    class_lo: np.ndarray
    class_hi: np.ndarray
    w_lo: np.ndarray
    w_hi: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    sec_rhs: np.ndarray
    g: np.ndarray
    gz: np.ndarray
    lot_rhs: np.ndarray
    tolerance: float
    gap_tolerance: float
    max_iterations: int


@functools.cache
def load_kernel() -> None:
    """Compile the kernel, or load it from numba's cache (once per process): a run's set-up
    cost, kept out of the first account's solve time."""
    y, two = np.zeros(4), np.zeros(2)
    no_rows = np.zeros((0, 2))
    kernel.solve(
        *KernelProblem(
            1,
            y,
            np.ones(4),
            y,
            False,
            0.0,
            True,
            np.eye(2),
            no_rows,
            two,
            two,
            np.full(2, 0.5),
            np.zeros(2, dtype=np.int64),
            np.zeros(0),
            np.zeros(0),
            np.full(2, -np.inf),
            np.full(2, np.inf),
            no_rows,
            no_rows,
            np.zeros(0),
            np.zeros((0, 4)),
            np.zeros(0),
            np.zeros(0),
            TOLERANCE,
            GAP_TOLERANCE,
            5,
        )  # fmt: skip
    )


class LotQP:
    """One template's program for the structured kernel; :meth:`solve` per pass."""

    name: ClassVar[str] = "LOTQP"
    infeasible_is_certain: ClassVar[bool] = True
    """It reports infeasible only for inconsistent bounds."""

    @classmethod
    def supports(cls, template) -> bool:
        """Whether LotQP can solve ``template``'s program: only the constraints and the
        quadratic objective terms it knows (no market impact, no custom term)."""
        if any(type(c) not in KNOWN_CONSTRAINTS for c in template.constraints):
            return False
        return all(type(t) in _TERMS for _, t in template.objective.terms)

    def __init__(self, template):
        if not self.supports(template):
            raise ValueError("template has constraints or terms LotQP does not know")
        load_kernel()
        self.template = template
        weights: dict[type, float] = defaultdict(float)
        for w, t in template.objective.terms:
            weights[type(t)] += float(w)
        self.te_weight = weights[TrackingError]
        self.cost_weight = weights[TransactionCost]
        self.tax_weight = weights[Tax]
        ctx = template.ctx
        self.n, self.slots = ctx.n, ctx.slots
        self.m = self.n * self.slots
        self.lot_security = lot_security_of(self.n, self.slots)
        klass = np.full(self.n, -1, dtype=np.int64)
        membership = ctx.security_to_class.tocoo()
        klass[membership.col] = membership.row
        self.klass = klass
        self.n_class = len(ctx.classes)
        risk = template.risk
        scale = 2.0 * self.te_weight / PP2
        # Q = 2 w_TE S / PP2 with S = X'X + diag(d).
        self.q_x = np.ascontiguousarray(risk.exposures * np.sqrt(max(scale, 0.0)))
        self.q_d = np.ascontiguousarray(risk.specific_variance * scale)
        self.use_dense = self.n <= DENSE_MAX
        self.q_dense = (
            np.ascontiguousarray(self.q_x.T @ self.q_x + np.diag(self.q_d))
            if self.use_dense
            else np.zeros((0, 0))
        )
        self.goal_form = "dense" if "goal_covariance" in ctx.params else "factor"
        self.has_min_trade = any(isinstance(c, C.MinimumTrade) for c in template.constraints)
        self.exposures = risk.exposures
        self.last_iterations = 0
        self.kernel_ms_total = 0.0  # the kernel alone, over every solve so far
        self._static_key = None
        self._static: dict = {}

    def _q_lin(self, values) -> np.ndarray:
        """The linear term of the tracking error in ``w``: ``-2 w_TE S g / PP2``."""
        if self.te_weight == 0.0:
            return np.zeros(self.n)
        if self.goal_form == "dense":
            return -2.0 * self.te_weight * np.asarray(values["goal_covariance"], dtype=float)
        goal_factors = np.asarray(values["goal_factors"], dtype=float)
        specific = np.asarray(values.get("goal_specific", np.zeros(self.n)), dtype=float)
        # goal_factors = (X / sqrt(PP2)) g, goal_specific = d g / PP2.
        linear = self.exposures.T @ goal_factors / np.sqrt(PP2) + specific
        return -2.0 * self.te_weight * linear

    def problem(self, values) -> KernelProblem:
        """The kernel's arguments for parameter ``values``. What does not depend on the
        search state is built once per ``values.static_key`` (one account's passes share
        it, see ``Template.values``)."""
        key = getattr(values, "static_key", None)
        if key is None or self._static_key != key:
            self._static = self._static_args(values)
            self._static_key = key
        st = self._static
        n, m = self.n, self.m
        # y = (lot sales, buys); the search state moves caps and floors only.
        lo = np.zeros(m + n)
        if self.has_min_trade:
            lo[m:] = np.maximum(values["buy_floor"], 0.0)
        up = np.concatenate([values["sell_cap"], values["buy_cap"]])
        alpha, beta, sec_rhs = st["alpha"], st["beta"], st["sec_rhs"]
        if self.has_min_trade:
            sell_floor = np.asarray(values["sell_floor"], dtype=float)
            floors = np.flatnonzero(sell_floor > 0)
            if len(floors):  # -s_i <= -floor_i
                rows = np.zeros((len(floors), n))
                rows[np.arange(len(floors)), floors] = -1.0
                alpha = np.vstack([alpha, rows])
                beta = np.vstack([beta, np.zeros_like(rows)])
                sec_rhs = np.concatenate([sec_rhs, -sell_floor[floors]])
        return KernelProblem(
            self.slots,
            lo,
            up,
            st["linear"],
            st["has_z"],
            float(self.tax_weight),
            self.use_dense,
            self.q_dense,
            self.q_x,
            self.q_d,
            st["q_lin"],
            st["hold"],
            self.klass,
            st["class_lo"],
            st["class_hi"],
            st["w_lo"],
            st["w_hi"],
            alpha,
            beta,
            sec_rhs,
            st["g"],
            st["gz"],
            st["lot_rhs"],
            TOLERANCE,
            GAP_TOLERANCE,
            MAX_ITERATIONS,
        )

    def _static_args(self, values) -> dict:
        """The kernel's arguments that the search state leaves alone."""
        n, m = self.n, self.m
        cost = np.asarray(values["cost_per_dollar"], dtype=float)
        # Terms the objective does not have leave their parameters out.
        tax_coef = np.asarray(values.get("tax_coef", np.zeros(m)), dtype=float)
        lot_cost = cost[self.lot_security]
        linear = np.concatenate(
            [self.cost_weight * lot_cost + self.tax_weight * tax_coef, self.cost_weight * cost]
        )
        cash0 = float(values["cash0"])
        keep = float(values.get("carry_keep", 0.0))
        has_z = keep > 0.0 and self.tax_weight > 0.0

        class_lo = np.array(values.get("class_lower", np.full(self.n_class, -BIG)), dtype=float)
        class_hi = np.array(values.get("class_upper", np.full(self.n_class, BIG)), dtype=float)
        class_lo[class_lo <= -_SLACK] = -np.inf
        class_hi[class_hi >= _SLACK] = np.inf
        w_lo = np.array(values.get("weight_lower", np.full(n, -BIG)), dtype=float)
        w_hi = np.array(values.get("weight_upper", np.full(n, BIG)), dtype=float)
        w_lo[w_lo <= -_SLACK] = -np.inf
        w_hi[w_hi >= _SLACK] = np.inf

        # Security rows  alpha's + beta'b <= rhs (s: sales per security), with cash
        # = cash0 + (1 - k)'s - (1 + k)'b; lot rows  g'y + gz z <= rhs.
        alpha, beta, sec_rhs = [], [], []
        floor = float(values.get("cash_floor", -BIG))
        if floor > -_SLACK:  # cash >= floor
            alpha.append(-(1.0 - cost))
            beta.append(1.0 + cost)
            sec_rhs.append(cash0 - floor)
        ceiling = float(values.get("cash_upper", BIG))
        if ceiling < _SLACK:  # cash <= ceiling
            alpha.append(1.0 - cost)
            beta.append(-(1.0 + cost))
            sec_rhs.append(ceiling - cash0)
        turnover = float(values.get("turnover_cap", BIG))
        if turnover < _SLACK:
            alpha.append(np.ones(n))
            beta.append(np.ones(n))
            sec_rhs.append(turnover)
        rows, lot_rhs = [], []
        for coef_name, cap_name in (("gain_coef", "gain_cap"), ("st_gain_coef", "st_gain_cap")):
            cap = float(values.get(cap_name, BIG))
            if cap < _SLACK:
                rows.append(np.concatenate([values[coef_name], np.zeros(n)]))
                lot_rhs.append(cap)
        for row, rhs in self._regime_rows(values):
            rows.append(np.concatenate([row, np.zeros(n)]))
            lot_rhs.append(rhs)
        gz = np.zeros(len(rows) + has_z)
        if has_z:  # the carry row: -keep * tax(x) - z <= keep_offset
            rows.append(np.concatenate([-keep * tax_coef, np.zeros(n)]))
            lot_rhs.append(float(values["carry_keep_offset"]))
            gz[-1] = -1.0
        r_s = len(sec_rhs)
        return {
            "linear": linear,
            "has_z": has_z,
            "q_lin": np.ascontiguousarray(self._q_lin(values)),
            "hold": np.ascontiguousarray(values["hold"], dtype=float),
            "class_lo": class_lo,
            "class_hi": class_hi,
            "w_lo": w_lo,
            "w_hi": w_hi,
            "alpha": np.array(alpha, dtype=float).reshape(r_s, n),
            "beta": np.array(beta, dtype=float).reshape(r_s, n),
            "sec_rhs": np.asarray(sec_rhs, dtype=float),
            "g": np.array(rows, dtype=float).reshape(len(lot_rhs), m + n),
            "gz": gz,
            "lot_rhs": np.asarray(lot_rhs, dtype=float),
        }

    def _regime_rows(self, values) -> list[tuple[np.ndarray, float]]:
        """The tax regime's bounds (``objective.regime_bounds``) as rows ``coef' x <= rhs``
        over the lot sales: ``-gain <= -low`` and ``gain <= high`` for the short-term,
        long-term and total gain, each bound that is not a slack default."""
        st = np.asarray(values.get("st_gain_frac", np.zeros(self.m)), dtype=float)
        lt = np.asarray(values.get("lt_gain_frac", np.zeros(self.m)), dtype=float)
        out = []
        for name, coef in (("st", st), ("lt", lt), ("sum", st + lt)):
            low = float(values.get(f"regime_{name}_low", -BIG))
            high = float(values.get(f"regime_{name}_high", BIG))
            if low > -_SLACK:
                out.append((-coef, -low))
            if high < _SLACK:
                out.append((coef, high))
        return out

    def solve(self, values) -> Solution:
        """The optimum, ``infeasible`` (only for inconsistent bounds) or ``not_converged``
        (for the next solver to answer)."""
        start = time.perf_counter()
        problem = self.problem(values)
        kernel_start = time.perf_counter()
        status, y, z, iterations = kernel.solve(*problem)
        self.kernel_ms_total += (time.perf_counter() - kernel_start) * 1e3
        self.last_iterations = int(iterations)
        ms = (time.perf_counter() - start) * 1e3
        if status == kernel.OPTIMAL:
            objective = self.objective(values, problem, y)
            return Solution(
                "optimal", self.name, clean(y[: self.m]), clean(y[self.m :]), objective, ms
            )
        status = "infeasible" if status == kernel.INFEASIBLE else "not_converged"
        return failed(status, self.name, self.template, ms)

    def objective(self, values, problem: KernelProblem, y: np.ndarray) -> float:
        """The template's objective at ``y``, as cvxpy would report it: the carry term is
        taken exactly there (``max(0, carry activity - offset)``), not from the kernel's
        slack, which bounds it."""
        z = 0.0
        carry = np.flatnonzero(problem.gz)
        if len(carry):
            z = max(0.0, float(problem.g[carry[0]] @ y - problem.lot_rhs[carry[0]]))
        x, b = y[: self.m], y[self.m :]
        w = problem.hold - np.bincount(self.lot_security, weights=x, minlength=self.n) + b
        if self.use_dense:
            quadratic = w @ self.q_dense @ w
        else:
            fw = self.q_x @ w
            quadratic = fw @ fw + self.q_d @ (w * w)
        constant = self.te_weight * float(values.get("goal_variance", 0.0))
        return float(
            0.5 * quadratic
            + problem.q_lin @ w
            + problem.linear @ y
            + self.tax_weight * z
            + constant
        )
