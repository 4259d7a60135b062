"""Small batches for the blotter's tests, made without planning (fast), and a tiny book
folder for the steps that read the batch's book (settings and fingerprint)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from planner.blotter.fingerprint import book_fingerprint
from planner.blotter.records import AccountPlan, Batch, BlotterOrder, LotInstruction

BOOK_TOML = """[settings]
as_of = 2026-11-20

[blotter]
second_approval_tax = {tax}
second_approval_value = {value}
maker_checker = {maker_checker}
"""


def tiny_book(
    folder: Path, *, tax: float = 0.0, value: float = 0.0, maker_checker: bool = True
) -> Path:
    """A folder with the files the approval and export steps read: ``book.toml`` (the
    ``[blotter]`` settings) and a securities file (so the fingerprint covers a table)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "book.toml").write_text(
        BOOK_TOML.format(tax=tax, value=value, maker_checker=str(maker_checker).lower())
    )
    (folder / "securities.csv").write_text("symbol,asset_class,price,wash_group\nVTI,US,100,VTI\n")
    return folder


def _order(batch_id: str, n: int, account: str, symbol: str, side: str, lots=()) -> BlotterOrder:
    shares = sum(lot.shares for lot in lots) if lots else 10.0
    st = sum(lot.realized_gain for lot in lots if lot.term == "ST")
    lt = sum(lot.realized_gain for lot in lots if lot.term == "LT")
    return BlotterOrder(
        batch_id=batch_id,
        order_id=f"{batch_id}-{n:05d}",
        account_id=account,
        symbol=symbol,
        side=side,
        shares=shares,
        order_type="limit" if side == "sell" else "market",
        limit_price=99.5 if side == "sell" else None,
        time_in_force="day",
        est_price=100.0,
        est_value=shares * 100.0,
        est_cost=0.5,
        est_st_gain=st,
        est_lt_gain=lt,
        est_tax=st * 0.37 + lt * 0.2,
        reason=f"rebalance {symbol}",
        flags=("short_term_gain: realises $10.00 short-term",) if st > 0 else (),
        lot_instructions=tuple(lots),
        sequence=n,
    )


def sample_batch(
    book_path: Path, batch_id: str = "B20261120-120000-abcdef", proposer: str = "alice"
) -> Batch:
    """Two accounts: A1 sells VTI from two lots and buys BND; A2 buys VTI."""
    lots = (
        LotInstruction("A1-L1", 6.0, 90.0, date(2026, 3, 1), "ST", 60.0),
        LotInstruction("A1-L2", 4.0, 120.0, date(2020, 1, 2), "LT", -80.0),
    )
    orders = (
        _order(batch_id, 1, "A1", "VTI", "sell", lots),
        _order(batch_id, 2, "A1", "BND", "buy"),
        _order(batch_id, 3, "A2", "VTI", "buy"),
    )
    accounts = (
        AccountPlan(batch_id, "A1", {"account_id": "A1", "est_tax": 6.2, "value": 1e5}),
        AccountPlan(batch_id, "A2", {"account_id": "A2", "est_tax": 0.0, "value": 5e4}, flags=()),
    )
    return Batch(
        batch_id=batch_id,
        proposer=proposer,
        as_of=date(2026, 11, 20),
        options={"relief": "optimal", "accounts": None},
        package_version="0.1.0",
        book_fingerprint=book_fingerprint(book_path),
        book_path=str(book_path.resolve()),
        created_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        orders=orders,
        accounts=accounts,
    )


def saved(
    store,
    folder: Path,
    batch_id: str = "B20261120-120000-abcdef",
    proposer: str = "alice",
    **settings,
) -> Batch:
    """A sample batch recorded in ``store``, its book in ``folder`` with ``settings``."""
    batch = sample_batch(tiny_book(folder, **settings), batch_id, proposer)
    store.save_batch(batch, batch.orders, batch.accounts)
    return batch
