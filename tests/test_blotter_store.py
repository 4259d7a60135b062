"""The blotter's store on SQLite and PostgreSQL: round trips, lifecycle, refusals that
change nothing, migrations matching the ORM."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from planner.blotter.records import (
    APPROVED,
    EXPORTED,
    PROPOSED,
    RECONCILED,
    REJECTED,
    TRANSITIONS,
    Fill,
    can_move,
)
from planner.blotter.store import open_store, resolve_db_url
from planner.errors import BatchStatusError, BlotterError, ConfigError, UnknownBatchError
from tests.blotter_helpers import saved


def test_batch_round_trip(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    loaded = store.load_batch(batch.batch_id)
    assert loaded == replace(batch, options=loaded.options, accounts=loaded.accounts)
    assert dict(loaded.options) == dict(batch.options)
    assert [dict(a.summary) for a in loaded.accounts] == [dict(a.summary) for a in batch.accounts]
    sell = loaded.orders[0]
    assert sell.side == "sell" and [lot.lot_id for lot in sell.lot_instructions] == [
        "A1-L1",
        "A1-L2",
    ]
    assert sell.lot_instructions[0].acquired == date(2026, 3, 1)
    assert loaded.created_at.tzinfo is not None
    [entry] = store.audit_log(batch.batch_id)
    assert (entry.actor, entry.action, entry.to_status) == ("alice", "propose", PROPOSED)
    assert entry.book_fingerprint == batch.book_fingerprint


def test_list_counts_and_order(store, tmp_path):
    saved(store, tmp_path / "b1", batch_id="B1")
    saved(store, tmp_path / "b2", batch_id="B2")
    listed = store.list_batches()
    assert [b.batch_id for b in listed] == ["B1", "B2"]  # same time: by id
    assert (listed[0].accounts, listed[0].orders, listed[0].flagged_orders) == (2, 3, 1)


def test_lifecycle_and_audit(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    store.set_status(batch.batch_id, APPROVED, actor="bob", detail="fine")
    store.set_status(batch.batch_id, EXPORTED, actor="bob")
    store.record_fills(
        batch.batch_id,
        [Fill(batch.batch_id, batch.orders[2].order_id, 10.0, 101.0, date(2026, 11, 21))],
        actor="ops",
        status=RECONCILED,
    )
    assert store.load_batch(batch.batch_id).status == RECONCILED
    [fill] = store.fills(batch.batch_id)
    assert (fill.shares, fill.price, fill.trade_date) == (10.0, 101.0, date(2026, 11, 21))
    moves = [(e.from_status, e.to_status) for e in store.audit_log(batch.batch_id) if e.to_status]
    assert moves == [
        (None, PROPOSED),
        (PROPOSED, APPROVED),
        (APPROVED, EXPORTED),
        (EXPORTED, RECONCILED),
    ]


@pytest.mark.parametrize("status", [EXPORTED, RECONCILED, "nonsense"])
def test_wrong_transition_changes_nothing(store, tmp_path, status):
    batch = saved(store, tmp_path / "book")
    before = store.audit_log()
    with pytest.raises(BatchStatusError, match=f"is proposed; it cannot become {status}"):
        store.set_status(batch.batch_id, status, actor="bob")
    assert store.load_batch(batch.batch_id).status == PROPOSED
    assert store.audit_log() == before


def test_final_statuses_have_no_way_out():
    for status in (RECONCILED, REJECTED):
        assert not TRANSITIONS[status]
    assert can_move(PROPOSED, APPROVED) and not can_move(APPROVED, PROPOSED)


def test_unknown_batch(store):
    with pytest.raises(UnknownBatchError, match="no batch B404 in the store"):
        store.load_batch("B404")
    with pytest.raises(UnknownBatchError):
        store.set_status("B404", APPROVED, actor="bob")
    assert store.audit_log() == ()


def test_fill_for_unknown_order_records_nothing(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    store.set_status(batch.batch_id, APPROVED, actor="bob")
    store.set_status(batch.batch_id, EXPORTED, actor="bob")
    good = Fill(batch.batch_id, batch.orders[0].order_id, 1.0, 100.0, date(2026, 11, 21))
    bad = replace(good, order_id="nope")
    with pytest.raises(BlotterError, match="has no order nope"):
        store.record_fills(batch.batch_id, [good, bad], actor="ops", status="filled")
    assert store.fills(batch.batch_id) == ()
    assert store.load_batch(batch.batch_id).status == EXPORTED


def test_pending_accounts(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    assert store.pending_accounts() == {}
    with store.change(batch.batch_id) as change:
        change.set_account_status(["A1"], APPROVED)
        change.set_account_status(["A2"], REJECTED)
        change.move_to(APPROVED, actor="bob", action="approve")
    assert store.pending_accounts() == {"A1": batch.batch_id}
    store.set_status(batch.batch_id, EXPORTED, actor="bob")
    assert store.pending_accounts() == {"A1": batch.batch_id}
    store.set_status(batch.batch_id, RECONCILED, actor="ops")
    assert store.pending_accounts() == {}


def test_schema_matches_the_orm(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from planner.blotter.tables import Base

    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_reopen_keeps_data(store_url, tmp_path):
    with open_store(store_url) as store:
        batch = saved(store, tmp_path / "book")
    with open_store(store_url) as store:
        assert store.load_batch(batch.batch_id).batch_id == batch.batch_id


def test_db_url_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("REBALANCE_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_db_url() == f"sqlite:///{tmp_path / 'rebalance.db'}"
    assert resolve_db_url("x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("REBALANCE_DB", "sqlite:////elsewhere/s.db")
    assert resolve_db_url() == "sqlite:////elsewhere/s.db"
    assert resolve_db_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_bad_db_url_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="--db nosuchdriver://x: not a usable database URL"):
        open_store("nosuchdriver://x")
    with pytest.raises(ConfigError, match="cannot open the store"):
        open_store(f"sqlite:///{tmp_path}/missing/folder/s.db")
