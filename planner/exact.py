"""Exact mode: the non-convex trade rules as a mixed-integer program (SCIP via pyscipopt).

Per security two binaries (buy, sell; at most one) carry the minimum trade size and the
one-direction rule; per wash group one binary says whether the group buys (then none of its
loss lots may be sold). The tracking-error term makes it a mixed-integer SOCP, which SCIP
solves; HiGHS cannot (no MIQP). Whole shares stay with the repair pass of
:mod:`planner.rounding`, as in the heuristic mode, so the two are compared on the same
continuous objective. Meant for small books and for measuring the heuristic's gap.
"""

from __future__ import annotations

import time
import warnings

import cvxpy as cp
import numpy as np

from constraints.base import AccountInputs
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
    n = template.n
    sales = ctx.security_sales
    value = inputs.value
    minimum = inputs.min_trade_value / value
    buy_cap = np.minimum(template.ctx.params["buy_cap"].value, 2.0)
    hold = inputs.hold_weight

    buys = cp.Variable(n, boolean=True, name="is_buy")
    sells = cp.Variable(n, boolean=True, name="is_sell")
    rows = [
        ctx.buy <= cp.multiply(buy_cap, buys),
        ctx.buy >= cp.multiply(minimum, buys),
        sales <= cp.multiply(hold, sells),
        sales >= cp.multiply(np.minimum(minimum, hold), sells),
        buys + sells <= 1,
    ]
    groups = sorted(set(inputs.wash_groups))
    if groups:
        group_buys = cp.Variable(len(groups), boolean=True, name="group_buys")
        member = np.array([[g == h for h in inputs.wash_groups] for g in groups], dtype=float)
        loss_sales = ctx.lot_to_security @ cp.multiply(inputs.lot_loss.astype(float), ctx.sell)
        rows += [
            ctx.buy <= cp.multiply(buy_cap, member.T @ group_buys),
            loss_sales <= cp.multiply(hold, 1 - member.T @ group_buys),
        ]
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
