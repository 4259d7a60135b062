"""Solve one account: the convex relaxation, then the non-convex rules by re-solving.

1. Relaxation: every convex constraint, none of the non-convex rules.
2. Wash groups (Moehle, Kochenderfer, Boyd & Ang 2021, "Tax-aware portfolio construction via
   convex optimization"): where a solution both buys and sells at a loss in one wash group,
   the group gets a direction (keep its loss sales and buy nothing, or keep its buys and
   sell no loss lot). With few conflicting groups every combination is solved; with more,
   harvest-everywhere, the larger side of each group and (thorough) hold-everywhere, then
   (thorough) each group flipped alone. A security traded both ways keeps the side of its
   net trade. With directions fixed, "no buy and loss sale in one group" is two bounds.
3. Minimum trade size: trades below their minimum are forced up to it or dropped (the rule
   "force if at least half the minimum, else drop"; thorough also tries drop-all and
   force-all; if none is feasible, drop-all, then drop small buys and force small sales).
   A second round freezes the support, so no new small trade can appear.
4. Steps 2-3 repeat until the solution obeys every rule, a bounded number of rounds; if none
   does, candidates that only shrink the last solution are tried, and if none of those is
   feasible either the account is reported as breaking no rule it cannot keep
   (:class:`~planner.errors.RuleViolationError`).

5. The tax made exact: the convex tax model taxes each lot at its rate, but US netting is
   piecewise linear in the plan's net ST and LT gains (:mod:`planner.tax.regimes`). Every
   candidate is ranked by the exact objective (:mod:`planner.search_tax`). Where the
   relaxation's plan lies inside a netting regime, every candidate is solved with the tax
   exact in that regime (:func:`_in_relaxed_regime`); one the regime does not suit (its
   plan infeasible there or pinned to the regime's edge) is also solved with the convex
   model, and the search goes on from the better. The best plan's choices are then solved
   in its own regime if they were not already, and in the regimes whose boundary it sits
   on (:func:`_exact_tax`), unless the convex model already lies below the exact tax
   around the plan and meets it there.

Two efforts. ``standard`` (the default) makes its first re-solve carry every rule the
relaxation breaks (the wash candidates, each with the directions of the other securities
traded both ways, the groups already on one side kept there, and the minimum-trade choice of
small trades in classes without a conflict) and enumerates up to three conflicting groups;
on a universe of at most :data:`SMALL_UNIVERSE` securities, where solves are cheap, it runs
the thorough effort instead. ``thorough`` first runs everything ``standard`` does (so it
never ends worse), then goes step by step, enumerates up to four groups (beyond that,
branches on the three most wash-traded) and takes the two runners-up of the first wash
choice through the other rules too, searches minimum trades wider, releases restrictions
the plan no longer uses, and improves the best plan locally (:mod:`planner.search_local`:
one security's trade state changed at a time, or two sharing a class or a wash group,
every other state fixed), in the plan's netting regime and then in the nearby ones. Last,
it lets the convex model place the plan's choices and solves them in the regime that
lands in (a plan inside one regime may be only a local optimum of the tax). Its cost and
gaps are in docs/performance.md, ``tests/test_search_gap.py`` and
``examples/heuristic_gap.py``. The best solution that obeys every rule is kept; both efforts rank candidates by the same
exact objective. All passes reuse one compiled template, so each is a parameter update and
a solver call; an account whose relaxation already obeys every rule and whose tax the
convex model gets right costs one solve.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from constraints.base import BIG, AccountInputs, name_codes
from planner.errors import InfeasibleError, RuleViolationError
from planner.program.problem import Template
from planner.search_infeasible import without_unreachable_band
from planner.search_local import fall_back, improve
from planner.search_state import (
    DIRECTION,
    TRADE_EPS,
    Search,
    SolveReport,
    below_minimum,
    fixed_states,
    members,
    trade_states,
    trades,
    wash_conflicts,
    zeros,
)
from planner.search_tax import (
    REGIME_SOLVES,
    REGIME_SOLVES_THOROUGH,
    REGIME_TIE,
    REGIME_TOLERANCE,
    model_is_locally_exact,
    plan_regimes,
)
from planner.solvers import Solution

MAX_ROUNDS = 4
MINIMUMS_UNMET = "minimum trade sizes could not all be met"
"""A search note on a candidate (reported only when no plan obeys every rule)."""
SMALL_UNIVERSE = 12
"""Securities up to which the standard effort runs the thorough one (:func:`small_universe`)."""
NEARBY_REGIME = 0.02
REGIME_RESTART_SOLVES = 24
"""Thorough: after the local improvement, it runs again with the moves solved in each
netting regime within ``NEARBY_REGIME`` (fraction of account value) of the plan's gains,
within ``REGIME_RESTART_SOLVES`` solves each."""
EFFORTS = ("standard", "thorough")


def small_universe(inputs: AccountInputs) -> bool:
    """Whether the account's universe is small enough (:data:`SMALL_UNIVERSE`) that the
    standard effort affords the thorough one's search (a few dozen solves of a small
    program)."""
    return len(inputs.symbols) <= SMALL_UNIVERSE


MAX_ENUMERATED_GROUPS = 3
"""Conflicting wash groups up to which every combination of directions is solved
(standard effort: at most eight candidates, and the larger-side rule)."""
MAX_ENUMERATED_GROUPS_THOROUGH = 4
"""The same for the thorough effort (at most sixteen candidates)."""
BRANCHED_GROUPS = 3
"""Beyond enumeration, the most wash-traded groups whose every combination of directions is
solved (the others keep their larger side)."""
MAX_GREEDY_GROUPS = 8
"""Thorough, beyond enumeration: conflicting groups up to which each group's direction is
also flipped on its own from the best global candidate."""
WASH_ALTERNATIVES = 2
"""Thorough: wash-direction candidates after the best that also go through the other rules."""


def _resolve_wash(
    search: Search, inputs, sol, thorough: bool = True, conflicts=None, runners_up=None
):
    """Give every group that buys and sells at a loss one direction.

    Global candidates are solved: every conflicting group keeps its loss sales (harvest),
    each keeps the larger side of its relaxed trades, and (thorough) every one keeps its
    buys (hold); the best is kept. Thorough, with few conflicting groups, then flips each
    group's direction on its own and keeps it when that improves the objective. So the
    number of solves stays bounded however many loss lots the relaxation wanted to
    wash-trade.
    """
    codes = inputs.group_codes
    buys, losses = trades(inputs, sol).group_totals
    if conflicts is None:
        conflicts = wash_conflicts(inputs, sol)
    if not len(conflicts):
        return inputs, sol
    base = zeros(inputs, "wash_direction")
    if not thorough:
        # Groups on one side already keep it: one that only sells at a loss buys nothing,
        # one that only buys sells no loss lot. Otherwise a wash choice elsewhere (buys
        # moved to a substitute) often opens a new conflict and costs another round.
        free = np.bincount(codes, weights=base != 0, minlength=len(buys)) == 0
        side = np.zeros(len(buys), dtype=int)
        side[free & (losses > TRADE_EPS) & (buys <= TRADE_EPS)] = -1
        side[free & (buys > TRADE_EPS) & (losses <= TRADE_EPS)] = 1
        base = np.where(side[codes] != 0, side[codes], base)
    conflicting = members(codes, conflicts)

    def with_choices(choices: np.ndarray) -> AccountInputs:
        per_group = np.zeros(len(buys), dtype=int)
        per_group[conflicts] = choices
        return inputs.with_state(wash_direction=np.where(conflicting, per_group[codes], base))

    harvest = np.full(len(conflicts), -1)
    by_volume = np.where(losses[conflicts] >= buys[conflicts], -1, 1)
    # Harvest-everywhere wins when close substitutes sit in other wash groups (the usual
    # case: VTI/ITOT/SCHB); the larger-side rule wins when they do not (measured on the
    # demo and the synthetic benchmark books).
    if len(conflicts) <= (MAX_ENUMERATED_GROUPS_THOROUGH if thorough else MAX_ENUMERATED_GROUPS):
        # Few groups: try every combination, harvest-everywhere first. Directions interact
        # (harvesting one group may need its buys moved into another that then cannot
        # harvest), so the global candidates alone can miss the best mix.
        options = [np.array(c) for c in itertools.product((-1, 1), repeat=len(conflicts))]
        options.append(by_volume)
    else:
        options = [harvest, -harvest, by_volume] if thorough else [harvest, by_volume]
        if not thorough and not _substitutes_free(inputs, codes, conflicts):
            # Harvesting everywhere moves each group's buys to a substitute; when most
            # conflicting groups have none outside the conflict, it cannot win.
            options = [by_volume]
        if thorough:
            # Branch on the groups the relaxation wash-trades most (the smaller of their
            # buys and loss sales): every combination of their directions, the rest by
            # volume.
            disagreement = np.minimum(losses[conflicts], buys[conflicts])
            top = np.argsort(-disagreement, kind="stable")[:BRANCHED_GROUPS]
            for combo in itertools.product((-1, 1), repeat=len(top)):
                branch = by_volume.copy()
                branch[top] = combo
                options.append(branch)
    unique = [
        o for k, o in enumerate(options) if not any(np.array_equal(o, p) for p in options[:k])
    ]
    scored = []
    for choices in unique:
        candidate = with_choices(choices)
        trial = search.run(candidate)
        if trial.ok:
            scored.append((trial.objective, len(scored), choices, candidate, trial))
    if not scored:
        return inputs, sol
    scored.sort(key=lambda t: (t[0], t[1]))
    _, _, choices, inputs_best, sol_best = scored[0]
    if runners_up is not None:
        runners_up.extend((candidate, trial) for _, _, _, candidate, trial in scored[1:])
    if thorough and MAX_ENUMERATED_GROUPS_THOROUGH < len(conflicts) <= MAX_GREEDY_GROUPS:
        for k in range(len(conflicts)):
            flipped = choices.copy()
            flipped[k] = -flipped[k]
            candidate = with_choices(flipped)
            trial = search.run(candidate)
            if trial.ok and trial.objective < sol_best.objective - 1e-12:
                choices, inputs_best, sol_best = flipped, candidate, trial
    return inputs_best, sol_best


def _wash_notes(relaxed_inputs: AccountInputs, relaxed: Solution, inputs, sol) -> list[str]:
    """What the plan ``sol`` did in each wash group the relaxation both bought and sold at
    a loss in: kept the loss sales (no buys) or the buys (no loss sales)."""
    conflicts = wash_conflicts(relaxed_inputs, relaxed)
    buys, losses = trades(inputs, sol).group_totals
    names = name_codes(tuple(inputs.wash_groups))[0]
    harvested = sorted(names[g] for g in conflicts if losses[g] > TRADE_EPS)
    held = sorted(names[g] for g in conflicts if buys[g] > TRADE_EPS)
    notes = []
    if harvested:
        notes.append(f"wash groups with loss sales kept (no buys): {', '.join(harvested)}")
    if held:
        notes.append(f"wash groups with buys kept (no loss sales): {', '.join(held)}")
    return notes


def _substitutes_free(inputs: AccountInputs, codes: np.ndarray, conflicts: np.ndarray) -> bool:
    """Whether at least half the conflicting wash groups have an alternate of their asset
    class (a model security with no target of its own, e.g. ITOT beside a preferred VTI) in
    a group that is not conflicting: where harvested buys can go at little tracking cost."""
    conflicting = members(codes, conflicts)
    alternate = inputs.in_model.copy()
    if inputs.target_weight is not None:
        alternate &= inputs.target_weight <= 0
    buyable = alternate & ~(inputs.restricted_buy | inputs.do_not_buy | inputs.wash_buy_blocked)
    class_codes = inputs.class_codes
    has_free = members(class_codes, class_codes[buyable & ~conflicting])
    # A conflicting group has a substitute if any of its securities' classes has one.
    with_substitute = np.bincount(codes, weights=has_free, minlength=codes.max() + 1) > 0
    return 2 * int(with_substitute[conflicts].sum()) >= len(conflicts)


def _first_step(search: Search, inputs, sol, notes):
    """Every rule at once from the relaxation, for the standard effort: each wash-group
    candidate (see :func:`_resolve_wash`) is solved together with the direction of every
    other security traded both ways and the minimum-trade choice of every small trade in
    an asset class without a conflicting group (a class with one may need its substitutes
    for the harvest, so its small trades wait for the wash choice). Often the result obeys
    every rule, and the account is done in two or three solves."""
    done = trades(inputs, sol)
    sales = done.sales
    conflicts = wash_conflicts(inputs, sol)
    in_conflict = members(inputs.group_codes, conflicts)
    class_codes = inputs.class_codes
    touched_class = members(class_codes, class_codes[in_conflict])

    base = inputs
    both = DIRECTION.violations(done) & ~in_conflict
    if both.any():
        direction = zeros(inputs, "direction")
        direction[both] = np.where(sol.buy[both] > sales[both], 1, -1)
        base = base.with_state(direction=direction)
    dollars, small = done.dollars, below_minimum(done)
    small &= ~touched_class
    if small.any():
        state = zeros(inputs, "min_trade")
        force = small & (dollars >= inputs.min_trade_value / 2)
        state[force] = np.where(sol.buy > sales, 1, -1)[force]
        state[small & ~force] = 2
        base = base.with_state(min_trade=state)
    if not len(conflicts):
        if base is inputs:
            return inputs, sol
        trial = search.run(base)
        return (base, trial) if trial.ok else (inputs, sol)
    return _resolve_wash(search, base, sol, thorough=False, conflicts=conflicts)


def _fix_directions(search: Search, inputs, sol):
    """A security bought and sold in one plan keeps only the side of its net trade."""
    done = trades(inputs, sol)
    sales = done.sales
    both = DIRECTION.violations(done)
    if not both.any():
        return inputs, sol
    direction = zeros(inputs, "direction")
    direction[both] = np.where(sol.buy[both] > sales[both], 1, -1)
    candidate = inputs.with_state(direction=direction)
    fixed = search.run(candidate)
    return (candidate, fixed) if fixed.ok else (inputs, sol)


def _minimum_trades(search: Search, inputs, sol, notes, thorough: bool = True):
    """Force or drop trades below their minimum: the best of three candidate rules."""
    minimum = inputs.min_trade_value
    if not np.any(minimum > 0):
        return inputs, sol, False
    done = trades(inputs, sol)
    sales = done.sales
    state = zeros(inputs, "min_trade")
    dollars, small = done.dollars, below_minimum(done)
    small &= state == 0
    if not small.any():
        return inputs, sol, False
    side = np.where(sol.buy > sales, 1, -1)
    rule = small & (dollars >= minimum / 2)
    if inputs.min_trade is not None:
        # A second round: the first one's choices made new small trades appear (often
        # dust in a near-indifferent substitute). Freeze the support: no security that is
        # not trading now may start to, so the rounds end.
        untraded = (dollars <= TRADE_EPS * inputs.value) & (state == 0)
        state[untraded] = 2
    candidates = []
    rules = (rule, np.zeros_like(small), small) if thorough else (rule,)
    for force in rules:
        trial = state.copy()
        trial[small & force] = side[small & force]
        trial[small & ~force] = 2
        candidates.append(inputs.with_state(min_trade=trial))
    best = search.best(candidates)
    if best is None:
        # Forcing a sale up may need lots the account may not sell, and forcing a buy up or
        # dropping a sale may break the cash floor: try dropping every small trade, then
        # the cash-safe choice (drop small buys, force small sales up).
        drop = state.copy()
        drop[small] = 2
        safe = state.copy()
        safe[small & (side > 0)] = 2
        safe[small & (side < 0)] = -1
        for trial in (drop, safe):
            best = search.best([inputs.with_state(min_trade=trial)])
            if best is not None:
                break
    if best is None:
        notes.append(MINIMUMS_UNMET)
        return inputs, sol, False
    return best[0], best[1], True


def _release_unused(inputs: AccountInputs, sol: Solution) -> AccountInputs:
    """Drop wash-group and direction restrictions the solution no longer relies on."""
    done = trades(inputs, sol)
    sales = done.sales
    wash = inputs.wash_direction
    if wash is not None:
        # A group kept for loss sales that are gone, or for buys: either way no loss sale
        # in it remains, so buying is no longer a wash sale.
        _, losses = done.group_totals
        codes = inputs.group_codes
        wash = np.where(losses[codes] <= TRADE_EPS, 0, wash)
    direction = inputs.direction
    if direction is not None:
        direction = np.where((sales > TRADE_EPS) | (sol.buy > TRADE_EPS), direction, 0)
    return inputs.with_state(wash_direction=wash, direction=direction)


def solve_account(
    template: Template,
    inputs: AccountInputs,
    max_min_trade_passes: int = 3,
    effort: str = "standard",
):
    """Run the passes for one account; raises :class:`InfeasibleError` when even the
    relaxation is infeasible (naming the constraints whose relaxation would fix it).

    ``effort`` is ``standard`` or ``thorough`` (see the module doc). ``thorough`` runs
    everything ``standard`` does first, so it never ends worse.
    """
    if effort == "standard" and small_universe(inputs):
        effort = "thorough"  # affordable on a small universe, and never worse
    search = Search(template)
    notes: list[str] = []
    inputs = inputs.with_state(direction=None, wash_direction=None, min_trade=None)
    best = search.run(inputs)
    if best.infeasible:
        best = without_unreachable_band(search, inputs, notes)
    if not best.ok:
        raise InfeasibleError(
            inputs.account_id, [], f"solver status {best.status} with {best.solver}"
        )
    inputs = _in_relaxed_regime(search, inputs, best)
    start = (inputs, best)
    if not search.obeyed(inputs, best):
        _search_rules(search, inputs, best, notes, max_min_trade_passes, thorough=False)
        if effort == "thorough":
            _search_rules(search, *start, notes, max_min_trade_passes, True, WASH_ALTERNATIVES)
            if search.valid is not None:
                improve(search, *start)
                for regime in _nearby_regimes(*search.valid):
                    improve(search, *start, REGIME_RESTART_SOLVES, regime)
        if search.valid is None:
            fall_back(search, *start, notes)
        if search.valid is None:
            raise RuleViolationError(inputs.account_id, "; ".join(dict.fromkeys(notes)) or "none")
    _exact_tax(search, REGIME_SOLVES_THOROUGH if effort == "thorough" else REGIME_SOLVES)
    inputs, best = search.valid
    # Notes describe the plan the account ends with, not the candidates tried on the way.
    notes = _wash_notes(*start, inputs, best) + [n for n in notes if n != MINIMUMS_UNMET]
    return SolveReport(inputs, best, search.passes, search.ms, tuple(dict.fromkeys(notes)))


def solve_capped(
    template: Template, report: SolveReport, loss_sale_cap: np.ndarray, effort: str = "standard"
) -> SolveReport | None:
    """``report``'s account solved again with its loss sales capped (``loss_sale_cap``,
    fractions of V per lot slot), the plan's other choices kept, and its tax made exact
    again (:func:`_exact_tax`): the harvests a plan may not make taken out by the program
    rather than by hand, so that the tax stays exact. ``None`` when that breaks a rule."""
    search = Search(template)
    # The caps may put the plan's regime out of reach (the convex model picks again) and
    # a forced sale of a capped security above its cap.
    inputs = dataclasses.replace(report.inputs, loss_sale_cap=loss_sale_cap, tax_regime=None)
    if inputs.min_trade is not None:
        capped = np.bincount(
            inputs.lot_security, weights=loss_sale_cap < BIG, minlength=len(inputs.symbols)
        )
        forced = (capped > 0) & (inputs.min_trade == -1)
        inputs = inputs.with_state(min_trade=np.where(forced, 0, inputs.min_trade))
    search.run(inputs)
    if search.valid is None:
        return None
    # A group kept for loss sales the caps took out may buy again.
    released = _release_unused(*search.valid)
    if not _same_restrictions(released, search.valid[0]):
        search.run(released)
    _exact_tax(search, REGIME_SOLVES_THOROUGH if effort == "thorough" else REGIME_SOLVES)
    inputs, best = search.valid
    return SolveReport(
        inputs,
        best,
        report.passes + search.passes,
        report.solve_ms + search.ms,
        report.notes,
    )


def _nearby_regimes(inputs: AccountInputs, sol: Solution) -> list[int]:
    """Netting regimes other than the one the plan was solved in that lie within
    :data:`NEARBY_REGIME` of account value of its gains (its own first, when it was solved
    with the convex model): where one more move of the local improvement may land."""
    if not inputs.taxable:
        return []
    own, near = plan_regimes(inputs, sol.sell, NEARBY_REGIME)
    return [r for r in (own, *near) if r != inputs.tax_regime]


def _in_relaxed_regime(search: Search, inputs: AccountInputs, relaxed: Solution) -> AccountInputs:
    """``inputs`` with the tax in the netting regime of the relaxation's plan, for every
    candidate the search solves (each then ranked and solved by its exact tax, so the
    plan it ends with needs no solve of its own regime), when that plan lies inside the
    regime (not on its boundary); otherwise unchanged (a plan near a boundary
    may end on either side). A candidate that cannot reach the regime is solved with the
    convex model instead (:class:`Search`)."""
    if not (inputs.taxable and search.tax_weight):
        return inputs
    own, near = plan_regimes(inputs, relaxed.sell, REGIME_TOLERANCE)
    if near:
        return inputs
    search.preset_regime = own
    return inputs.with_state(tax_regime=own)


def _exact_tax(search: Search, budget: int) -> None:
    """Make the tax of the best plan exact: solve again with every other choice of the
    plan kept and the tax in its netting regime (:mod:`planner.tax.regimes`), then in each
    regime whose boundary the new plan sits on, while that improves, within ``budget``
    solves (:func:`_in_regime`). Nothing to solve when the convex model lies below the
    exact tax around the plan and meets it there (:func:`model_is_locally_exact`).

    With the thorough budget, a plan solved in the relaxation's regime is also placed by
    the convex model and solved in the regime that lands in: the tax is not convex, and a
    plan inside one regime can be only a local optimum."""
    inputs, sol = search.valid
    if not (inputs.taxable and search.tax_weight):
        return
    tried: set[int] = set()
    preset = search.preset_regime
    if budget >= REGIME_SOLVES_THOROUGH and preset is not None and inputs.tax_regime == preset:
        passes = search.passes
        convex = search.run(inputs.with_state(tax_regime=None))
        budget -= search.passes - passes
        tried.add(preset)
        if convex.ok:
            regime, _ = plan_regimes(inputs, convex.sell, REGIME_TOLERANCE)
            if regime not in tried:
                tried.add(regime)
                budget -= _in_regime(search, inputs, sol, regime, budget)
    while budget > 0:
        inputs, sol = search.valid
        own, near = plan_regimes(inputs, sol.sell, REGIME_TOLERANCE)
        if inputs.tax_regime is None and model_is_locally_exact(inputs, sol):
            # The regime's program has the same optimum: no solve, but the plan's tax is
            # the regime's (for the reports' model_tax).
            search.valid = (inputs.with_state(tax_regime=own), sol)
            return
        todo = [r for r in (own, *near) if r not in tried]
        if not todo:
            return
        before = sol
        for regime in todo:
            if budget <= 0:
                break
            tried.add(regime)
            budget -= _in_regime(search, inputs, sol, regime, budget)
        if search.valid[1] is before:
            return


def _in_regime(search: Search, inputs: AccountInputs, sol: Solution, regime: int, budget: int):
    """Solve the plan's choices with the tax in ``regime``; where that breaks a trade
    rule, one round of the rule passes (:func:`_repair`), and if a rule is still broken,
    every security's trade state fixed to the plan's. Returns the solves spent."""
    passes = search.passes
    candidate = inputs.with_state(tax_regime=regime)
    trial = search.run(candidate)
    if trial.ok and not search.obeyed(candidate, trial) and budget > 1:
        candidate, trial = _repair(search, candidate, trial)
        if not search.obeyed(candidate, trial) and search.passes - passes < budget:
            candidate = fixed_states(inputs, trade_states(inputs, sol))
            candidate = candidate.with_state(tax_regime=regime)
            trial = search.run(candidate)
    if (
        trial.ok
        and search.valid[0].tax_regime is None
        and trial.objective <= search.valid[1].objective + REGIME_TIE
        and search.obeyed(candidate, trial)
    ):
        # As good as the convex model's plan: keep the plan whose tax is exact.
        search.valid = (candidate, trial)
    return search.passes - passes


def _repair(search: Search, inputs: AccountInputs, sol: Solution):
    """One round of the standard effort's rule passes from ``sol`` (wash groups, then
    directions, then minimum trades, each only where the plan breaks its rule): a plan
    solved in another netting regime often trades a little more, or a little less, than
    the rules allow."""
    inputs, sol = _resolve_wash(search, inputs, sol, thorough=False)
    inputs, sol = _fix_directions(search, inputs, sol)
    inputs, sol, _ = _minimum_trades(search, inputs, sol, [], thorough=False)
    return inputs, sol


def _search_rules(
    search: Search, inputs, best, notes, max_min_trade_passes, thorough, alternatives=0
):
    """The re-solves that make a relaxed solution obey the rules (module doc, steps 2-4);
    the best valid solution is left in ``search.valid``."""
    min_passes = 0
    if not thorough:
        inputs, best = _first_step(search, inputs, best, notes)
        if search.obeyed(inputs, best):
            return
    runners_up = [] if thorough and alternatives else None
    for _ in range(MAX_ROUNDS):
        inputs, best = _resolve_wash(search, inputs, best, thorough, runners_up=runners_up)
        if runners_up:
            # The wash choice that looks best before the other rules are met is not always
            # best after: the next ones go through the same rounds too.
            for other in runners_up[:alternatives]:
                _search_rules(search, *other, notes, max_min_trade_passes, thorough, 0)
            runners_up = None
        inputs, best = _fix_directions(search, inputs, best)
        if min_passes < max_min_trade_passes:
            inputs, best, changed = _minimum_trades(search, inputs, best, notes, thorough)
            min_passes += changed
        if search.obeyed(inputs, best):
            break
    if thorough and search.valid is not None:
        # A restriction the final plan no longer uses (a group kept for loss sales whose
        # loss sales were all dropped) may be costing something: try once without them.
        kept_inputs, kept = search.valid
        released = _release_unused(kept_inputs, kept)
        if not _same_restrictions(released, kept_inputs):
            search.run(released)


def _same_restrictions(a: AccountInputs, b: AccountInputs) -> bool:
    def same(x, y):
        if x is None or y is None:
            return (x is None or not np.any(x)) and (y is None or not np.any(y))
        return np.array_equal(x, y)

    return same(a.wash_direction, b.wash_direction) and same(a.direction, b.direction)
