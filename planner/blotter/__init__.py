"""The trade blotter: saved batches of orders, their review (flags), approval
(maker-checker), export (CSV, xlsx, FIX 4.4), and the store they live in.

- :mod:`planner.blotter.records`: the domain objects (frozen dataclasses) and statuses.
- :mod:`planner.blotter.store`: the database (SQLAlchemy 2, Alembic migrations).
- :mod:`planner.blotter.batch`: a plan's result turned into a batch.
- :mod:`planner.blotter.flags`: the outlier rules.
- :mod:`planner.blotter.approvals`: approve, reject, cancel with maker-checker.
- :mod:`planner.blotter.export`: order files.
"""

from planner.blotter.records import (
    APPROVED,
    BATCH_STATUSES,
    CANCELLED,
    EXPORTED,
    FILLED,
    PENDING_STATUSES,
    PROPOSED,
    RECONCILED,
    REJECTED,
    TRANSITIONS,
    AccountPlan,
    Approval,
    AuditEntry,
    Batch,
    BatchSummary,
    BlotterOrder,
    Fill,
    LotInstruction,
    can_move,
)

__all__ = [
    "APPROVED",
    "BATCH_STATUSES",
    "CANCELLED",
    "EXPORTED",
    "FILLED",
    "PENDING_STATUSES",
    "PROPOSED",
    "RECONCILED",
    "REJECTED",
    "TRANSITIONS",
    "AccountPlan",
    "Approval",
    "AuditEntry",
    "Batch",
    "BatchSummary",
    "BlotterOrder",
    "Fill",
    "LotInstruction",
    "can_move",
]
