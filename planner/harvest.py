"""Tax-loss harvesting under the user's control.

A **harvest** is a loss sale that no move of the security towards its goal needs: loss lots
of a security sold beyond its excess over its goal weight (the security replaced by a
substitute, or held as cash). Selling an over-weight security at a loss, or a legacy
holding (goal 0), is a rebalancing sale, not a harvest.

The ``harvest`` setting (book, or an account's column) is ``off`` (no harvests: each
security's loss lots sell at most its excess), ``with_rebalance`` (a triggered plan may
harvest) or ``opportunistic`` (a harvestable loss also fires a harvest-only plan of its
own). A harvest must realise at least ``harvest_min_loss`` dollars and
``harvest_min_loss_fraction`` of the position's value: a harvest the optimiser plans below
them is not made (:func:`undo_small`), and the opportunistic trigger fires only for a loss
that reaches both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from constraints.base import BIG, AccountInputs
from planner import tax
from planner.decisions import Decision
from planner.domain import CASH, Account, Book, FrozenDict
from planner.program.inputs import Universe, wash_blocks


@dataclass(frozen=True)
class HarvestRules:
    """An account's harvesting: ``mode`` and the two minimums of one harvest (dollars of
    loss, and a fraction of the position's value)."""

    mode: str = "with_rebalance"
    min_loss: float = 500.0
    min_fraction: float = 0.05

    def enough(self, loss: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Whether a loss (dollars, positive) on a position (dollars) is a harvest."""
        return (loss >= self.min_loss) & (loss >= self.min_fraction * position) & (loss > 0)


def rules_of(book: Book, account: Account) -> HarvestRules:
    """The account's harvesting: its ``harvest`` column, else the book's settings."""
    s = book.settings
    return HarvestRules(
        account.harvest or s.harvest, s.harvest_min_loss, s.harvest_min_loss_fraction
    )


def excess_weight(inputs: AccountInputs) -> np.ndarray:
    """Per security, how far it is over its goal weight (fraction of V, >= 0): what a
    rebalancing sale may sell of it."""
    return np.maximum(inputs.hold_weight - inputs.goal_weight, 0.0)


def loss_by_security(inputs: AccountInputs, sold: np.ndarray) -> np.ndarray:
    """Loss realised per security (dollars, positive) by selling ``sold`` (fraction of V
    per lot slot)."""
    loss = np.where(inputs.lot_loss, -inputs.lot_gain_frac * sold, 0.0) * inputs.value
    return np.bincount(inputs.lot_security, weights=loss, minlength=len(inputs.symbols))


def _beyond_excess(inputs: AccountInputs, sold: np.ndarray):
    """Loss-lot sales per slot, their sum per security, and the part of that sum beyond
    the security's excess over goal (fractions of V)."""
    n = len(inputs.symbols)
    loss_sold = np.where(inputs.lot_loss, sold, 0.0)
    by_security = np.bincount(inputs.lot_security, weights=loss_sold, minlength=n)
    return loss_sold, by_security, np.maximum(by_security - excess_weight(inputs), 0.0)


def harvested(
    inputs: AccountInputs, sold: np.ndarray, rules: HarvestRules | None = None
) -> tuple[np.ndarray, float, float]:
    """The harvest of a plan selling ``sold`` (fraction of V per lot slot): loss harvested
    per security (dollars, positive), and in total by term (ST, LT; dollars, negative).

    Per security, the loss-lot sales beyond its excess over goal are the harvest; they
    carry their share of the security's realised loss (pro rata to value sold). With
    ``rules``, a security's harvest below the minimums is rounding, not a harvest, and is
    left out. A plan raising cash for a withdrawal harvests nothing: its sales are needed."""
    n = len(inputs.symbols)
    if not inputs.taxable or inputs.cash_flow_mode != "none":
        return np.zeros(n), 0.0, 0.0
    loss_sold, by_security, beyond = _beyond_excess(inputs, sold)
    share = np.divide(beyond, by_security, out=np.zeros(n), where=by_security > 0)
    if rules is not None:
        loss = loss_by_security(inputs, loss_sold * share[inputs.lot_security])
        share[~rules.enough(loss, inputs.hold_weight * inputs.value)] = 0.0
    slot_loss = -inputs.lot_gain_frac * loss_sold * inputs.value * share[inputs.lot_security]
    per_security = np.bincount(inputs.lot_security, weights=slot_loss, minlength=n)
    st = -float(slot_loss[~inputs.lot_long_term].sum())
    lt = -float(slot_loss[inputs.lot_long_term].sum())
    return per_security, st, lt


def loss_sale_caps(inputs: AccountInputs) -> np.ndarray:
    """Per lot slot, the most (fraction of V) a plan that harvests nothing may sell:
    unlimited but for loss lots, which share their security's excess over goal, the
    largest loss per dollar first (the lots a rebalancing sale would pick)."""
    caps = np.full(len(inputs.lot_real), BIG)
    limited = inputs.lot_loss
    if not limited.any():
        return caps
    room = excess_weight(inputs).copy()
    slots = np.flatnonzero(limited)
    # Largest loss per dollar first, per security.
    order = np.lexsort((inputs.lot_gain_frac[slots], inputs.lot_security[slots]))
    for slot in slots[order].tolist():
        i = inputs.lot_security[slot]
        caps[slot] = min(inputs.lot_value_weight[slot], room[i])
        room[i] -= caps[slot]
    return caps


def with_rules(inputs: AccountInputs, rules: HarvestRules) -> AccountInputs:
    """The account's inputs with its loss sales capped where harvesting is off. A plan that
    raises cash for a withdrawal (``cash_only``) sells what it must, losses included.

    With harvesting on, nothing is capped before the search: a cap on a security it may
    not harvest would only bind where the plan harvests it, and :func:`undo_small` undoes
    those after the search (capping up front cost the search a third more solves, some of
    them infeasible candidates)."""
    if not inputs.taxable or inputs.cash_flow_mode != "none" or rules.mode != "off":
        return inputs
    return replace(inputs, loss_sale_cap=loss_sale_caps(inputs))


def too_small(inputs: AccountInputs, rules: HarvestRules, per_security: np.ndarray):
    """Securities whose harvest (``per_security``, dollars, from :func:`harvested`) is
    below the minimums."""
    position = inputs.hold_weight * inputs.value
    return (per_security > 0.005) & ~rules.enough(per_security, position)


def small_harvest_caps(
    inputs: AccountInputs, rules: HarvestRules, sell: np.ndarray
) -> tuple[np.ndarray, str] | None:
    """Per lot slot, the loss-sale caps (fractions of V, :func:`loss_sale_caps`) that take
    a plan's harvests below the minimums out, on the securities that make them (no cap
    elsewhere), and the note naming them; ``None`` when the plan (``sell``, fractions of V
    per slot) has none."""
    harvested_loss, _, _ = harvested(inputs, sell)
    small = too_small(inputs, rules, harvested_loss)
    if not small.any():
        return None
    capped = np.where(small[inputs.lot_security], loss_sale_caps(inputs), BIG)
    if inputs.loss_sale_cap is not None:
        capped = np.minimum(capped, inputs.loss_sale_cap)
    return capped, _small_note(inputs, rules, small, harvested_loss)


def _small_note(inputs: AccountInputs, rules: HarvestRules, small, harvested_loss) -> str:
    names = [f"{inputs.symbols[i]} (${harvested_loss[i]:,.0f})" for i in np.flatnonzero(small)]
    note = "harvests below the minimums (${:,.0f} and {:.0%} of the position) not made: {}"
    return note.format(rules.min_loss, rules.min_fraction, ", ".join(names))


def undo_small(
    inputs: AccountInputs, rules: HarvestRules, sell: np.ndarray, buy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A plan (``sell`` per lot slot, ``buy`` per security; fractions of V) without its
    harvests below the minimums, and a note naming them.

    For each such security the loss-lot sales beyond its excess over goal are not made
    (the smallest losses per dollar first, so the plan keeps the lots a rebalancing sale
    picks) and the buys of other securities in its class shrink by as much, pro rata:
    the class weight stays as planned (what the harvest did not reinvest comes back out
    of cash). A re-solve would find nearly this plan and cost a search per account; the
    rounding that follows keeps the minimum trade and the cash floor."""
    harvested_loss, _, _ = harvested(inputs, sell)
    small = too_small(inputs, rules, harvested_loss)
    if not small.any():
        return sell, buy, []
    n = len(inputs.symbols)
    loss_sold, _, beyond = _beyond_excess(inputs, sell)
    sell, buy = sell.copy(), buy.copy()
    classes = np.asarray(inputs.asset_classes, dtype=object)
    for i in np.flatnonzero(small).tolist():
        undo = beyond[i]
        slots = np.flatnonzero((inputs.lot_security == i) & (loss_sold > 0))
        # Smallest loss per dollar first (the gain fraction nearest zero).
        for slot in slots[np.argsort(-inputs.lot_gain_frac[slots], kind="stable")].tolist():
            take = min(sell[slot], undo)
            sell[slot] -= take
            undo -= take
            if undo <= 0:
                break
        in_class = (classes == classes[i]) & (np.arange(n) != i) & (buy > 0)
        bought = buy[in_class].sum()
        if bought > 0:
            buy[in_class] -= buy[in_class] * min(1.0, beyond[i] / bought)
    return sell, buy, [_small_note(inputs, rules, small, harvested_loss)]


# -- the opportunistic trigger ------------------------------------------------------------------

HARVEST_BAND = 0.005
"""How far (fraction of V) a harvest-only plan may move a class weight either way."""


def harvest_decision(
    book: Book,
    account: Account,
    universe: Universe,
    as_of: date,
    decision: Decision,
    class_weights: Mapping[str, float],
    reserved: frozenset[str] = frozenset(),
) -> Decision | None:
    """A harvest-only plan for an account the rebalancing rules leave alone, if it has a
    loss worth harvesting (see :class:`HarvestRules`) in a security whose loss sales the
    wash-sale rules allow and whose class has a substitute it may buy; ``None`` otherwise.
    The plan (mode ``harvest``) keeps every class weight within :data:`HARVEST_BAND` of
    where it is (``class_weights``: the triggers' current weights, cash included)."""
    found = harvest_candidates(book, account, universe, as_of, reserved)
    if not found:
        return None
    held = {c: w for c, w in class_weights.items() if w > 0 or c == CASH}
    bounds = FrozenDict(
        {c: (max(w - HARVEST_BAND, 0.0), w + HARVEST_BAND) for c, w in held.items()}
    )
    rules = rules_of(book, account)
    reasons = tuple(
        f"harvest: {symbol} holds ${loss:,.0f} of loss ({fraction:.1%} of the position; "
        f"minimums ${rules.min_loss:,.0f} and {rules.min_fraction:.0%})"
        for symbol, loss, fraction in found
    )
    return replace(
        decision,
        fire=True,
        mode="harvest",
        rebalance_to="band_edge",
        class_bounds=bounds,
        reasons=reasons,
        cash_flow_mode="none",
    )


def harvest_candidates(
    book: Book,
    account: Account,
    universe: Universe,
    as_of: date,
    reserved: frozenset[str] = frozenset(),
) -> list[tuple[str, float, float]]:
    """(symbol, loss in dollars, loss as a fraction of the position) of each security the
    account could harvest now: a loss over both minimums, loss sales not wash-blocked, and
    a substitute in its class (another wash group, buyable, not wash-blocked)."""
    if not account.taxable:
        return []
    rules = rules_of(book, account)
    if rules.mode == "off":
        return []
    lots = book.lot_frame(account.account_id)
    if lots.empty:
        return []
    securities = book.securities
    price = lots["symbol"].map(lambda s: securities[s].price).to_numpy(dtype=float)
    shares = lots["shares"].to_numpy(dtype=float)
    cost = lots["unit_cost"].to_numpy(dtype=float)
    symbols = lots["symbol"].to_numpy(dtype=object)
    blocks = wash_blocks(book, account.account_id, as_of)
    out = []
    for symbol in sorted(set(symbols.tolist())):
        mine = symbols == symbol
        loss = float((np.maximum(cost - price, 0.0) * shares)[mine].sum())
        position = float((price * shares)[mine].sum())
        if not rules.enough(np.array([loss]), np.array([position]))[0]:
            continue
        security = securities[symbol]
        if (
            not security.can_sell
            or symbol in account.do_not_sell
            or symbol in account.do_not_trade
            or security.wash_group in blocks.loss_sale_blocked
        ):
            continue
        if _substitute(book, account, universe, symbol, blocks, reserved):
            out.append((symbol, loss, loss / position))
    return out


def _may_buy(book: Book, account: Account, symbol: str) -> bool:
    """Whether neither the firm nor the account's lists forbid buying ``symbol``."""
    return (
        book.securities[symbol].can_buy
        and symbol not in account.do_not_buy
        and symbol not in account.do_not_trade
    )


def _substitute(book, account, universe, symbol, blocks, reserved) -> str | None:
    """A security of ``symbol``'s class the account may buy in its place, if any."""
    sold = book.securities[symbol]
    for other in universe.symbols:
        sec = book.securities[other]
        if (
            sec.asset_class == sold.asset_class
            and sec.wash_group != sold.wash_group
            and _may_buy(book, account, other)
            and sec.wash_group not in blocks.buy_blocked
            and sec.wash_group not in reserved
        ):
            return other
    return None


def substitute_outside(book: Book, account: Account, model, group: str) -> bool:
    """Whether the account's model offers a security it may buy in the asset class of wash
    group ``group`` outside that group (so that it need not buy the group)."""
    classes = {sec.asset_class for sec in book.securities.values() if sec.wash_group == group}
    return any(
        book.securities[s].asset_class in classes
        and book.securities[s].wash_group != group
        and _may_buy(book, account, s)
        for s in model.securities
    )


def harvest_value(
    year: tax.YearSoFar | None,
    st_gain: float,
    lt_gain: float,
    harvest_st: float,
    harvest_lt: float,
    st_rate: float,
    lt_rate: float,
) -> float:
    """Tax the harvest saves this year after the return's netting (dollars, positive: a
    saving): the plan's increment without the harvested losses less the increment with
    them. ``harvest_st`` and ``harvest_lt`` are the harvested losses (negative)."""
    if year is None:
        return 0.0
    with_harvest = year.increment(st_gain, lt_gain, st_rate, lt_rate)
    without_harvest = year.increment(st_gain - harvest_st, lt_gain - harvest_lt, st_rate, lt_rate)
    return without_harvest - with_harvest
