"""Reconciliation: fills matched to approved orders (partial fills, lots named or taken from
the instructions), the book rolled forward with exact figures, the batch reconciled with
audit entries; every bad input refused with a clear message and nothing changed; and the
whole path on the demo from the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from planner.blotter.fills import read_fills
from planner.blotter.reconcile import reconcile
from planner.blotter.records import APPROVED, EXPORTED, RECONCILED
from planner.blotter.rolled_book import StagedBook
from planner.blotter.store import Store, open_store
from planner.cli import app
from planner.errors import BatchStatusError, BlotterError, StaleBookError, UnknownBatchError
from planner.io import load_book
from tests.reconcile_helpers import (
    BATCH_ID,
    TRADE_DAY,
    demo_fills,
    exported_batch,
    hand_fills,
    order_id,
    snapshot,
    tiny_batch,
    tiny_book,
)

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


@pytest.fixture
def exported(store, tmp_path):
    book = tiny_book(tmp_path / "book")
    return exported_batch(store, book, tmp_path), book


def test_hand_checked_reconciliation(store, exported, tmp_path):
    batch, book = exported
    result = reconcile(
        BATCH_ID, hand_fills(tmp_path / "FILLS.csv"), book, tmp_path / "next", store=store,
        actor="olivia",
    )  # fmt: skip
    assert result.batch.status == RECONCILED
    assert [(o.order.order_id, o.filled, o.status) for o in result.orders] == [
        (order_id(1), 30.0, "partial"),
        (order_id(2), 15.0, "filled"),
        (order_id(3), 20.0, "filled"),
        (order_id(4), 4.0, "filled"),
    ]  # A2's order was not approved: not reported, not filled
    rolled = load_book(tmp_path / "next")
    lots = {
        lot.lot_id: (lot.shares, round(lot.unit_cost, 4), lot.acquired)
        for lot in rolled.lots_of("A1")
    }
    assert lots == {
        # 30 BND sold of A1-L4 at a $300 loss, replaced by 30 of the 100 bought on Nov 10.
        "A1-L4": (20.0, 80.0, date(2024, 1, 5)),
        "A1-L3.w1": (30.0, 80.0, date(2024, 1, 5)),
        "A1-L3": (70.0, 70.0, date(2026, 11, 10)),
        # Buys take their order's id; 10 ITOT replace the $100 ITOT loss of Nov 5.
        f"{order_id(3)}.w1": (10.0, 111.0, TRADE_DAY),
        order_id(3): (10.0, 101.0, TRADE_DAY),
        order_id(4): (4.0, 251.0, date(2026, 3, 2)),
    }
    a1 = rolled.accounts["A1"]
    assert (a1.cash, a1.cash_flow, a1.last_rebalanced) == (3776.0, 0.0, TRADE_DAY)
    assert rolled.accounts["A2"].last_rebalanced is None
    assert (rolled.returns["H1"].ytd_st_gain, rolled.returns["H1"].ytd_lt_gain) == (-200.0, 250.0)
    fills = store.fills(BATCH_ID)
    assert sorted((f.order_id[-1], f.shares, f.lot_id) for f in fills) == [
        ("1", 30.0, "A1-L4"),
        ("2", 5.0, "A1-L2"),
        ("2", 10.0, "A1-L1"),
        ("3", 20.0, None),
        ("4", 4.0, None),
    ]
    log = store.audit_log(BATCH_ID)
    assert [(e.actor, e.action, e.to_status) for e in log[-3:]] == [
        ("olivia", "fills", None),
        ("olivia", "fill", "filled"),
        ("olivia", "reconcile", RECONCILED),
    ]
    assert set(result.allocation["account_id"]) == {"A1"}
    assert (result.exceptions["drift"].abs() > 0.005).all()


def test_tolerance_decides_the_exceptions(store, exported, tmp_path):
    _, book = exported
    result = reconcile(
        BATCH_ID, hand_fills(tmp_path / "F.csv"), book, tmp_path / "n", store=store, tolerance=0.99
    )
    assert result.exceptions.empty and len(result.allocation) == 3


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


HEADER = "order_id,shares,price,date,lot_id\n"


@pytest.mark.parametrize(
    ("fills", "message"),
    [
        (HEADER + f"{order_id(5)},10,70,2026-11-23,\n", "is not approved"),
        (HEADER + "B1-00001,10,70,2026-11-23,\n", "no order B1-00001 in batch"),
        (HEADER + f"{order_id(4)},3,201,2026-11-23,\n{order_id(4)},2,201,2026-11-23,\n",
         "add up to 5 shares, more than the 4 ordered \\(overfill refused\\)"),
        (HEADER + f"{order_id(4)},abc,201,2026-11-23,\n",
         "FILLS.csv:2: shares: expected a number > 0, got 'abc'"),
        (HEADER + f"{order_id(4)},4,201,2026-13-01,\n",
         "FILLS.csv:2: date: expected a date YYYY-MM-DD, got '2026-13-01'"),
        (HEADER + f"{order_id(4)},4,201,2026-11-19,\n",
         "expected a date on or after the batch's as-of date 2026-11-20"),
        (HEADER + f"{order_id(4)},4,201,2026-11-23,A1-L1\n", "expected no lot on a buy"),
        ("order_id,shares,date\n" + f"{order_id(4)},4,2026-11-23\n",
         "FILLS.csv:1: price: missing required column"),
        ("shares,price,date\n4,201,2026-11-23\n", "give order_id, or account_id, symbol and side"),
        ("account_id,symbol,side,shares,price,date\nA1,BND,buy,1,70,2026-11-23\n",
         "no buy order of BND for account A1"),
        (HEADER + f"{order_id(2)},15,200,2026-11-23,A1-L9\n", "lot 'A1-L9' is not held"),
        (HEADER + f"{order_id(2)},12,200,2026-11-23,A1-L1\n", "which holds 10"),
    ],
)  # fmt: skip
def test_bad_fills_change_nothing(store, exported, tmp_path, fills, message):
    _, book = exported
    before, log = snapshot(book), store.audit_log(BATCH_ID)
    path = _write(tmp_path / "FILLS.csv", fills)
    with pytest.raises(BlotterError, match=message):
        reconcile(BATCH_ID, path, book, tmp_path / "next", store=store)
    _unchanged(store, book, before, log, tmp_path)


def test_a_fill_dated_after_today_is_refused(store, exported, tmp_path):
    _, book = exported
    before, log = snapshot(book), store.audit_log(BATCH_ID)
    fills = hand_fills(tmp_path / "FILLS.csv")  # every row on 2026-11-23
    with pytest.raises(BlotterError, match=r"nothing was applied") as refused:
        reconcile(BATCH_ID, fills, book, tmp_path / "next", store=store, today=date(2026, 11, 22))
    assert (
        "FILLS.csv:2: date: expected a trade date on or before today (2026-11-22), got "
        "2026-11-23: a fill cannot be in the future"
    ) in str(refused.value)
    assert str(refused.value).count("in the future") == 5  # every row named
    _unchanged(store, book, before, log, tmp_path)
    # On the day itself the same file is fine.
    result = reconcile(BATCH_ID, fills, book, tmp_path / "next", store=store, today=TRADE_DAY)
    assert result.batch.status == RECONCILED


def _unchanged(store, book, before, log, tmp_path):
    assert store.load_batch(BATCH_ID).status == EXPORTED
    assert store.fills(BATCH_ID) == () and store.audit_log(BATCH_ID) == log
    assert snapshot(book) == before
    assert not (tmp_path / "next").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".next")]


def test_unknown_batch(store, tmp_path):
    book = tiny_book(tmp_path / "book")
    with pytest.raises(UnknownBatchError, match="no batch B-NONE in the store"):
        reconcile("B-NONE", hand_fills(tmp_path / "F.csv"), book, tmp_path / "next", store=store)


def test_stale_book(store, exported, tmp_path):
    _, book = exported
    (book / "lots.csv").write_text(
        (book / "lots.csv").read_text().replace("A2-L1,VTI,3", "A2-L1,VTI,4")
    )
    before, log = snapshot(book), store.audit_log(BATCH_ID)
    with pytest.raises(StaleBookError, match="changed since the batch was planned"):
        reconcile(BATCH_ID, hand_fills(tmp_path / "F.csv"), book, tmp_path / "next", store=store)
    _unchanged(store, book, before, log, tmp_path)


def test_a_batch_not_exported_is_refused(store, tmp_path):
    from planner.blotter.approvals import approve

    book = tiny_book(tmp_path / "book")
    batch = tiny_batch(book)
    store.save_batch(batch, batch.orders, batch.accounts)
    approve(store, BATCH_ID, "bob")
    with pytest.raises(BatchStatusError, match="is approved; only an exported or filled batch"):
        reconcile(BATCH_ID, hand_fills(tmp_path / "F.csv"), book, tmp_path / "next", store=store)
    assert store.load_batch(BATCH_ID).status == APPROVED


def test_reconciling_twice_is_refused(store, exported, tmp_path):
    _, book = exported
    fills = hand_fills(tmp_path / "F.csv")
    reconcile(BATCH_ID, fills, book, tmp_path / "next", store=store)
    with pytest.raises(BatchStatusError, match="is reconciled"):
        reconcile(BATCH_ID, fills, book, tmp_path / "again", store=store)
    assert not (tmp_path / "again").exists()


def _lose_the_compare_and_set(monkeypatch):
    """Make the store's write fail as when someone else changed the batch meanwhile."""

    def lost(self, session, change, revision):
        raise BatchStatusError(
            f"batch {change.batch.batch_id} was changed by someone else meanwhile; nothing changed"
        )

    monkeypatch.setattr(Store, "_write", lost)


