"""Order files of an approved batch: a custodian-style CSV, an Excel workbook and FIX 4.4
NewOrderSingle messages. Only orders of approved accounts are written; every file carries
the batch id, and is written to a temporary file that is renamed into place when the store
has recorded the export (so a failed export leaves no file and no status change).

CSV (``--format csv``): one row per order, in sending order (by account, sells first):
``batch_id, order_id, account_id, symbol, side, quantity, order_type, limit_price,
time_in_force, est_price, est_value, lot_count`` and then ``lot_1_id, lot_1_shares,
lot_2_id, ...`` for as many lots as the batch's largest sell uses (specific
identification). Shares have 6 decimals, prices 4, dollars 2.

Excel (``--format xlsx``): sheets ``Orders`` (the CSV's columns but lots), ``Lot
instructions`` (one row per lot of a sell: lot id, shares, unit cost, acquired, term,
realised gain) and ``Summary`` (the batch: id, as-of, proposer, approvers, book
fingerprint, version; and one row per account: orders, buys, sells, estimated tax, flags).

FIX (``--format fix``): one NewOrderSingle (35=D) per order, FIX 4.4, one message per
line. Standard tags: 11 ClOrdID (the order id), 583 ClOrdLinkID (the batch id), 1 Account,
55 Symbol, 54 Side (1 buy, 2 sell), 38 OrderQty, 40 OrdType (1 market, 2 limit), 44 Price
(limit orders), 59 TimeInForce (0 day, 1 GTC, 2 OPG, 3 IOC), 21 HandlInst (1), 60
TransactTime, 52 SendingTime, 49/56 SenderCompID/TargetCompID, 34 MsgSeqNum. FIX 4.4 has
no field for tax lots, so lot instructions travel in a user-defined repeating group
(tags 5000-9999 are the user range): **9101 NoLotInstructions**, then per lot **9102
LotID** and **9103 LotQty** (shares), in the order the plan chose them.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from planner.blotter.fingerprint import ensure_book_unchanged
from planner.blotter.records import APPROVED, EXPORTED, Batch, BlotterOrder
from planner.blotter.store import Store
from planner.errors import BatchStatusError, OutputError

FORMATS = ("csv", "xlsx", "fix")

FIX_LOT_GROUP, FIX_LOT_ID, FIX_LOT_QTY = 9101, 9102, 9103
"""The user-defined FIX tags of the lot-instruction repeating group."""
FIX_SIDE = {"buy": "1", "sell": "2"}
FIX_ORD_TYPE = {"market": "1", "limit": "2"}
FIX_TIME_IN_FORCE = {"day": "0", "gtc": "1", "opg": "2", "ioc": "3"}

SHARES, PRICE, MONEY = 6, 4, 2
"""Decimals of shares, prices and dollars in the files."""

ORDER_FIELDS = (
    "batch_id",
    "order_id",
    "account_id",
    "symbol",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "time_in_force",
    "est_price",
    "est_value",
)


def approved_orders(batch: Batch) -> list[BlotterOrder]:
    """The batch's orders of approved accounts, in sending order."""
    approved = {a.account_id for a in batch.accounts if a.status == APPROVED}
    return [o for o in batch.orders if o.account_id in approved]


def _text(value: str) -> str:
    # A cell starting so is read as a formula by spreadsheets (CSV injection).
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") else value


def _order_cells(order: BlotterOrder) -> list[str]:
    return [
        order.batch_id,
        order.order_id,
        order.account_id,
        order.symbol,
        order.side,
        f"{order.shares:.{SHARES}f}",
        order.order_type,
        "" if order.limit_price is None else f"{order.limit_price:.{PRICE}f}",
        order.time_in_force,
        f"{order.est_price:.{PRICE}f}",
        f"{order.est_value:.{MONEY}f}",
    ]


