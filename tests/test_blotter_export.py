"""Order files: approved orders only, CSV with lot columns, the xlsx workbook's sheets, and
FIX 4.4 NewOrderSingle messages parsed back and compared with the orders."""

from __future__ import annotations

import csv

import openpyxl
import pytest
import simplefix

from planner.blotter.approvals import approve
from planner.blotter.export import (
    FIX_LOT_GROUP,
    FIX_LOT_ID,
    FIX_LOT_QTY,
    approved_orders,
    export_batch,
)
from planner.blotter.records import EXPORTED, PROPOSED
from planner.blotter.store import open_store
from planner.errors import BatchStatusError, OutputError, StaleBookError
from tests.blotter_helpers import saved


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


@pytest.fixture
def approved(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    approve(store, batch.batch_id, "bob")
    return store.load_batch(batch.batch_id)


def test_csv(store, approved, tmp_path):
    out = export_batch(store, approved.batch_id, "csv", tmp_path / "orders.csv", "ops")
    rows = list(csv.DictReader(out.open()))
    assert [r["order_id"] for r in rows] == [o.order_id for o in approved.orders]
    assert {r["batch_id"] for r in rows} == {approved.batch_id}
    sell = rows[0]
    assert (sell["side"], sell["quantity"], sell["order_type"], sell["limit_price"]) == (
        "sell",
        "10.000000",
        "limit",
        "99.5000",
    )
    assert (sell["lot_count"], sell["lot_1_id"], sell["lot_1_shares"]) == ("2", "A1-L1", "6.000000")
    assert (sell["lot_2_id"], sell["lot_2_shares"]) == ("A1-L2", "4.000000")
    assert rows[1]["lot_count"] == "0" and rows[1]["lot_1_id"] == ""
    assert store.load_batch(approved.batch_id).status == EXPORTED
    # A second export (a lost file) is allowed and audited; the status stays.
    export_batch(store, approved.batch_id, "csv", tmp_path / "again.csv", "ops")
    assert (tmp_path / "again.csv").read_bytes() == out.read_bytes()
    exports = [e for e in store.audit_log(approved.batch_id) if e.action == "export"]
    assert [e.to_status for e in exports] == [EXPORTED, None]


def test_xlsx(store, approved, tmp_path):
    out = export_batch(store, approved.batch_id, "xlsx", tmp_path / "orders.xlsx", "ops")
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Orders", "Lot instructions", "Summary"]
    orders = list(book["Orders"].values)
    assert orders[0][:3] == ("batch_id", "order_id", "account_id")
    assert [r[1] for r in orders[1:]] == [o.order_id for o in approved.orders]
    lots = list(book["Lot instructions"].values)
    assert [r[4] for r in lots[1:]] == ["A1-L1", "A1-L2"]
    summary = {r[0]: r[1] for r in book["Summary"].values if r and r[0]}
    assert summary["batch_id"] == approved.batch_id
    assert summary["book_fingerprint"] == approved.book_fingerprint


def test_fix_round_trip(store, approved, tmp_path):
    out = export_batch(store, approved.batch_id, "fix", tmp_path / "orders.fix", "ops")
    parser = simplefix.FixParser()
    parser.append_buffer(out.read_bytes().replace(b"\n", b""))
    messages = []
    while (message := parser.get_message()) is not None:
        messages.append(message)
    orders = approved_orders(approved)
    assert len(messages) == len(orders) == 3
    for message, order in zip(messages, orders, strict=True):
        assert message.get(8) == b"FIX.4.4" and message.get(35) == b"D"
        assert message.get(11).decode() == order.order_id
        assert message.get(583).decode() == approved.batch_id
        assert message.get(1).decode() == order.account_id
        assert message.get(55).decode() == order.symbol
        assert message.get(54) == {"buy": b"1", "sell": b"2"}[order.side]
        assert float(message.get(38)) == pytest.approx(order.shares)
        assert message.get(40) == {"market": b"1", "limit": b"2"}[order.order_type]
        if order.limit_price is None:
            assert message.get(44) is None
        else:
            assert float(message.get(44)) == pytest.approx(order.limit_price)
        assert message.get(59) == b"0"
        count = int(message.get(FIX_LOT_GROUP) or 0)
        assert count == len(order.lot_instructions)
        for n, lot in enumerate(order.lot_instructions, start=1):
            assert message.get(FIX_LOT_ID, n).decode() == lot.lot_id
            assert float(message.get(FIX_LOT_QTY, n)) == pytest.approx(lot.shares)


def test_only_approved_accounts_are_exported(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    approve(store, batch.batch_id, "bob", ["A2"])
    out = export_batch(store, batch.batch_id, "csv", tmp_path / "orders.csv", "ops")
    assert {r["account_id"] for r in csv.DictReader(out.open())} == {"A2"}


def test_proposed_batch_is_not_exported(store, tmp_path):
    batch = saved(store, tmp_path / "book")
    with pytest.raises(BatchStatusError, match="is proposed; only an approved batch"):
        export_batch(store, batch.batch_id, "csv", tmp_path / "orders.csv", "ops")
    assert not (tmp_path / "orders.csv").exists()
    assert store.load_batch(batch.batch_id).status == PROPOSED


def test_stale_book_is_not_exported(store, approved, tmp_path):
    (tmp_path / "book" / "book.toml").write_text("[settings]\nas_of = 2026-11-21\n")
    with pytest.raises(StaleBookError):
        export_batch(store, approved.batch_id, "fix", tmp_path / "orders.fix", "ops")
    assert not (tmp_path / "orders.fix").exists()
    assert store.load_batch(approved.batch_id).status != EXPORTED


def test_unwritable_folder(store, approved, tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        export_batch(store, approved.batch_id, "csv", tmp_path / "no" / "orders.csv", "ops")
    assert store.load_batch(approved.batch_id).status != EXPORTED
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