@pytest.mark.parametrize("in_place", [False, True])
def test_a_store_failure_leaves_no_book_behind(store, exported, tmp_path, monkeypatch, in_place):
    _, book = exported
    before, log = snapshot(book), store.audit_log(BATCH_ID)
    out = book if in_place else tmp_path / "next"
    _lose_the_compare_and_set(monkeypatch)
    with pytest.raises(BatchStatusError, match="run the command again") as refused:
        reconcile(BATCH_ID, hand_fills(tmp_path / "F.csv"), book, out, store=store)
    assert "changed by someone else meanwhile" in str(refused.value)
    assert store.load_batch(BATCH_ID).status == EXPORTED
    assert store.fills(BATCH_ID) == () and store.audit_log(BATCH_ID) == log
    assert snapshot(book) == before
    left = {p.name for p in tmp_path.iterdir()} - {"store.db"}  # SQLite's store
    assert left == {"F.csv", "book", "orders.csv"}  # no new book, no hidden or backup folder
    monkeypatch.undo()  # the store works again: the same command now goes through
    assert reconcile(BATCH_ID, tmp_path / "F.csv", book, out, store=store).batch.status == (
        RECONCILED
    )


def test_the_book_is_put_in_place_after_the_store_commits(store, exported, tmp_path, monkeypatch):
    _, book = exported
    seen = []
    commit = StagedBook.commit

    def watched(self):
        seen.append((store.load_batch(BATCH_ID).status, self.staging.is_dir(), self.out.exists()))
        return commit(self)

    monkeypatch.setattr(StagedBook, "commit", watched)
    reconcile(BATCH_ID, hand_fills(tmp_path / "F.csv"), book, tmp_path / "next", store=store)
    # Complete (staged) before, renamed after the store recorded the reconciliation.
    assert seen == [(RECONCILED, True, False)]
    assert (tmp_path / "next" / "lots.csv").exists()


