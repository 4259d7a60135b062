"""Exact mode: the non-convex trade rules as a mixed-integer program (SCIP via pyscipopt).

Each non-convex constraint of the template gives its own mixed-integer rows
(``Constraint.mixed_integer_rows``) over shared binaries (``constraints.Switches``): per
security whether it is bought and whether it is sold, per wash group whether it buys. The
tracking-error term makes it a mixed-integer SOCP, which SCIP solves; HiGHS cannot (no
MIQP). Whole shares stay with the repair pass of :mod:`planner.rounding`, as in the
heuristic mode, so the two are compared on the same continuous objective. Meant for small
books and for measuring the heuristic's gap.
"""

from __future__ import annotations

import time
import warnings

import cvxpy as cp
import numpy as np

from constraints.base import AccountInputs, Switches
from planner.errors import InfeasibleError, MissingExtraError
from planner.program.problem import Template
from planner.search import SolveReport
from planner.solvers import Solution


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


def solve_exact(template: Template, inputs: AccountInputs, time_limit: float = 60.0) -> SolveReport:
    """Solve one account to global optimality (within SCIP's gap tolerance)."""
    _require_scip()
    template = _factor_form(template)
    inputs = inputs.with_state(direction=None, wash_direction=None, min_trade=None)
    for name, value in template.values(inputs).items():
        template.ctx.params[name].value = value
    ctx = template.ctx
    buy_cap = np.minimum(ctx.params["buy_cap"].value, 2.0)
    switches = Switches(ctx, inputs, buy_cap)
    # The yes/no switches of every trade, also read below to clear solver dust.
    buys, sells = switches.is_buy, switches.is_sell
    rules = [r for c in template.constraints for r in c.mixed_integer_rows(ctx, switches)]
    rows = switches.rows + rules
    problem = cp.Problem(template.problem.objective, template.problem.constraints + rows)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problem.solve(solver="SCIP", scip_params={"limits/time": time_limit, "limits/gap": 1e-9})
    ms = (time.perf_counter() - start) * 1e3
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            raise InfeasibleError(inputs.account_id, [], "exact mode: mixed-integer infeasible")
        raise InfeasibleError(inputs.account_id, [], f"exact mode: SCIP status {problem.status}")
    # Trades whose yes/no switch is off are zero by construction; the solver's tolerance
    # leaves dust of up to ~1e-6 of account value there, which would read as a trade.
    buy_on = np.asarray(buys.value, dtype=float) > 0.5
    sell_on = np.asarray(sells.value, dtype=float) > 0.5
    sell = np.maximum(np.asarray(ctx.sell.value, dtype=float), 0.0)
    sell = np.where(sell_on[inputs.lot_security] & (sell > 1e-9), sell, 0.0)
    buy = np.maximum(np.asarray(ctx.buy.value, dtype=float), 0.0)
    buy = np.where(buy_on & (buy > 1e-9), buy, 0.0)
    solution = Solution("optimal", "SCIP", sell, buy, float(problem.value), ms)
    return SolveReport(inputs, solution, 1, ms, ("exact mixed-integer solve",))
