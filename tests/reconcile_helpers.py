"""A tiny hand-checked book and a batch over it, for the roll-forward, reconciliation,
report and notice tests; and fills files made from a batch's orders.

The book (as of 2026-11-20, no commissions): account A1 (taxable, household H1, cash
$1,000, a $500 contribution pending) holds

- A1-L1: 10 VTI at $250, bought 2026-03-02 (a short-term loss at $200);
- A1-L2: 5 VTI at $150, bought 2020-01-02 (a long-term gain);
- A1-L3: 100 BND at $70, bought 2026-11-10 (recent: it replaces a loss sale of BND);
- A1-L4: 50 BND at $80, bought 2024-01-05 (a long-term loss at $70);

and sold 10 ITOT at a $100 loss on 2026-11-05 (trades.csv). Account A2 (household H2)
holds 3 VTI. VTI, ITOT and BND are each their own wash group.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from planner.blotter.fingerprint import book_fingerprint
from planner.blotter.records import AccountPlan, Batch, BlotterOrder, LotInstruction

AS_OF = date(2026, 11, 20)
TRADE_DAY = date(2026, 11, 23)
BATCH_ID = "B20261120-120000-0a0b0c"

FILES = {
    "securities.csv": (
        "symbol,asset_class,price,wash_group\n"
        "VTI,US_EQUITY,200,VTI\nITOT,US_EQUITY,100,ITOT\nBND,US_BONDS,70,BND\n"
    ),
    "models.toml": (
        "[m]\ncash = 0.02\ncash_band = { abs = 0.01 }\n[m.bands]\nabs = 0.05\n"
        '[m.classes.US_EQUITY]\ntarget = 0.6\nsecurities = ["VTI", "ITOT"]\n'
        '[m.classes.US_BONDS]\ntarget = 0.38\nsecurities = ["BND"]\n'
    ),
    "accounts.csv": (
        "account_id,model,household_id,registration,cash,st_rate,lt_rate,cash_flow\n"
        "A1,m,H1,taxable,1000,0.4,0.2,500\nA2,m,H2,taxable,50,0.4,0.2,0\n"
    ),
    "lots.csv": (
        "account_id,lot_id,symbol,shares,unit_cost,acquired\n"
        "A1,A1-L1,VTI,10,250,2026-03-02\nA1,A1-L2,VTI,5,150,2020-01-02\n"
        "A1,A1-L3,BND,100,70,2026-11-10\nA1,A1-L4,BND,50,80,2024-01-05\n"
        "A2,A2-L1,VTI,3,100,2020-01-02\n"
    ),
    "trades.csv": (
        "account_id,trade_date,symbol,side,shares,price,realized_gain\n"
        "A1,2026-11-05,ITOT,sell,10,100,-100\nA1,2026-11-10,BND,buy,100,70,\n"
    ),
    "book.toml": "[settings]\nas_of = 2026-11-20  # the demo's date\n\n[blotter]\nflag_turnover = 0.9\n",
}


def tiny_book(folder: Path) -> Path:
    """Write the tiny book into ``folder``; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        (folder / name).write_text(text)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a folder, by name: to show that nothing changed."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _order(n: int, account: str, symbol: str, side: str, shares: float, price: float,
           lots: tuple[LotInstruction, ...] = (), reason: str = "") -> BlotterOrder:  # fmt: skip
    st = sum(i.realized_gain for i in lots if i.term == "ST")
    lt = sum(i.realized_gain for i in lots if i.term == "LT")
    return BlotterOrder(
        batch_id=BATCH_ID,
        order_id=f"{BATCH_ID}-{n:05d}",
        account_id=account,
        symbol=symbol,
        side=side,
        shares=shares,
        order_type="market",
        limit_price=None,
        time_in_force="day",
        est_price=price,
        est_value=shares * price,
        est_cost=0.0,
        est_st_gain=st,
        est_lt_gain=lt,
        est_tax=st * 0.4 + lt * 0.2,
        reason=reason or f"rebalance {symbol}",
        lot_instructions=lots,
        sequence=n,
    )


