"""Exact mode: the non-convex trade rules as a mixed-integer program (SCIP via pyscipopt).

Each non-convex constraint of the template gives its own mixed-integer rows
(``Constraint.mixed_integer_rows``) over shared binaries (``constraints.Switches``): per
security whether it is bought and whether it is sold, per wash group whether it buys. The
tracking-error term makes it a mixed-integer SOCP, which SCIP solves; HiGHS cannot (no
MIQP). The tax is exact: a binary per netting regime (:func:`regime_rows`) in place of the
convex tax model. Whole shares stay with the repair pass of :mod:`planner.rounding`, as in the
heuristic mode, so the two are compared on the same continuous objective. Meant for small
books and for measuring the heuristic's gap.

A run in exact mode (:func:`exact_mode`) also runs the heuristic, and keeps the heuristic's
plan, with a note saying why, wherever SCIP proves nothing: an error (LP errors, a cvxpy
``SolverError``), its time limit (:data:`TIME_LIMIT_S`), any status but optimal, or an
optimum worse than the heuristic's plan (which only SCIP's tolerances can cause). Objective
values in the notes are fractions of account value, as the program's objective is.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import cvxpy as cp
import numpy as np
from cvxpy.reductions.solvers.conic_solvers import scip_conif
from cvxpy.settings import OFFSET

from constraints.base import AccountInputs, Switches
from planner.errors import InfeasibleError, MissingExtraError, RuleViolationError
from planner.program.objective import Tax, gain_fracs, regime_pieces
from planner.program.problem import Template
from planner.search import solve_account
from planner.search_state import SolveReport
from planner.solvers import Solution

TIME_LIMIT_S = 60.0
"""SCIP's time limit per account, in seconds (``PlanOptions.exact_time_limit`` overrides
it). An account SCIP has not proved optimal by then keeps the heuristic's plan."""
GAP_LIMIT = 1e-9
"""SCIP's relative gap limit (``limits/gap``): within it a solve counts as optimal."""
ABS_GAP_LIMIT = 1e-7
"""SCIP's absolute gap limit (``limits/absgap``), a fraction of account value ($0.10 on
$1M): the objectives are near zero, so the relative limit alone asked for more than SCIP's
own tolerances and ran 5 demo accounts into the time limit within $0.04 of the bound."""
SCIP_PARAMS = {"limits/gap": GAP_LIMIT, "limits/absgap": ABS_GAP_LIMIT}
"""SCIP's parameters in exact mode, besides its time limit."""
WORSE_BY = 1e-7
"""Objective (fraction of account value: $0.10 on $1M) by which SCIP's optimum may exceed
the heuristic's plan and still be kept: that much is SCIP's feasibility tolerance, not a
worse plan. Beyond it the heuristic's plan is kept."""
NOTE = "exact solve: "
"""The start of exact mode's note on an account SCIP did not plan (the CLI counts them)."""
PROVEN = ("optimal", "gaplimit")
"""SCIP's statuses that prove its plan optimal (within :data:`GAP_LIMIT` or
:data:`ABS_GAP_LIMIT`)."""


def _require_scip() -> None:
    try:
        import pyscipopt  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError("exact mode (--exact)", "exact", "pyscipopt") from exc


def _factor_form(template: Template) -> Template:
    """The same program with the risk model in factor form: SCIP meets a dense quadratic
    objective only to its feasibility tolerance (about 1e-6), the factor form closely."""
    if not template.ctx.dense_risk:
        return template
    twin = getattr(template, "_exact_twin", None)
    if twin is None:
        twin = Template(
            template.symbols,
            template.asset_classes,
            template.slots,
            template.risk,
            template.objective,
            template.constraints,
            template.solvers,
            dense_risk=False,
        )
        template._exact_twin = twin
    return twin