def csv_text(batch: Batch, orders: Sequence[BlotterOrder]) -> str:
    """The custodian CSV of ``orders`` (see the module doc)."""
    most = max((len(o.lot_instructions) for o in orders), default=0)
    header = [*ORDER_FIELDS, "lot_count"]
    for n in range(1, most + 1):
        header += [f"lot_{n}_id", f"lot_{n}_shares"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for order in orders:
        row = _order_cells(order) + [str(len(order.lot_instructions))]
        for lot in order.lot_instructions:
            row += [_text(lot.lot_id), f"{lot.shares:.{SHARES}f}"]
        row += [""] * (len(header) - len(row))
        writer.writerow(row)
    return buffer.getvalue()


def write_xlsx(path: Path, batch: Batch, orders: Sequence[BlotterOrder]) -> None:
    """The workbook of ``orders`` (see the module doc) at ``path``."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "Orders"
    sheet.append([*ORDER_FIELDS, "est_cost", "est_st_gain", "est_lt_gain", "est_tax", "reason"])
    for o in orders:
        sheet.append(
            [
                o.batch_id,
                o.order_id,
                o.account_id,
                o.symbol,
                o.side,
                round(o.shares, SHARES),
                o.order_type,
                o.limit_price,
                o.time_in_force,
                round(o.est_price, PRICE),
                round(o.est_value, MONEY),
                round(o.est_cost, MONEY),
                round(o.est_st_gain, MONEY),
                round(o.est_lt_gain, MONEY),
                round(o.est_tax, MONEY),
                _text(o.reason),
            ]
        )
    lots = book.create_sheet("Lot instructions")
    lots.append(
        [
            "batch_id",
            "order_id",
            "account_id",
            "symbol",
            "lot_id",
            "shares",
            "unit_cost",
            "acquired",
            "term",
            "realized_gain",
        ]
    )
    for o in orders:
        for lot in o.lot_instructions:
            lots.append(
                [
                    o.batch_id,
                    o.order_id,
                    o.account_id,
                    o.symbol,
                    _text(lot.lot_id),
                    round(lot.shares, SHARES),
                    round(lot.unit_cost, PRICE),
                    lot.acquired,
                    lot.term,
                    round(lot.realized_gain, MONEY),
                ]
            )
    summary = book.create_sheet("Summary")
    for label, value in (
        ("batch_id", batch.batch_id),
        ("as_of", batch.as_of),
        ("status", batch.status),
        ("proposer", batch.proposer),
        ("created_at", batch.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("book", batch.book_path),
        ("book_fingerprint", batch.book_fingerprint),
        ("package_version", batch.package_version),
        ("orders", len(orders)),
    ):
        summary.append([label, value])
    summary.append([])
    summary.append(["account_id", "orders", "buys", "sells", "est_tax", "flags"])
    exported = {o.account_id for o in orders}
    for account in batch.accounts:
        if account.account_id not in exported:
            continue
        mine = [o for o in orders if o.account_id == account.account_id]
        summary.append(
            [
                account.account_id,
                len(mine),
                round(sum(o.est_value for o in mine if o.side == "buy"), MONEY),
                round(sum(o.est_value for o in mine if o.side == "sell"), MONEY),
                round(account.summary.get("est_tax") or 0.0, MONEY),
                "; ".join(account.flags),
            ]
        )
    for ws in (sheet, lots):
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
    # Fixed document times, so the workbook says when the batch was made, not exported.
    created = batch.created_at.replace(tzinfo=None)
    book.properties.created = created
    book.properties.modified = created
    book.properties.creator = "rebalance-planner"
    book.save(path)


def fix_messages(
    orders: Sequence[BlotterOrder],
    *,
    sender: str = "REBALANCE",
    target: str = "BROKER",
    sent_at: datetime | None = None,
) -> list[bytes]:
    """One encoded FIX 4.4 NewOrderSingle per order (see the module doc for the tags)."""
    import simplefix

    sent_at = (sent_at or datetime.now(UTC)).astimezone(UTC)
    stamp = sent_at.strftime("%Y%m%d-%H:%M:%S.") + f"{sent_at.microsecond // 1000:03d}"
    out = []
    for number, order in enumerate(orders, start=1):
        message = simplefix.FixMessage()
        message.append_pair(8, "FIX.4.4", header=True)
        message.append_pair(35, "D", header=True)
        message.append_pair(49, sender, header=True)
        message.append_pair(56, target, header=True)
        message.append_pair(34, number, header=True)
        message.append_pair(52, stamp, header=True)
        message.append_pair(11, order.order_id)
        message.append_pair(583, order.batch_id)
        message.append_pair(1, order.account_id)
        message.append_pair(21, "1")
        message.append_pair(55, order.symbol)
        message.append_pair(54, FIX_SIDE[order.side])
        message.append_pair(60, stamp)
        message.append_pair(38, f"{order.shares:.{SHARES}f}".rstrip("0").rstrip("."))
        message.append_pair(40, FIX_ORD_TYPE[order.order_type])
        if order.limit_price is not None:
            message.append_pair(44, f"{order.limit_price:.{PRICE}f}")
        message.append_pair(59, FIX_TIME_IN_FORCE[order.time_in_force])
        if order.lot_instructions:
            message.append_pair(FIX_LOT_GROUP, len(order.lot_instructions))
            for lot in order.lot_instructions:
                message.append_pair(FIX_LOT_ID, lot.lot_id)
                message.append_pair(FIX_LOT_QTY, f"{lot.shares:.{SHARES}f}".rstrip("0").rstrip("."))
        out.append(message.encode())
    return out


def _writer(fmt: str, batch: Batch, orders: Sequence[BlotterOrder]) -> Callable[[Path], None]:
    if fmt == "csv":
        text = csv_text(batch, orders)
        return lambda path: path.write_text(text, encoding="utf-8", newline="")
    if fmt == "xlsx":
        return lambda path: write_xlsx(path, batch, orders)
    messages = fix_messages(orders)
    return lambda path: path.write_bytes(b"".join(m + b"\n" for m in messages))


def export_batch(store: Store, batch_id: str, fmt: str, out: Path, by: str) -> Path:
    """Write the batch's approved orders to ``out`` in ``fmt`` (csv, xlsx or fix) and mark
    the batch ``exported`` (a batch already exported may be exported again, audited).
    Nothing is written and nothing changes if the batch is not approved, its book changed,
    or ``out`` cannot be written."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    batch = store.load_batch(batch_id)
    if batch.status not in (APPROVED, EXPORTED):
        raise BatchStatusError(
            f"batch {batch_id} is {batch.status}; only an approved batch is exported "
            f"(nothing written)"
        )
    ensure_book_unchanged(batch)
    orders = approved_orders(batch)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{out}: folder {folder} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write ({exc.strerror})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        _writer(fmt, batch, orders)(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        with store.change(batch_id, expect_revision=batch.revision) as change:
            detail = f"{fmt} {out.resolve()}: {len(orders)} orders"
            if change.status == APPROVED:
                change.move_to(EXPORTED, actor=by, action="export", detail=detail)
            elif change.status == EXPORTED:
                change.audit(actor=by, action="export", detail=detail)
            else:
                raise BatchStatusError(f"batch {batch_id} is now {change.status}; nothing written")
            # Renamed inside the transaction: if the store refuses, no file appears.
            os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()
    return out
