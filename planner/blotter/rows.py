"""Between the store's ORM rows (:mod:`planner.blotter.tables`) and the blotter's records
(:mod:`planner.blotter.records`): one function each way per table.

The columns a row and its record share are named once per table (``*_COLUMNS``) and
copied by :func:`_columns`; each function spells out only what differs (UTC on datetimes
read back, tuples in records and lists in rows, the ids the database assigns)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from planner.blotter.records import (
    AccountPlan,
    Approval,
    AuditEntry,
    Batch,
    BlotterOrder,
    Fill,
    LotInstruction,
)
from planner.blotter.tables import (
    AccountPlanRow,
    ApprovalRow,
    AuditRow,
    BatchRow,
    FillRow,
    LotInstructionRow,
    OrderRow,
)

BATCH_COLUMNS = (
    "batch_id",
    "proposer",
    "as_of",
    "package_version",
    "book_fingerprint",
    "book_path",
    "status",
)
ORDER_COLUMNS = (
    "order_id",
    "sequence",
    "account_id",
    "symbol",
    "side",
    "shares",
    "order_type",
    "limit_price",
    "time_in_force",
    "est_price",
    "est_value",
    "est_cost",
    "est_st_gain",
    "est_lt_gain",
    "est_tax",
    "reason",
)
LOT_COLUMNS = ("lot_id", "shares", "unit_cost", "acquired", "term", "realized_gain")
ACCOUNT_COLUMNS = ("account_id", "status")
APPROVAL_COLUMNS = ("batch_id", "approver")
FILL_COLUMNS = ("batch_id", "order_id", "shares", "price", "trade_date", "lot_id")
AUDIT_COLUMNS = (
    "batch_id",
    "actor",
    "action",
    "book_fingerprint",
    "detail",
    "from_status",
    "to_status",
)


def utc(moment: datetime) -> datetime:
    """``moment`` as UTC (SQLite hands back naive datetimes; everything stored is UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _columns(source: object, names: Sequence[str]) -> dict[str, Any]:
    """``source``'s attributes ``names``, as keyword arguments for the other side."""
    return {name: getattr(source, name) for name in names}


# -- rows to records ------------------------------------------------------------------------


def batch_record(row: BatchRow, orders=(), accounts=()) -> Batch:
    return Batch(
        **_columns(row, BATCH_COLUMNS),
        options=row.options,
        created_at=utc(row.created_at),
        orders=tuple(orders),
        accounts=tuple(accounts),
        revision=row.revision,
    )


def lot_record(row: LotInstructionRow) -> LotInstruction:
    return LotInstruction(**_columns(row, LOT_COLUMNS))


def order_record(row: OrderRow, lots: Sequence[LotInstructionRow]) -> BlotterOrder:
    return BlotterOrder(
        **_columns(row, ORDER_COLUMNS),
        batch_id=row.batch_id,
        flags=tuple(row.flags),
        lot_instructions=tuple(
            lot_record(lot) for lot in sorted(lots, key=lambda lot: lot.position)
        ),
    )


def account_record(row: AccountPlanRow) -> AccountPlan:
    return AccountPlan(
        **_columns(row, ACCOUNT_COLUMNS),
        batch_id=row.batch_id,
        summary=row.summary,
        flags=tuple(row.flags),
    )


def approval_record(row: ApprovalRow) -> Approval:
    return Approval(
        **_columns(row, APPROVAL_COLUMNS), at=utc(row.at), account_ids=tuple(row.account_ids)
    )


def fill_record(row: FillRow) -> Fill:
    return Fill(**_columns(row, FILL_COLUMNS), fill_id=row.fill_id)


def audit_record(row: AuditRow) -> AuditEntry:
    return AuditEntry(**_columns(row, AUDIT_COLUMNS), at=utc(row.at), entry_id=row.entry_id)


# -- records to rows (the database assigns revision 0 and the ids) ------------------------


def batch_row(batch: Batch) -> BatchRow:
    return BatchRow(
        **_columns(batch, BATCH_COLUMNS),
        options=dict(batch.options),
        created_at=batch.created_at,
        revision=0,
    )


def order_row(batch_id: str, order: BlotterOrder) -> OrderRow:
    return OrderRow(**_columns(order, ORDER_COLUMNS), batch_id=batch_id, flags=list(order.flags))


def lot_row(order_id: str, position: int, lot: LotInstruction) -> LotInstructionRow:
    return LotInstructionRow(**_columns(lot, LOT_COLUMNS), order_id=order_id, position=position)


def account_row(batch_id: str, account: AccountPlan) -> AccountPlanRow:
    return AccountPlanRow(
        **_columns(account, ACCOUNT_COLUMNS),
        batch_id=batch_id,
        summary=dict(account.summary),
        flags=list(account.flags),
    )


def approval_row(approval: Approval) -> ApprovalRow:
    return ApprovalRow(
        **_columns(approval, APPROVAL_COLUMNS),
        at=approval.at,
        account_ids=list(approval.account_ids),
    )


def fill_row(fill: Fill) -> FillRow:
    return FillRow(**_columns(fill, FILL_COLUMNS))


def audit_row(entry: AuditEntry) -> AuditRow:
    return AuditRow(**_columns(entry, AUDIT_COLUMNS), at=entry.at)
