"""An account whose relaxation is infeasible: the constraints behind it named
(:func:`explain_infeasible`), or, where only the partial rebalance's band edges are out of
reach, the account planned without them (:func:`without_unreachable_band`)."""

from __future__ import annotations

import constraints as C
from constraints.base import AccountInputs
from planner import solvers
from planner.errors import InfeasibleError
from planner.search_state import Search
from planner.solvers import Solution


def without_unreachable_band(search: Search, inputs, notes) -> Solution:
    """An infeasible account whose conflict involves the partial rebalance's band edges
    (e.g. the only security that could fill a class is wash-blocked): plan it without the
    hard band, its goal still pulling the classes toward the band, and say why. Any other
    conflict raises :class:`InfeasibleError` naming the constraints."""
    template = search.template
    conflicts = explain_infeasible(search.chain, inputs)
    bands = [c for c, _ in template.labels if isinstance(c, C.ClassBands)]
    if bands and any(c.describe(inputs) in conflicts for c in bands):
        search.relaxed = tuple(bands)
        sol = search.run(inputs)
        if sol.ok:
            others = [c for c in conflicts if c not in {b.describe(inputs) for b in bands}]
            notes.append(
                "band edges not reachable"
                + (f" ({'; '.join(others)})" if others else "")
                + ": planned as close to them as the other rules allow"
            )
            return sol
    raise InfeasibleError(inputs.account_id, conflicts)


def explain_infeasible(chain: solvers.Chain, inputs: AccountInputs) -> list[str]:
    """Labels of the constraints behind an infeasible account.

    First every constraint whose relaxation alone makes the account feasible; if none does,
    a minimal set found by a deletion filter (relax them all, then restore each one that is
    not needed). Constraints that only describe what the account holds (lot bounds, no
    shorting) are never blamed.
    """
    candidates = [c for c, _ in chain.template.labels if c.blamable and c.active(inputs)]
    singles = [c for c in candidates if chain.solve(inputs, skip=(c,), confirm=False).ok]
    if singles:
        return [c.describe(inputs) for c in singles]
    relaxed = list(candidates)
    if not relaxed or not chain.solve(inputs, skip=relaxed, confirm=False).ok:
        return []
    for c in candidates:
        trial = [r for r in relaxed if r is not c]
        if chain.solve(inputs, skip=trial, confirm=False).ok:
            relaxed = trial
    return [c.describe(inputs) for c in relaxed]
