"""Between the store's ORM rows (:mod:`planner.blotter.tables`) and the blotter's records
(:mod:`planner.blotter.records`): one function each way per table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

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


def utc(moment: datetime) -> datetime:
    """``moment`` as UTC (SQLite hands back naive datetimes; everything stored is UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- rows to records ------------------------------------------------------------------------


def batch_record(row: BatchRow, orders=(), accounts=()) -> Batch:
    return Batch(
        batch_id=row.batch_id,
        proposer=row.proposer,
        as_of=row.as_of,
        options=row.options,
        package_version=row.package_version,
        book_fingerprint=row.book_fingerprint,
        book_path=row.book_path,
        created_at=utc(row.created_at),
        status=row.status,
        orders=tuple(orders),
        accounts=tuple(accounts),
        revision=row.revision,
    )


def order_record(row: OrderRow, lots: Sequence[LotInstructionRow]) -> BlotterOrder:
    return BlotterOrder(
        batch_id=row.batch_id,
        order_id=row.order_id,
        account_id=row.account_id,
        symbol=row.symbol,
        side=row.side,
        shares=row.shares,
        order_type=row.order_type,
        limit_price=row.limit_price,
        time_in_force=row.time_in_force,
        est_price=row.est_price,
        est_value=row.est_value,
        est_cost=row.est_cost,
        est_st_gain=row.est_st_gain,
        est_lt_gain=row.est_lt_gain,
        est_tax=row.est_tax,
        reason=row.reason,
        flags=tuple(row.flags),
        lot_instructions=tuple(
            LotInstruction(
                lot_id=lot.lot_id,
                shares=lot.shares,
                unit_cost=lot.unit_cost,
                acquired=lot.acquired,
                term=lot.term,
                realized_gain=lot.realized_gain,
            )
            for lot in sorted(lots, key=lambda lot: lot.position)
        ),
        sequence=row.sequence,
    )


def account_record(row: AccountPlanRow) -> AccountPlan:
    return AccountPlan(
        batch_id=row.batch_id,
        account_id=row.account_id,
        summary=row.summary,
        status=row.status,
        flags=tuple(row.flags),
    )


def approval_record(row: ApprovalRow) -> Approval:
    return Approval(
        batch_id=row.batch_id,
        approver=row.approver,
        at=utc(row.at),
        account_ids=tuple(row.account_ids),
    )


def fill_record(row: FillRow) -> Fill:
    return Fill(
        batch_id=row.batch_id,
        order_id=row.order_id,
        shares=row.shares,
        price=row.price,
        trade_date=row.trade_date,
        lot_id=row.lot_id,
        fill_id=row.fill_id,
    )


def audit_record(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        batch_id=row.batch_id,
        actor=row.actor,
        action=row.action,
        at=utc(row.at),
        book_fingerprint=row.book_fingerprint,
        detail=row.detail,
        from_status=row.from_status,
        to_status=row.to_status,
        entry_id=row.entry_id,
    )


# -- records to rows --------------------------------------------------------------------


def order_row(batch_id: str, order: BlotterOrder) -> OrderRow:
    return OrderRow(
        order_id=order.order_id,
        batch_id=batch_id,
        sequence=order.sequence,
        account_id=order.account_id,
        symbol=order.symbol,
        side=order.side,
        shares=order.shares,
        order_type=order.order_type,
        limit_price=order.limit_price,
        time_in_force=order.time_in_force,
        est_price=order.est_price,
        est_value=order.est_value,
        est_cost=order.est_cost,
        est_st_gain=order.est_st_gain,
        est_lt_gain=order.est_lt_gain,
        est_tax=order.est_tax,
        reason=order.reason,
        flags=list(order.flags),
    )


def lot_row(order_id: str, position: int, lot: LotInstruction) -> LotInstructionRow:
    return LotInstructionRow(
        order_id=order_id,
        position=position,
        lot_id=lot.lot_id,
        shares=lot.shares,
        unit_cost=lot.unit_cost,
        acquired=lot.acquired,
        term=lot.term,
        realized_gain=lot.realized_gain,
    )


def audit_row(entry: AuditEntry) -> AuditRow:
    return AuditRow(
        batch_id=entry.batch_id,
        actor=entry.actor,
        action=entry.action,
        at=entry.at,
        book_fingerprint=entry.book_fingerprint,
        detail=entry.detail,
        from_status=entry.from_status,
        to_status=entry.to_status,
    )
