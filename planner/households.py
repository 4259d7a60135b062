"""Accounts planned in turn: a tax return's (each sees what the earlier ones realised) and,
with the household wash-sale scope, a household's (a later account must not wash an earlier
one's loss, and an earlier one buys a substitute rather than block a later one's harvest).

:func:`planning_chunks` keeps each such group in one chunk of a run; :class:`HouseholdTrades`
carries what a household's accounts planned so far trade.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from planner import harvest
from planner.decisions import Decision
from planner.domain import Book
from planner.orders import AccountOutcome
from planner.program.inputs import Universe


def household_order(book: Book, account_id: str) -> tuple:
    """Sort key planning a household's accounts in turn, taxable ones first."""
    account = book.accounts[account_id]
    return (account.household_id, not account.taxable, account_id)


@dataclass
class HouseholdTrades:
    """Wash groups the accounts already planned in a household buy, and sell at a loss in
    a taxable account: what the household's later accounts must not wash. ``harvests``
    holds, per taxable account still to plan, the wash groups it could harvest: a sibling
    with a substitute buys that instead (:meth:`reserved_for`), so that its buy does not
    block the harvest."""

    bought: set[str] = field(default_factory=set)
    sold_at_loss: set[str] = field(default_factory=set)
    harvests: dict[str, set[str]] = field(default_factory=dict)

    def reserved_for(self, book: Book, account_id: str) -> frozenset[str]:
        """Wash groups another account of the household could harvest and this one can
        replace with a substitute: it must not buy them."""
        others = {g for a, groups in self.harvests.items() if a != account_id for g in groups}
        if not others:
            return frozenset()
        account = book.accounts[account_id]
        model = book.models[account.model]
        return frozenset(g for g in others if harvest.substitute_outside(book, account, model, g))

    def record(self, book: Book, account_id: str, outcome: AccountOutcome) -> None:
        self.harvests.pop(account_id, None)
        securities = book.securities
        self.bought.update(securities[s].wash_group for s in outcome.bought())
        if book.accounts[account_id].taxable:
            self.sold_at_loss.update(securities[s].wash_group for s in outcome.sold_at_loss())


def household_harvests(
    book: Book,
    member: str,
    decisions: Mapping[str, Decision],
    universes: Mapping[str, Universe],
    as_of: date,
) -> HouseholdTrades:
    """The household of account ``member`` before any of its accounts is planned: the wash
    groups each taxable account that will be planned (triggered, or harvesting
    opportunistically) could harvest."""
    out = HouseholdTrades()
    for account_id in book.household(member):
        account = book.accounts[account_id]
        decision = decisions.get(account_id)
        if decision is None or not account.taxable:
            continue
        rules = harvest.rules_of(book, account)
        if not (decision.fire or rules.mode == "opportunistic"):
            continue
        universe = universes.get(account.model)
        if universe is None:
            continue
        found = harvest.harvest_candidates(book, account, universe, as_of)
        if found:
            out.harvests[account_id] = {book.securities[s].wash_group for s, _, _ in found}
    return out


def planning_groups(book: Book, ids: Sequence[str]) -> list[list[str]]:
    """The accounts planned in turn in one chunk: a tax return's and, with the household
    wash-sale scope, a household's (groups sharing an account are one), in the order of
    their first account in ``ids``."""
    household_scope = book.settings.wash_sale_scope == "household"
    leader = {a: a for a in ids}

    def root(a: str) -> str:
        while leader[a] != a:
            leader[a] = leader[leader[a]]
            a = leader[a]
        return a

    first: dict[tuple[str, str], str] = {}
    for a in ids:
        account = book.accounts[a]
        keys = [("return", account.return_id)] if account.return_id is not None else []
        if household_scope:
            keys.append(("household", account.household_id))
        for key in keys:
            if key not in first:
                first[key] = a
                continue
            mine, theirs = root(a), root(first[key])
            if mine != theirs:
                leader[max(mine, theirs)] = min(mine, theirs)
    groups: dict[str, list[str]] = {}
    for a in ids:
        groups.setdefault(root(a), []).append(a)
    return list(groups.values())


def planning_chunks(book: Book, ids: Sequence[str], size: int) -> list[list[str]]:
    """Chunks of about ``size`` accounts; a group of :func:`planning_groups` stays in one
    chunk, because its accounts are planned in turn (see :func:`planner.run.plan_chunk`)."""
    size = max(1, int(size))
    chunks: list[list[str]] = [[]]
    for group in planning_groups(book, ids):
        if len(chunks[-1]) >= size:
            chunks.append([])
        chunks[-1].extend(group)
    return [c for c in chunks if c]