@dataclass(frozen=True)
class ScipOutcome:
    """How one SCIP solve ended.

    ``status`` is SCIP's own (``optimal``, ``timelimit``, ``infeasible``, ``unknown``, ...)
    or ``error`` when building or solving the program raised (``error`` then has the
    exception); ``report`` holds SCIP's best plan, if it has one; ``bound`` is its best lower
    bound on the objective (fraction of account value), ``None`` when it proved none.
    """

    status: str
    report: SolveReport | None
    bound: float | None
    error: str | None
    time_limit: float
    ms: float

    @property
    def proven(self) -> bool:
        return self.report is not None and self.status in PROVEN

    def why(self) -> str:
        """What SCIP did, after "SCIP": its status, error, best bound and best plan."""
        if self.status == "infeasible":
            return "found the mixed-integer program infeasible"
        if self.status == "timelimit":
            what = f"stopped at its time limit of {self.time_limit:g} s"
        elif self.status == "error":
            what = "failed"
        elif self.error:
            what = f"failed with status {self.status}"
        else:
            what = f"stopped with status {self.status}"
        bound = "no bound" if self.bound is None else f"best bound {self.bound:.9g}"
        best = "no plan" if self.report is None else f"its best plan {self.objective:.9g}"
        details = [self.error] if self.error else []
        return f"{what} ({'; '.join([*details, f'{bound}, {best}'])})"

    @property
    def objective(self) -> float:
        return self.report.solution.objective if self.report else float("nan")


def solve_exact(
    template: Template, inputs: AccountInputs, time_limit: float = TIME_LIMIT_S
) -> SolveReport:
    """Solve one account to global optimality (within SCIP's gap tolerance); at the time
    limit, SCIP's best plan with a note. Raises :class:`InfeasibleError` when SCIP proves
    the program infeasible, cvxpy's ``SolverError`` when it ends without a plan."""
    _require_scip()
    outcome = _solve_scip(template, inputs, time_limit)
    if outcome.report is None:
        if outcome.status == "infeasible":
            raise InfeasibleError(inputs.account_id, [], "exact mode: mixed-integer infeasible")
        raise cp.error.SolverError(f"exact mode: SCIP {outcome.why()}")
    if outcome.proven:
        return outcome.report
    return _noted(outcome.report, f"{NOTE}SCIP {outcome.why()}")


def exact_mode(
    template: Template,
    inputs: AccountInputs,
    time_limit: float = TIME_LIMIT_S,
    max_min_trade_passes: int = 3,
    effort: str = "standard",
) -> SolveReport:
    """Exact mode's plan of one account: SCIP's proven optimum, or else the heuristic's
    plan (:func:`planner.search.solve_account`) with a note giving SCIP's status, best bound
    and the plan's gap to it. SCIP's best plan is kept only where the heuristic found none.
    ``passes`` and ``solve_ms`` count both. Raises the heuristic's error when neither plans."""
    _require_scip()
    try:
        heuristic, failure = solve_account(template, inputs, max_min_trade_passes, effort), None
    except (InfeasibleError, RuleViolationError) as exc:
        heuristic, failure = None, exc
    scip = _solve_scip(template, inputs, time_limit)
    if heuristic is None:
        if scip.report is None:
            raise failure
        if scip.proven:
            return scip.report
        return _noted(scip.report, f"{NOTE}SCIP {scip.why()}; kept, as the heuristic found none")
    passes, ms = heuristic.passes + 1, heuristic.solve_ms + scip.ms
    kept = heuristic.solution.objective
    if scip.proven:
        excess = scip.objective - kept
        if excess <= WORSE_BY:
            return replace(scip.report, passes=passes, solve_ms=ms)
        note = (
            f"{NOTE}SCIP's optimum {scip.objective:.9g} is worse than the heuristic's plan "
            f"{kept:.9g} by ${excess * inputs.value:,.2f}; the heuristic's plan is kept"
        )
    else:
        note = f"{NOTE}SCIP {scip.why()}; the heuristic's plan {kept:.9g} is kept"
        if scip.bound is not None:
            gap = max(kept - scip.bound, 0.0)
            scale = max(abs(kept), abs(scip.bound))
            relative = f", {gap / scale:.2g}" if scale > 0 else ""
            note += f" (gap ${gap * inputs.value:,.2f}{relative} of the objective)"
    return replace(_noted(heuristic, note), passes=passes, solve_ms=ms)


