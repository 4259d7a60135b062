"""Solvers reached through cvxpy: PIQP and Clarabel (and any other cvxpy knows).

The template's problem is DPP, so cvxpy canonicalises it once and re-applies new parameter
values per solve; with ``warm_start`` cvxpy also keeps the solver object and only updates
what changed (PIQP: the vectors), so PIQP is set up once per template. All of it through
cvxpy's public API.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, ClassVar

import cvxpy as cp

from planner.program.objective import is_conic
from planner.solvers.base import Solution, clean, failed

if TYPE_CHECKING:
    from planner.program.problem import Template, Values

OPTIONS: dict[str, dict] = {
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
QUADRATIC_ONLY = frozenset({"PIQP", "OSQP"})
"""Solvers of quadratic programs only: they cannot take a conic term (market impact)."""

_OPTIMAL = {cp.OPTIMAL}
_INFEASIBLE = {cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE}


class CvxpySolver:
    """The template's cvxpy problem solved by the cvxpy solver ``name``."""

    name: ClassVar[str] = "CVXPY"
    infeasible_is_certain: ClassVar[bool] = False

    def __init__(self, template: Template):
        self.template = template

    @classmethod
    def supports(cls, template: Template) -> bool:
        return not (cls.name in QUADRATIC_ONLY and is_conic(template.objective))

    def solve(self, values: Values) -> Solution:
        template = self.template
        params = template.ctx.params
        # Setting a cvxpy parameter validates its value: cheap next to the solve.
        for name, value in values.items():
            params[name].value = value
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                template.problem.solve(
                    solver=self.name, warm_start=True, **OPTIONS.get(self.name, {})
                )
            status = template.problem.status
        except cp.error.SolverError:
            status = "solver_error"
        ms = (time.perf_counter() - start) * 1e3
        if status in _OPTIMAL:
            sell, buy = template.ctx.sell.value, template.ctx.buy.value
            return Solution(
                "optimal", self.name, clean(sell), clean(buy), float(template.problem.value), ms
            )
        return failed(
            "infeasible" if status in _INFEASIBLE else str(status), self.name, template, ms
        )


def cvxpy_solver(name: str) -> type[CvxpySolver]:
    """The solver class of cvxpy's solver ``name`` (e.g. ``PIQP``, ``CLARABEL``)."""
    return type(f"{name.title()}Solver", (CvxpySolver,), {"name": name})