def tiny_batch(book: Path) -> Batch:
    """A1 sells 15 VTI (lots L1 and L2) and 50 BND (lot L4), buys 20 ITOT and 4 VTI;
    A2 buys 10 BND (the tests leave A2 unapproved)."""
    orders = (
        _order(1, "A1", "BND", "sell", 50, 70,
               (LotInstruction("A1-L4", 50, 80, date(2024, 1, 5), "LT", -500),),
               "raise cash for withdrawal of $1: US_BONDS 40.0% -> 38.0% (target 38.0%)"),
        _order(2, "A1", "VTI", "sell", 15, 200,
               (LotInstruction("A1-L1", 10, 250, date(2026, 3, 2), "ST", -500),
                LotInstruction("A1-L2", 5, 150, date(2020, 1, 2), "LT", 250))),
        _order(3, "A1", "ITOT", "buy", 20, 100),
        _order(4, "A1", "VTI", "buy", 4, 200),
        _order(5, "A2", "BND", "buy", 10, 70),
    )  # fmt: skip
    summary = {
        "model": "m",
        "decision": "full",
        "status": "optimal",
        "value": 15000.0,
        "turnover": 0.3,
        "te_before": 0.02,
        "te_after": 0.001,
        "est_cost": 0.0,
        "realized_st": -500.0,
        "realized_lt": -250.0,
        "est_tax": -300.0,
        "carryforward_added": 0.0,
        "harvested_loss": 0.0,
        "reasons": "US_BONDS 60.0% > 43.0% upper band",
        "message": None,
        "pre_US_EQUITY": 0.36,
        "post_US_EQUITY": 0.58,
        "pre_US_BONDS": 0.57,
        "post_US_BONDS": 0.39,
        "pre_CASH": 0.07,
        "post_CASH": 0.03,
    }
    accounts = (
        AccountPlan(BATCH_ID, "A1", {"account_id": "A1", **summary}),
        AccountPlan(
            BATCH_ID,
            "A2",
            {**summary, "account_id": "A2", "realized_st": 0.0, "realized_lt": 0.0, "est_tax": 0.0},
        ),
    )
    return Batch(
        batch_id=BATCH_ID,
        proposer="alice",
        as_of=AS_OF,
        options={"relief": "optimal"},
        package_version="0.1.0",
        book_fingerprint=book_fingerprint(book),
        book_path=str(book.resolve()),
        created_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        orders=orders,
        accounts=accounts,
    )


def exported_batch(store, book: Path, out: Path, accounts=("A1",)) -> Batch:
    """The tiny batch saved, approved for ``accounts`` by bob (alice proposed it) and
    exported to CSV, through the blotter's own steps."""
    from planner.blotter.approvals import approve
    from planner.blotter.export import export_batch

    batch = tiny_batch(book)
    store.save_batch(batch, batch.orders, batch.accounts)
    approve(store, batch.batch_id, "bob", list(accounts))
    export_batch(store, batch.batch_id, "csv", out / "orders.csv", by="bob")
    return store.load_batch(batch.batch_id)


def order_id(n: int) -> str:
    return f"{BATCH_ID}-{n:05d}"


def hand_fills(path: Path) -> Path:
    """The hand-checked fills of the tiny batch, on 2026-11-23: order 2 (sell 15 VTI) as a
    row naming lot A1-L1 and a row without a lot (so the instructions give A1-L2); order
    1 (sell 50 BND) partly, 30 shares, without a lot; order 3 (buy 20 ITOT) by account,
    symbol and side; order 4 (buy 4 VTI) at $201."""
    rows = [
        {"order_id": order_id(2), "shares": "5", "price": "200", "date": "2026-11-23"},
        {"order_id": order_id(2), "shares": "10", "price": "200", "date": "2026-11-23",
         "lot_id": "A1-L1"},
        {"order_id": order_id(1), "shares": "30", "price": "70", "date": "2026-11-23"},
        {"account_id": "A1", "symbol": "ITOT", "side": "buy", "shares": "20", "price": "101",
         "date": "2026-11-23"},
        {"order_id": order_id(4), "shares": "4", "price": "201", "date": "2026-11-23"},
    ]  # fmt: skip
    columns = ["order_id", "account_id", "symbol", "side", "shares", "price", "date", "lot_id"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def demo_fills(batch: Batch, path: Path, day: str) -> Path:
    """Fills of every approved order of ``batch`` at its estimated price on ``day``: every
    fifth order only half filled (a partial fill), and every sell from several lots as one
    row per lot named."""
    approved = {a.account_id for a in batch.accounts if a.status == "approved"}
    rows = []
    for k, o in enumerate(o for o in batch.orders if o.account_id in approved):
        if o.side == "sell" and len(o.lot_instructions) > 1:
            for lot in o.lot_instructions:
                rows.append((o.order_id, lot.shares, o.est_price, day, lot.lot_id))
            continue
        half = o.shares // 2 if o.shares >= 2 else round(o.shares / 2, 6)
        shares = o.shares if k % 5 else half
        rows.append((o.order_id, shares, o.est_price, day, ""))
    frame = pd.DataFrame(rows, columns=["order_id", "shares", "price", "date", "lot_id"])
    frame.to_csv(path, index=False)
    return path
