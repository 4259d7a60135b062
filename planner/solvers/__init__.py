"""Solvers of the compiled program, behind one interface (:mod:`planner.solvers.base`):
each is built once per template, says whether it ``supports`` it, and ``solve(values)``
returns a :class:`~planner.solvers.base.Solution`.

- LotQP (:mod:`planner.solvers.lotqp`): the interior-point method written for exactly this
  program, the fastest by far; it knows the project's constraints and quadratic terms.
- PIQP and Clarabel through cvxpy (:mod:`planner.solvers.cvxpy_solvers`): PIQP takes what
  LotQP does not solve and confirms infeasibility; Clarabel is the last resort and solves
  the conic (market-impact) programs.

:class:`Chain` tries a template's solvers in order. To add a solver, write a class with the
interface and register it in :data:`SOLVERS`, or name any solver cvxpy knows.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from planner.solvers.base import NOISE, Solution, Solver, failed
from planner.solvers.cvxpy_solvers import cvxpy_solver
from planner.solvers.lotqp import LotQP

if TYPE_CHECKING:
    from constraints.base import AccountInputs, Constraint
    from planner.program.problem import Template

__all__ = ["DEFAULT_SOLVERS", "NOISE", "SOLVERS", "Chain", "Solution", "Solver", "solve"]

DEFAULT_SOLVERS: tuple[str, ...] = (LotQP.name, "PIQP", "CLARABEL")
"""Solvers tried in order: LotQP, then PIQP for what it does not solve (an unknown
constraint or term, an account it does not converge on, infeasibility to confirm), then
Clarabel."""

SOLVERS: dict[str, type] = {LotQP.name: LotQP}
"""Solvers of the project's own; any other name is a solver reached through cvxpy."""


def solver_class(name: str) -> type:
    if name not in SOLVERS:
        SOLVERS[name] = cvxpy_solver(name)
    return SOLVERS[name]


class Chain:
    """The solvers of one template, tried in order; each is built on first use and kept,
    so that it is set up once per template."""

    def __init__(self, template: Template, names: Sequence[str] | None = None):
        self.template = template
        self.names = tuple(names or template.solvers or DEFAULT_SOLVERS)
        self._built: dict[str, Solver | None] = {}

    def solver(self, name: str) -> Solver | None:
        """The template's solver ``name``, or ``None`` when it cannot take the template."""
        if name not in self._built:
            cls = solver_class(name)
            self._built[name] = cls(self.template) if cls.supports(self.template) else None
        return self._built[name]

    def solve(
        self,
        inputs: AccountInputs,
        skip: Iterable[Constraint] = (),
        names: Sequence[str] | None = None,
        confirm: bool = True,
        fallback: bool = True,
    ) -> Solution:
        """Solve for one account with each solver in turn until one is optimal. An
        infeasible verdict is confirmed by the next solver, unless the solver is certain
        of it or ``confirm`` is false (the many trial solves that explain an infeasible
        account). With ``fallback`` false, the first solver that takes the template
        answers, whatever its status (trial solves that are often infeasible)."""
        values = self.template.values(inputs, skip)
        names = tuple(names or self.names)
        last = None
        for k, name in enumerate(names):
            solver = self.solver(name)
            if solver is None:
                continue
            solution = solver.solve(values)
            final = solver.infeasible_is_certain or not confirm or k == len(names) - 1
            if solution.ok or (solution.infeasible and final) or not fallback:
                return solution
            last = solution
        return last or failed("no_solver", ",".join(names), self.template, 0.0)


_CHAINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def chain(template: Template) -> Chain:
    """The template's :class:`Chain` of its own solvers (kept while the template lives)."""
    if template not in _CHAINS:
        _CHAINS[template] = Chain(template)
    return _CHAINS[template]


def solve(
    template: Template,
    inputs: AccountInputs,
    skip: Iterable[Constraint] = (),
    solvers: Sequence[str] | None = None,
    confirm: bool = True,
) -> Solution:
    """One account's solution of ``template`` (see :meth:`Chain.solve`)."""
    return chain(template).solve(inputs, skip, solvers, confirm)