def test_fills_template_fills_every_approved_order(store_url, tmp_path):
    with open_store(store_url) as store:
        exported_batch(store, tiny_book(tmp_path / "book"), tmp_path)
    runner = CliRunner()
    fills = tmp_path / "fills.csv"
    args = ["blotter", "fills-template", BATCH_ID, "--out", str(fills), "--db", store_url]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "5 fill rows written" in result.output
    assert fills.read_text().splitlines() == [
        "order_id,account_id,symbol,side,shares,price,date,lot_id",
        f"{order_id(1)},A1,BND,sell,50.0,70.0,2026-11-20,A1-L4",
        f"{order_id(2)},A1,VTI,sell,10.0,200.0,2026-11-20,A1-L1",
        f"{order_id(2)},A1,VTI,sell,5.0,200.0,2026-11-20,A1-L2",
        f"{order_id(3)},A1,ITOT,buy,20.0,100.0,2026-11-20,",
        f"{order_id(4)},A1,VTI,buy,4.0,200.0,2026-11-20,",
    ]  # A2 was not approved: no row
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "the file exists; nothing was written" in again.output
    with open_store(store_url) as store:
        done = reconcile(BATCH_ID, fills, tmp_path / "book", tmp_path / "next", store=store)
    assert {o.status for o in done.orders} == {"filled"}


