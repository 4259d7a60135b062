"""Approving and rejecting: maker-checker, two approvals above a threshold, partial
approval, stale books, and two processes approving or rejecting the same batch at once."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import replace

import pytest

from planner.blotter.approvals import approvals_needed, approve, cancel, reject
from planner.blotter.records import APPROVED, PROPOSED, REJECTED
from planner.blotter.store import open_store
from planner.domain import BlotterSettings
from planner.errors import ApprovalError, BatchStatusError, BlotterError, StaleBookError
from tests.blotter_helpers import sample_batch, saved, tiny_book


def test_proposer_cannot_approve(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    before = store.audit_log()
    with pytest.raises(ApprovalError, match="alice proposed it and cannot approve it"):
        approve(store, batch.batch_id, "alice")
    assert store.load_batch(batch.batch_id).status == PROPOSED
    assert store.audit_log() == before and store.approvals(batch.batch_id) == ()


@pytest.mark.parametrize("name", ["Alice", " alice ", "ALICE"])
def test_maker_checker_ignores_case_and_spaces(store, tmp_path, name):
    batch = saved(store, tmp_path / "book")
    with pytest.raises(ApprovalError, match="proposed it and cannot approve it"):
        approve(store, batch.batch_id, name)
    assert store.load_batch(batch.batch_id).status == PROPOSED


def test_a_second_approval_by_the_same_name_in_other_case_is_refused(store, tmp_path):
    batch = saved(store, tmp_path / "book", tax=5.0)
    approve(store, batch.batch_id, "bob")
    with pytest.raises(ApprovalError, match="has already approved it"):
        approve(store, batch.batch_id, " Bob ")
    assert store.load_batch(batch.batch_id).status == PROPOSED


def test_the_tax_threshold_does_not_net_across_clients(tmp_path):
    # A1 owes $6,000 and A2 saves $5,000: $1,000 net, but A1's client still pays $6,000.
    batch = sample_batch(tiny_book(tmp_path / "book"))
    taxes = {"A1": 6000.0, "A2": -5000.0}
    accounts = tuple(
        replace(a, summary={**a.summary, "est_tax": taxes[a.account_id]}) for a in batch.accounts
    )
    batch = replace(batch, accounts=accounts)
    settings = BlotterSettings(second_approval_tax=5000.0, second_approval_value=0.0)
    assert approvals_needed(batch, settings, ["A1", "A2"]) == 2
    assert approvals_needed(batch, settings, ["A2"]) == 1
    settings = replace(settings, second_approval_tax=7000.0)
    assert approvals_needed(batch, settings, ["A1", "A2"]) == 1


def test_without_maker_checker_the_proposer_may_approve(store, tmp_path):
    batch = saved(store, tmp_path / "book", maker_checker=False)
    assert approve(store, batch.batch_id, "alice").status == APPROVED


def test_one_approval_below_the_thresholds(store, tmp_path):
    batch = saved(store, tmp_path / "book", tax=100.0, value=1e6)
    outcome = approve(store, batch.batch_id, "bob")
    assert (outcome.status, outcome.approvals, outcome.needed) == (APPROVED, 1, 1)
    loaded = store.load_batch(batch.batch_id)
    assert loaded.status == APPROVED
    assert {a.status for a in loaded.accounts} == {APPROVED}


@pytest.mark.parametrize("threshold", [{"tax": 5.0}, {"value": 2000.0}])
def test_two_approvals_above_a_threshold(store, tmp_path, threshold):
    batch = saved(store, tmp_path / "book", **threshold)
    first = approve(store, batch.batch_id, "bob")
    assert (first.status, first.approvals, first.needed) == (PROPOSED, 1, 2)
    assert store.load_batch(batch.batch_id).status == PROPOSED
    with pytest.raises(ApprovalError, match="bob has already approved it"):
        approve(store, batch.batch_id, "bob")
    second = approve(store, batch.batch_id, "carol")
    assert (second.status, second.approvals) == (APPROVED, 2)
    actions = [(e.actor, e.action, e.to_status) for e in store.audit_log(batch.batch_id)]
    assert actions[1:] == [("bob", "approve", None), ("carol", "approve", APPROVED)]


def test_partial_approval(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    outcome = approve(store, batch.batch_id, "bob", ["A2"])
    assert outcome.approved_accounts == ("A2",)
    statuses = {a.account_id: a.status for a in store.load_batch(batch.batch_id).accounts}
    assert statuses == {"A1": REJECTED, "A2": APPROVED}
    assert store.pending_accounts() == {"A2": batch.batch_id}


def test_accounts_of_another_batch_in_the_market_are_not_approved_twice(store, tmp_path):
    # Two plans saved before either was approved: approving both would trade twice.
    first = saved(store, tmp_path / "book")
    second = saved(store, tmp_path / "book", batch_id="B20261120-120001-abcdef")
    approve(store, first.batch_id, "bob", ["A2"])
    before = store.audit_log()
    with pytest.raises(ApprovalError, match=f"account\\(s\\) A2 are in batch {first.batch_id}"):
        approve(store, second.batch_id, "bob")
    assert store.load_batch(second.batch_id).status == PROPOSED
    assert store.audit_log() == before
    assert approve(store, second.batch_id, "bob", ["A1"]).approved_accounts == ("A1",)


def test_unknown_account_refused(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    with pytest.raises(ApprovalError, match="has no account\\(s\\) A9; it has A1, A2"):
        approve(store, batch.batch_id, "bob", ["A9"])
    assert store.load_batch(batch.batch_id).status == PROPOSED


def test_stale_book_refused(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    (tmp_path / "book" / "securities.csv").write_text("symbol,asset_class,price,wash_group\n")
    with pytest.raises(StaleBookError, match="changed since the batch was planned"):
        approve(store, batch.batch_id, "bob")
    assert store.load_batch(batch.batch_id).status == PROPOSED
    assert len(store.audit_log()) == 1


def test_store_file_is_not_part_of_the_fingerprint(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    (tmp_path / "book" / "rebalance.db").write_bytes(b"anything")
    assert approve(store, batch.batch_id, "bob").status == APPROVED


def test_reject_and_cancel(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    with pytest.raises(BlotterError, match="--why must say why"):
        reject(store, batch.batch_id, "bob", "  ")
    rejected = reject(store, batch.batch_id, "bob", "prices moved")
    assert rejected.status == REJECTED
    assert store.audit_log(batch.batch_id)[-1].detail == "prices moved"
    with pytest.raises(BatchStatusError, match="is rejected"):
        approve(store, batch.batch_id, "carol")
    with pytest.raises(BatchStatusError, match="is rejected; it cannot become cancelled"):
        cancel(store, batch.batch_id, "bob", "late")


# -- two processes at once ------------------------------------------------------------------


def _contend(url: str, batch_id: str, who: str, action: str, go, results) -> None:
    """In a child process: read the batch, wait for the other child, then act; slowed down
    between its read and its write so that both have read before either writes."""
    from planner.blotter import store as store_module

    original = store_module.BatchChange.__post_init__

    def slow(self):
        original(self)
        time.sleep(0.4)

    store_module.BatchChange.__post_init__ = slow
    with open_store(url) as store:
        store.load_batch(batch_id)
        results.put((who, "ready"))
        go.wait(30)
        try:
            if action == "approve":
                approve(store, batch_id, who)
            else:
                reject(store, batch_id, who, "no")
            results.put((who, "won"))
        except BlotterError as exc:
            results.put((who, f"lost: {exc}"))


def _race(store_url: str, contenders: list[tuple[str, str, str]]) -> dict[str, str]:
    """Run each ``(who, batch_id, action)`` in its own process, all at once once every one
    has opened the store and read its batch; returns who -> ``won`` or ``lost: ...``."""
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    children = [
        context.Process(target=_contend, args=(store_url, batch_id, who, action, go, results))
        for who, batch_id, action in contenders
    ]
    for child in children:
        child.start()
    ready = sorted(results.get(timeout=60) for _ in children)
    assert ready == sorted((who, "ready") for who, _, _ in contenders)
    go.set()
    outcomes = dict(results.get(timeout=60) for _ in children)
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    return outcomes


@pytest.mark.parametrize("second", ["approve", "reject"])
def test_two_processes_cannot_both_win(store_url, tmp_path, second):
    with open_store(store_url) as store:
        batch = saved(store, tmp_path / "book")
    outcomes = _race(
        store_url, [("bob", batch.batch_id, "approve"), ("carol", batch.batch_id, second)]
    )
    won = [who for who, outcome in outcomes.items() if outcome == "won"]
    assert len(won) == 1, outcomes
    [loser] = [o for o in outcomes.values() if o != "won"]
    assert "nothing changed" in loser
    with open_store(store_url) as store:
        final = store.load_batch(batch.batch_id)
        log = store.audit_log(batch.batch_id)
        approvals = store.approvals(batch.batch_id)
    moved = [e for e in log if e.to_status in (APPROVED, REJECTED)]
    assert len(moved) == 1 and moved[0].actor == won[0]
    assert final.status == moved[0].to_status
    assert len(approvals) == (1 if final.status == APPROVED else 0)


def test_two_batches_with_the_same_accounts_are_not_both_approved_at_once(store_url, tmp_path):
    """Two plans of the same accounts, approved at the same moment by two people: the
    check that no other batch has the accounts in the market and the approval are one
    step, so one approval wins and the other is refused (both read before either writes:
    ``_contend`` slows each down inside its change)."""
    with open_store(store_url) as store:
        first = saved(store, tmp_path / "book")
        second = saved(store, tmp_path / "book", batch_id="B20261120-120001-abcdef")
    outcomes = _race(
        store_url, [("bob", first.batch_id, "approve"), ("carol", second.batch_id, "approve")]
    )
    assert sorted(o == "won" for o in outcomes.values()) == [False, True], outcomes
    [loser] = [o for o in outcomes.values() if o != "won"]
    assert "are in batch" in loser and "nothing changed" in loser
    with open_store(store_url) as store:
        statuses = [store.load_batch(b.batch_id).status for b in (first, second)]
        assert sorted(statuses) == [APPROVED, PROPOSED]
        assert set(store.pending_accounts()) == {"A1", "A2"}