def _noted(report: SolveReport, note: str) -> SolveReport:
    return replace(report, notes=(note, *report.notes))


def _solve_scip(template: Template, inputs: AccountInputs, time_limit: float) -> ScipOutcome:
    """One SCIP solve of the account's mixed-integer program. Never raises for SCIP's sake:
    an error, a limit or an infeasible program is in the outcome."""
    template = _factor_form(template)
    inputs = inputs.with_state(direction=None, wash_direction=None, min_trade=None)
    values = template.values(inputs)
    tax_weight = template.objective.weight_of(Tax)
    exact_tax = inputs.taxable and tax_weight != 0
    if exact_tax:  # the convex tax model off: the regimes below take its place
        values["tax_coef"] = np.zeros(template.m)
        values["carry_keep"] = np.asarray(0.0)
        values["carry_keep_offset"] = np.asarray(0.0)
    for name, value in values.items():
        template.ctx.params[name].value = value
    ctx = template.ctx
    buy_cap = np.minimum(ctx.params["buy_cap"].value, 2.0)
    switches = Switches(ctx, inputs, buy_cap)
    # The yes/no switches of every trade, also read below to clear solver dust.
    buys, sells = switches.is_buy, switches.is_sell
    rules = [r for c in template.constraints for r in c.mixed_integer_rows(ctx, switches)]
    rows = switches.rows + rules
    objective = template.problem.objective.args[0]
    if exact_tax:
        tax_value, tax_rows = regime_rows(ctx, inputs)
        objective, rows = objective + tax_weight * tax_value, rows + tax_rows
    problem = cp.Problem(cp.Minimize(objective), template.problem.constraints + rows)
    params = {**SCIP_PARAMS, "limits/time": time_limit}
    start = time.perf_counter()
    status, bound, error, raised = "error", None, None, False
    with _scip_errors() as caught:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # Step by step rather than problem.solve: SCIP's own status and model (its
                # bound) are then at hand even when cvxpy raises SolverError on unpacking.
                data, chain, inverse = problem.get_problem_data(cp.SCIP)
                raw = chain.solve_via_data(problem, data, solver_opts={"scip_params": params})
                status = str(raw.get("scip_status", "unknown"))
                bound = _bound(raw.get("model"), inverse, status)
                problem.unpack_results(raw, chain, inverse)
        except Exception as exc:  # an LP error, a SolverError: the caller keeps another plan
            raised = True
            # Once SCIP has a status, cvxpy's SolverError says no more than the status.
            if status == "error" or not isinstance(exc, cp.error.SolverError):
                error = f"{type(exc).__name__}: {exc}"
    error = "; ".join([*caught, *([error] if error else [])]) or None
    ms = (time.perf_counter() - start) * 1e3
    # An error SCIP's interface only logged may leave a plan; its status then says whether
    # that plan is proven.
    if raised or problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        return ScipOutcome(status, None, bound, error, time_limit, ms)
    # Trades whose yes/no switch is off are zero by construction; the solver's tolerance
    # leaves dust of up to ~1e-6 of account value there, which would read as a trade.
    buy_on = np.asarray(buys.value, dtype=float) > 0.5
    sell_on = np.asarray(sells.value, dtype=float) > 0.5
    sell = np.maximum(np.asarray(ctx.sell.value, dtype=float), 0.0)
    sell = np.where(sell_on[inputs.lot_security] & (sell > 1e-9), sell, 0.0)
    buy = np.maximum(np.asarray(ctx.buy.value, dtype=float), 0.0)
    buy = np.where(buy_on & (buy > 1e-9), buy, 0.0)
    # The objective at SCIP's plan: cvxpy leaves problem.value NaN at the time limit.
    objective = float(problem.objective.value)
    solution = Solution("optimal", "SCIP", sell, buy, objective, ms)
    report = SolveReport(inputs, solution, 1, ms, ("exact mixed-integer solve",))
    return ScipOutcome(status, report, bound, error, time_limit, ms)


