"""The blotter's domain objects: batches, their orders with lot instructions, account plans,
approvals, fills and the audit log, as frozen dataclasses.

These are what :mod:`planner.blotter.store` loads and saves; nothing here touches a
database. Money is in dollars, shares in shares, prices in dollars per share, dates are
``datetime.date`` and times are timezone-aware UTC ``datetime.datetime``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from planner.domain import FrozenDict

# -- batch status names and the moves between them ---------------------------------------

PROPOSED = "proposed"
APPROVED = "approved"
EXPORTED = "exported"
FILLED = "filled"
RECONCILED = "reconciled"
REJECTED = "rejected"
CANCELLED = "cancelled"

BATCH_STATUSES: tuple[str, ...] = (
    PROPOSED,
    APPROVED,
    EXPORTED,
    FILLED,
    RECONCILED,
    REJECTED,
    CANCELLED,
)
"""Every status a batch can have, in lifecycle order."""

TRANSITIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        PROPOSED: frozenset({APPROVED, REJECTED, CANCELLED}),
        # An approved batch may be exported again (a lost file) without changing status;
        # re-export is not a transition, so it is not listed here.
        APPROVED: frozenset({EXPORTED, REJECTED, CANCELLED}),
        # A batch can be reconciled straight from exported (the fills come with the
        # reconciliation) or after fills were recorded separately.
        EXPORTED: frozenset({FILLED, RECONCILED, CANCELLED}),
        FILLED: frozenset({RECONCILED}),
        RECONCILED: frozenset(),
        REJECTED: frozenset(),
        CANCELLED: frozenset(),
    }
)
"""For each status, the statuses a batch may move to next."""

PENDING_STATUSES: frozenset[str] = frozenset({APPROVED, EXPORTED, FILLED})
"""Statuses of a batch whose orders may be in the market: its accounts are not planned
again (summary status ``pending_batch``) until it is reconciled, unless asked."""

FINAL_STATUSES: frozenset[str] = frozenset({RECONCILED, REJECTED, CANCELLED})
"""Statuses a batch never leaves."""


def can_move(from_status: str, to_status: str) -> bool:
    """True when a batch in ``from_status`` may move to ``to_status``."""
    return to_status in TRANSITIONS.get(from_status, frozenset())


# -- order vocabulary ---------------------------------------------------------------------

SIDES: tuple[str, ...] = ("sell", "buy")
"""Order sides, in the order orders are listed within an account (sells first)."""

ORDER_TYPES: tuple[str, ...] = ("market", "limit")
TIMES_IN_FORCE: tuple[str, ...] = ("day", "gtc", "opg", "ioc")
"""Time-in-force values: day, good till cancelled, at the opening, immediate or cancel."""

ACCOUNT_PLAN_STATUSES: tuple[str, ...] = (PROPOSED, APPROVED, REJECTED)
"""Status of one account's plan inside a batch: an approval may cover some accounts only
(``approve --accounts``); the others stay proposed."""


def _readonly(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # A read-only dict that pickles and that dataclasses.asdict can copy (MappingProxyType
    # does neither).
    return FrozenDict(mapping or {})


@dataclass(frozen=True)
class LotInstruction:
    """Specific identification for a sell: take ``shares`` from lot ``lot_id``.

    ``unit_cost`` in dollars per share, ``acquired`` the lot's purchase date, ``term``
    ``ST`` or ``LT`` on the trade date, ``realized_gain`` in dollars at the estimated price.
    """

    lot_id: str
    shares: float
    unit_cost: float
    acquired: date
    term: str
    realized_gain: float


@dataclass(frozen=True)
class BlotterOrder:
    """One order of a batch.

    ``shares`` are positive for both sides; ``limit_price`` is ``None`` for market orders;
    ``est_price`` dollars per share, ``est_value`` dollars (shares x price), ``est_cost``
    dollars of spread and commission; ``est_st_gain``/``est_lt_gain`` dollars realised by a
    sell (0 for buys); ``est_tax`` the order's tax at the account's rates (negative: a
    saving; the account's exact netted figure is on its :class:`AccountPlan`). ``flags``
    name the outlier rules this order trips (see :mod:`planner.blotter.flags`).
    ``sequence`` orders the batch: by account, sells before buys, then symbol.
    """

    batch_id: str
    order_id: str
    account_id: str
    symbol: str
    side: str
    shares: float
    order_type: str
    limit_price: float | None
    time_in_force: str
    est_price: float
    est_value: float
    est_cost: float
    est_st_gain: float
    est_lt_gain: float
    est_tax: float
    reason: str
    flags: tuple[str, ...] = ()
    lot_instructions: tuple[LotInstruction, ...] = ()
    sequence: int = 0


@dataclass(frozen=True)
class AccountPlan:
    """One account's part of a batch: its ``plan summary.csv`` row as a read-only mapping
    (``summary``; keys are the summary's columns, values as planned), its status within the
    batch (one of :data:`ACCOUNT_PLAN_STATUSES`) and the account-level outlier flags."""

    batch_id: str
    account_id: str
    summary: Mapping[str, Any]
    status: str = PROPOSED
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", _readonly(self.summary))


@dataclass(frozen=True)
class Batch:
    """A saved plan: the unit that is approved, exported, filled and reconciled.

    ``options`` are the plan's options (CLI flags and their values) as a read-only mapping;
    ``package_version`` the planner's version that made it; ``book_fingerprint`` a SHA-256
    hex digest of the book's files and settings (see :func:`planner.blotter.fingerprint.
    book_fingerprint`); ``book_path`` the book folder as given, resolved to an absolute
    path; ``created_at`` UTC; ``status`` one of :data:`BATCH_STATUSES`.
    ``orders`` and ``accounts`` are filled in when loaded with
    :func:`planner.blotter.store.load_batch` (empty in listings). ``revision`` counts the
    changes made to the batch in the store (pass it to :meth:`Store.change` to act only
    on the batch as it was read).
    """

    batch_id: str
    proposer: str
    as_of: date
    options: Mapping[str, Any]
    package_version: str
    book_fingerprint: str
    book_path: str
    created_at: datetime
    status: str = PROPOSED
    orders: tuple[BlotterOrder, ...] = ()
    accounts: tuple[AccountPlan, ...] = ()
    revision: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _readonly(self.options))

    @property
    def account_ids(self) -> tuple[str, ...]:
        """The batch's account ids, sorted."""
        return tuple(sorted(a.account_id for a in self.accounts))


@dataclass(frozen=True)
class BatchSummary:
    """A line of ``blotter list``: a batch with its account and order counts."""

    batch_id: str
    status: str
    as_of: date
    proposer: str
    created_at: datetime
    accounts: int
    orders: int
    flagged_orders: int = 0


@dataclass(frozen=True)
class Approval:
    """One person's approval of a batch (``account_ids`` empty: the whole batch), at ``at``
    (UTC)."""

    batch_id: str
    approver: str
    at: datetime
    account_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fill:
    """An execution recorded against an order: ``shares`` at ``price`` dollars per share on
    ``trade_date``; ``lot_id`` names the lot a sell relieved (``None``: the approved lot
    instructions apply)."""

    batch_id: str
    order_id: str
    shares: float
    price: float
    trade_date: date
    lot_id: str | None = None
    fill_id: int | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: ``actor`` did ``action`` to ``batch_id`` at ``at`` (UTC),
    when the batch's book had ``book_fingerprint``; ``detail`` is free text (a reason, the
    accounts approved, an export path)."""

    batch_id: str
    actor: str
    action: str
    at: datetime
    book_fingerprint: str
    detail: str = ""
    from_status: str | None = None
    to_status: str | None = None
    entry_id: int | None = None


@dataclass(frozen=True)
class NewBatch:
    """What :func:`planner.blotter.store.save_batch` needs to record a batch (the store
    assigns nothing; ids and times come from :mod:`planner.blotter.batch`)."""

    batch: Batch
    orders: tuple[BlotterOrder, ...] = field(default_factory=tuple)
    accounts: tuple[AccountPlan, ...] = field(default_factory=tuple)
