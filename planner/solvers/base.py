"""What a solver of the compiled program is: built once per template, then ``solve(values)``
per pass, where ``values`` are the template's parameter values (see
:meth:`planner.program.problem.Template.values`).

A solver class has ``name``, ``supports(template)`` (whether it can solve that template's
program at all) and ``infeasible_is_certain`` (whether its "infeasible" needs no second
opinion). Every solver answers with a :class:`Solution` in fractions of account value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from planner.program.problem import Template, Values

NOISE = 1e-7
"""Trades below this fraction of account value are solver round-off, read as zero."""


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


def clean(values) -> np.ndarray:
    """Trades as a solver returned them, with round-off below :data:`NOISE` set to 0."""
    x = np.asarray(values, dtype=float)
    return np.where(x > NOISE, x, 0.0)


def failed(status: str, solver: str, template: Template, ms: float) -> Solution:
    """A solution without trades, for a solve that did not reach the optimum."""
    return Solution(status, solver, np.zeros(template.m), np.zeros(template.n), float("nan"), ms)


class Solver(Protocol):
    """The interface every solver of :mod:`planner.solvers` offers."""

    name: ClassVar[str]
    infeasible_is_certain: ClassVar[bool]

    @classmethod
    def supports(cls, template: Template) -> bool: ...

    def solve(self, values: Values) -> Solution: ...