def regime_rows(ctx, inputs: AccountInputs) -> tuple[cp.Variable, list]:
    """The exact tax (:meth:`planner.program.objective.Tax.exact`, fractions of V) as a
    variable with mixed-integer rows: one binary per netting regime
    (:mod:`planner.tax.regimes`), exactly one on; the plan's short-term, long-term and
    total gain within the chosen regime's bounds, and the tax at least that regime's linear
    tax. Big-M constants come from what selling every lot could realise."""
    st_frac, lt_frac = gain_fracs(inputs)
    held = inputs.lot_value_weight
    st = st_frac @ ctx.sell
    lt = lt_frac @ ctx.sell
    # The range of each gain over every plan, and a big M that relaxes any row over it.
    ranges = {
        "st": (st, float(np.minimum(st_frac, 0) @ held), float(np.maximum(st_frac, 0) @ held)),
        "lt": (lt, float(np.minimum(lt_frac, 0) @ held), float(np.maximum(lt_frac, 0) @ held)),
    }
    ranges["sum"] = (st + lt, ranges["st"][1] + ranges["lt"][1], ranges["st"][2] + ranges["lt"][2])
    pieces = regime_pieces(inputs)
    value = inputs.value
    on = cp.Variable(len(pieces), boolean=True, name="tax_regime")
    tax_value = cp.Variable(name="exact_tax")
    rows = [cp.sum(on) == 1]
    spread = sum(hi - lo for _, lo, hi in ranges.values())
    for k, piece in enumerate(pieces):
        off = 1 - on[k]
        linear = piece.st_slope * st + piece.lt_slope * lt + piece.constant / value
        # Any piece lies within (largest slope) x (every gain's range) of any other.
        big = 2.0 * max(abs(piece.st_slope), abs(piece.lt_slope), 1.0) * spread + 1.0
        big += max(abs(p.constant) for p in pieces) / value * 2.0
        rows.append(tax_value >= linear - big * off)
        bounds = {"st": piece.st_bounds, "lt": piece.lt_bounds, "sum": piece.sum_bounds}
        for name, (low, high) in bounds.items():
            gain, least, most = ranges[name]
            low, high = low / value, high / value
            if low > least:
                rows.append(gain >= low - (low - least + 1.0) * off)
            if high < most:
                rows.append(gain <= high + (most - high + 1.0) * off)
    return tax_value, rows


class _Caught(logging.Handler):
    """Keeps the errors cvxpy's SCIP interface logs instead of raising (an LP error in
    SCIP's optimize), without the model's address the message also gives."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        cause = record.args[-1] if isinstance(record.args, tuple) and record.args else None
        self.errors.append(str(cause) if isinstance(cause, Exception) else record.getMessage())


@contextmanager
def _scip_errors() -> Iterator[list[str]]:
    """The errors cvxpy's SCIP interface logs in the block, kept rather than printed."""
    handler = _Caught()
    logger = logging.getLogger(scip_conif.__name__)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield handler.errors
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _bound(model, inverse, status: str) -> float | None:
    """SCIP's best lower bound in the program's objective (fraction of account value), or
    ``None`` when it has none: cvxpy hands SCIP the objective less its constant part."""
    if model is None or status == "infeasible":
        return None
    try:
        dual = float(model.getDualbound())
        offset = float(inverse[-1][OFFSET])
    except Exception:  # no bound in SCIP's stage, or cvxpy's inverse data changed shape
        return None
    if not np.isfinite(dual) or abs(dual) >= model.infinity():
        return None
    return dual + offset
