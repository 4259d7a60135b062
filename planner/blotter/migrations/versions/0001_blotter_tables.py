"""The blotter's first tables: batches, account plans, orders, lot instructions,
approvals, fills and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("proposer", sa.String(200), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("package_version", sa.String(64), nullable=False),
        sa.Column("book_fingerprint", sa.String(64), nullable=False),
        sa.Column("book_path", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
    )
    op.create_index("ix_batches_status", "batches", ["status"])
    op.create_table(
        "account_plans",
        sa.Column(
            "batch_id",
            sa.String(64),
            sa.ForeignKey("batches.batch_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(80), primary_key=True),
        sa.Column(
            "batch_id",
            sa.String(64),
            sa.ForeignKey("batches.batch_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("shares", sa.Double(), nullable=False),
        sa.Column("order_type", sa.String(8), nullable=False),
        sa.Column("limit_price", sa.Double(), nullable=True),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        sa.Column("est_price", sa.Double(), nullable=False),
        sa.Column("est_value", sa.Double(), nullable=False),
        sa.Column("est_cost", sa.Double(), nullable=False),
        sa.Column("est_st_gain", sa.Double(), nullable=False),
        sa.Column("est_lt_gain", sa.Double(), nullable=False),
        sa.Column("est_tax", sa.Double(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
    )
    op.create_index("ix_orders_batch_sequence", "orders", ["batch_id", "sequence"])
    op.create_table(
        "lot_instructions",
        sa.Column(
            "order_id",
            sa.String(80),
            sa.ForeignKey("orders.order_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("lot_id", sa.String(80), nullable=False),
        sa.Column("shares", sa.Double(), nullable=False),
        sa.Column("unit_cost", sa.Double(), nullable=False),
        sa.Column("acquired", sa.Date(), nullable=False),
        sa.Column("term", sa.String(2), nullable=False),
        sa.Column("realized_gain", sa.Double(), nullable=False),
    )
    op.create_table(
        "approvals",
        sa.Column("approval_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "batch_id",
            sa.String(64),
            sa.ForeignKey("batches.batch_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("approver", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_ids", sa.JSON(), nullable=False),
    )
    op.create_index("ix_approvals_batch_id", "approvals", ["batch_id"])
    op.create_table(
        "fills",
        sa.Column("fill_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "batch_id",
            sa.String(64),
            sa.ForeignKey("batches.batch_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "order_id",
            sa.String(80),
            sa.ForeignKey("orders.order_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("shares", sa.Double(), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("trade_date", sa.Date(), nullable=False),
        sa.Column("lot_id", sa.String(80), nullable=True),
    )
    op.create_index("ix_fills_batch_id", "fills", ["batch_id"])
    op.create_table(
        "audit_log",
        sa.Column("entry_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("book_fingerprint", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
    )
    op.create_index("ix_audit_log_batch_id", "audit_log", ["batch_id"])


def downgrade() -> None:
    for table in (
        "audit_log",
        "fills",
        "approvals",
        "lot_instructions",
        "orders",
        "account_plans",
        "batches",
    ):
        op.drop_table(table)
