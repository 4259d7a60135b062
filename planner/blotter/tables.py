"""The store's tables as SQLAlchemy 2 ORM classes.

The schema itself is made by the Alembic migrations in ``planner/blotter/migrations``;
these classes must match their head revision (a test compares the two). Money and shares
are double precision; dates are ``DATE``; times are UTC ``TIMESTAMP WITH TIME ZONE``;
flags, options and summaries are JSON.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Base of the store's ORM classes."""


class BatchRow(Base):
    """A batch; ``revision`` goes up by one on every change, which is how two concurrent
    changes are told apart (compare-and-set)."""

    __tablename__ = "batches"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    proposer: Mapped[str] = mapped_column(String(200))
    as_of: Mapped[date] = mapped_column(Date)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    package_version: Mapped[str] = mapped_column(String(64))
    book_fingerprint: Mapped[str] = mapped_column(String(64))
    book_path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


class AccountPlanRow(Base):
    """One account's summary row within a batch."""

    __tablename__ = "account_plans"

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.batch_id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    flags: Mapped[list[str]] = mapped_column(JSON)


class OrderRow(Base):
    """One order; ``sequence`` is its place in the batch (account, sells first, symbol)."""

    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_batch_sequence", "batch_id", "sequence"),)

    order_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.batch_id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    shares: Mapped[float] = mapped_column(Double)
    order_type: Mapped[str] = mapped_column(String(8))
    limit_price: Mapped[float | None] = mapped_column(Double, nullable=True)
    time_in_force: Mapped[str] = mapped_column(String(8))
    est_price: Mapped[float] = mapped_column(Double)
    est_value: Mapped[float] = mapped_column(Double)
    est_cost: Mapped[float] = mapped_column(Double)
    est_st_gain: Mapped[float] = mapped_column(Double)
    est_lt_gain: Mapped[float] = mapped_column(Double)
    est_tax: Mapped[float] = mapped_column(Double)
    reason: Mapped[str] = mapped_column(Text)
    flags: Mapped[list[str]] = mapped_column(JSON)


class LotInstructionRow(Base):
    """One lot a sell takes shares from (specific identification)."""

    __tablename__ = "lot_instructions"

    order_id: Mapped[str] = mapped_column(
        ForeignKey("orders.order_id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[str] = mapped_column(String(80))
    shares: Mapped[float] = mapped_column(Double)
    unit_cost: Mapped[float] = mapped_column(Double)
    acquired: Mapped[date] = mapped_column(Date)
    term: Mapped[str] = mapped_column(String(2))
    realized_gain: Mapped[float] = mapped_column(Double)


class ApprovalRow(Base):
    """One person's approval of a batch (``account_ids`` empty: all of it)."""

    __tablename__ = "approvals"

    approval_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.batch_id", ondelete="CASCADE"), index=True
    )
    approver: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    account_ids: Mapped[list[str]] = mapped_column(JSON)


class FillRow(Base):
    """An execution against an order."""

    __tablename__ = "fills"

    fill_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.batch_id", ondelete="CASCADE"), index=True
    )
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id", ondelete="CASCADE"))
    shares: Mapped[float] = mapped_column(Double)
    price: Mapped[float] = mapped_column(Double)
    trade_date: Mapped[date] = mapped_column(Date)
    lot_id: Mapped[str | None] = mapped_column(String(80), nullable=True)


class AuditRow(Base):
    """One line of the audit log; never updated or deleted."""

    __tablename__ = "audit_log"

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    book_fingerprint: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