def test_fills_template_needs_approved_orders(store, tmp_path):
    from planner.blotter.fills import fills_template

    batch = tiny_batch(tiny_book(tmp_path / "book"))
    store.save_batch(batch, batch.orders, batch.accounts)
    with pytest.raises(BlotterError, match="has no approved orders; nothing was written"):
        fills_template(store.load_batch(BATCH_ID), tmp_path / "fills.csv")
    assert not (tmp_path / "fills.csv").exists()


def test_fills_file_problems_are_all_listed(tmp_path):
    path = _write(
        tmp_path / "f.csv",
        "order_id,shares,price,date,colour\nX,-1,abc,2026-11-23,red\n,1,1,2026-11-23,\n",
    )
    with pytest.raises(BlotterError) as info:
        read_fills(path)
    text = str(info.value)
    assert "f.csv:1: colour: unknown column" in text
    with pytest.raises(BlotterError) as info:
        read_fills(
            _write(
                tmp_path / "g.csv",
                "order_id,shares,price,date\nX,-1,abc,2026-11-23\n,1,1,2026-11-23\n",
            )
        )
    text = str(info.value)
    assert "3 problems in the fills file" in text
    assert "g.csv:2: shares: expected a number > 0, got '-1'" in text
    assert "g.csv:2: price: expected a number > 0, got 'abc'" in text
    assert "g.csv:3: order_id: expected an order id, or account_id, symbol and side" in text
    with pytest.raises(BlotterError, match="ending in .csv or .parquet"):
        read_fills(tmp_path / "fills.txt")
    with pytest.raises(BlotterError, match="missing file"):
        read_fills(tmp_path / "absent.csv")


def test_cli_reconcile(store_url, tmp_path):
    with open_store(store_url) as store:
        _, book = exported_batch(store, tiny_book(tmp_path / "book"), tmp_path), tmp_path / "book"
    runner = CliRunner()
    fills = hand_fills(tmp_path / "FILLS.csv")
    args = ["reconcile", BATCH_ID, str(fills), "--out", str(tmp_path / "next"), "--db", store_url]
    bad = runner.invoke(app, ["reconcile", "B-NONE", *args[2:]])
    assert bad.exit_code == 1 and "no batch B-NONE" in bad.output
    # A message listing problems keeps its lines (not a literal "\\n").
    over = _write(tmp_path / "OVER.csv", HEADER + f"{order_id(4)},9,201,2026-11-23,\n")
    refused = runner.invoke(app, [*args[:2], str(over), *args[3:], "--book", str(book)])
    assert refused.exit_code == 1 and "\\n" not in refused.output, refused.output
    assert re.search(r"^  \S*OVER\.csv:2: shares: fills of order", refused.output, re.M)
    done = runner.invoke(app, [*args, "--book", str(book), "--by", "olivia"])
    assert done.exit_code == 0, done.output
    assert f"Batch {BATCH_ID} reconciled: 3 orders filled, 1 partial, 0 unfilled" in done.output
    assert "wrote the rolled-forward book" in done.output


