"""Accounts planned in turn: chunks that keep tax returns and households together."""

from __future__ import annotations

from datetime import date

import pytest

from planner.synthetic import generate_book


@pytest.fixture(scope="module")
def book():
    return generate_book(seed=3, n_accounts=40, as_of=date(2026, 11, 20))


def _regrouped(book, scope: str):
    """Seven accounts of ``book`` in households H1 (3 accounts), H2 (1), H3 (2), H4 (1),
    with the wash-sale scope ``scope``."""
    from dataclasses import replace

    ids = sorted(book.accounts)[:7]
    household = dict(zip(ids, ["H1", "H1", "H1", "H2", "H3", "H3", "H4"], strict=True))
    accounts = {a: replace(book.accounts[a], household_id=household[a]) for a in ids}
    settings = replace(book.settings, wash_sale_scope=scope)
    lots = book.lots[book.lots["account_id"].isin(ids)].reset_index(drop=True)
    trades = book.trades[book.trades["account_id"].isin(ids)].reset_index(drop=True)
    return replace(book, accounts=accounts, lots=lots, trades=trades, settings=settings), ids


def test_planning_chunks_keep_households_together(book):
    """With the household scope a chunk is closed once it holds ``size`` accounts or more,
    and only between households: with size 2, H1's three accounts fill the first chunk, H2
    and H3 the second, H4 the third; with size 4, H1 and H2 the first, H3 and H4 the
    second."""
    from planner.households import planning_chunks

    regrouped, a = _regrouped(book, "household")
    assert planning_chunks(regrouped, a, 2) == [a[0:3], a[3:6], a[6:7]]
    assert planning_chunks(regrouped, a, 4) == [a[0:4], a[4:7]]
    assert planning_chunks(regrouped, a, 100) == [a]
    # A household never straddles two chunks, whatever the size.
    for size in range(1, 8):
        chunks = planning_chunks(regrouped, a, size)
        assert [x for c in chunks for x in c] == a
        where = {x: k for k, c in enumerate(chunks) for x in c}
        for h in ("H1", "H2", "H3", "H4"):
            members = [x for x in a if regrouped.accounts[x].household_id == h]
            assert len({where[x] for x in members}) == 1, (size, h)


def test_planning_chunks_keep_tax_returns_together_with_the_account_scope(book):
    """With the account scope only a tax return's accounts stay together: H1's accounts
    a0-a2 are one return when taxable; an IRA is a group of its own."""
    from dataclasses import replace

    from planner.households import planning_chunks, planning_groups

    regrouped, a = _regrouped(book, "account")
    registrations = ["taxable", "taxable", "ira", "taxable", "taxable", "roth", "taxable"]
    accounts = {
        x: replace(regrouped.accounts[x], registration=r)
        for x, r in zip(a, registrations, strict=True)
    }
    # a6 files with a3 although it is in another household.
    accounts[a[6]] = replace(accounts[a[6]], tax_return="H2")
    regrouped = replace(regrouped, accounts=accounts)
    assert planning_groups(regrouped, a) == [[a[0], a[1]], [a[2]], [a[3], a[6]], [a[4]], [a[5]]]
    assert planning_chunks(regrouped, a, 2) == [[a[0], a[1]], [a[2], a[3], a[6]], [a[4], a[5]]]
    assert planning_chunks(regrouped, a, 0) == [[a[0], a[1]], [a[2]], [a[3], a[6]], [a[4]], [a[5]]]