def test_the_demo_from_plan_to_plan_again(store_url, tmp_path):
    """plan --save, approve (maker-checker, two approvers above the value threshold),
    export CSV/XLSX/FIX, reconcile fills with partial fills, roll forward, plan again: no
    account buys a wash group its household sold at a loss in the batch."""
    book = tmp_path / "demo"
    shutil.copytree(DEMO, book)
    runner = CliRunner()
    db = ["--db", store_url]

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    saved = run("plan", str(book), "--save", "--by", "alice", "--out", str(tmp_path / "o1"), *db)
    batch_id = re.search(r"Saved batch (\S+):", saved).group(1)
    run("blotter", "approve", batch_id, "--by", "bob", *db)
    with open_store(store_url) as store:
        if store.load_batch(batch_id).status != APPROVED:
            run("blotter", "approve", batch_id, "--by", "carol", *db)
        for fmt in ("csv", "xlsx", "fix"):
            run(
                "blotter",
                "export",
                batch_id,
                "--format",
                fmt,
                "--out",
                str(tmp_path / f"o.{fmt}"),
                *db,
            )
        batch = store.load_batch(batch_id)
    assert batch.status == EXPORTED
    fills = demo_fills(batch, tmp_path / "FILLS.csv", "2026-11-23")
    out = run(
        "reconcile", batch_id, str(fills), "--book", str(book), "--out", str(tmp_path / "next"), *db
    )
    assert "partial" in out and "reconciled" in out
    rolled = load_book(tmp_path / "next")
    frame = pd.read_csv(tmp_path / "next" / "trades.csv")
    new = frame[frame["trade_date"] == "2026-11-23"]
    assert len(new) >= len(batch.orders)
    taxable = {a for a, acc in rolled.accounts.items() if acc.taxable}
    group = {s: sec.wash_group for s, sec in rolled.securities.items()}
    household = {a: acc.household_id for a, acc in rolled.accounts.items()}
    losses = new[
        (new["side"] == "sell") & (new["realized_gain"] < 0) & new["account_id"].isin(taxable)
    ]
    blocked = {
        (household[a], group[s])
        for a, s in zip(losses["account_id"], losses["symbol"], strict=True)
    }
    assert blocked
    run("plan", str(tmp_path / "next"), "--out", str(tmp_path / "o2"), "--ignore-pending", *db)
    orders = pd.read_csv(tmp_path / "o2" / "orders.csv")
    buys = orders[orders["side"] == "buy"]
    washed = [(a, s) for a, s in zip(buys["account_id"], buys["symbol"], strict=True)
              if (household[a], group[s]) in blocked]  # fmt: skip
    assert washed == []


def test_fills_recorded_before_count_too(store, exported, tmp_path):
    """Fills already in the store (a batch marked filled elsewhere) are rolled forward
    with the file's, and count towards each order's total."""
    from planner.blotter.records import FILLED, Fill

    _, book = exported
    earlier = [Fill(BATCH_ID, order_id(4), 4.0, 201.0, TRADE_DAY)]
    store.record_fills(BATCH_ID, earlier, actor="broker", status=FILLED)
    empty = _write(tmp_path / "none.csv", HEADER)
    more = _write(tmp_path / "more.csv", HEADER + f"{order_id(4)},1,201,2026-11-23,\n")
    with pytest.raises(BlotterError, match="add up to 5 shares, more than the 4 ordered"):
        reconcile(BATCH_ID, more, book, tmp_path / "next", store=store)
    result = reconcile(BATCH_ID, empty, book, tmp_path / "next", store=store)
    assert result.batch.status == RECONCILED
    assert [(o.order.order_id, o.status) for o in result.orders if o.filled] == [
        (order_id(4), "filled")
    ]
    assert load_book(tmp_path / "next").holdings("A1")["VTI"] == 19.0


def test_a_parquet_fills_file_reads_as_the_csv(tmp_path):
    csv_rows = read_fills(hand_fills(tmp_path / "fills.csv"))
    frame = pd.read_csv(tmp_path / "fills.csv", dtype=str, keep_default_na=False)
    typed = frame.assign(
        shares=frame["shares"].astype(float),
        price=frame["price"].astype(float),
        date=pd.to_datetime(frame["date"]).dt.date,
    )
    typed.to_parquet(tmp_path / "fills.parquet")
    parquet_rows = read_fills(tmp_path / "fills.parquet")
    strip = [
        (r.order_id, r.account_id, r.shares, r.price, r.trade_date, r.lot_id) for r in csv_rows
    ]
    assert [
        (r.order_id, r.account_id, r.shares, r.price, r.trade_date, r.lot_id) for r in parquet_rows
    ] == strip
    assert parquet_rows[1].where == "fills.parquet:2"
