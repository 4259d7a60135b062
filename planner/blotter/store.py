"""The blotter's store: batches, orders, approvals, fills and the audit log in one
database, through SQLAlchemy 2.

Which database: ``--db URL``, else ``$REBALANCE_DB``, else ``rebalance.db`` (SQLite) in the
current folder (:func:`resolve_db_url`); any SQLAlchemy URL works the same way. Opening a
store brings its schema to the newest Alembic revision.

Every change to a batch is one transaction (:meth:`Store.change`): the batch row is read
(``SELECT ... FOR UPDATE`` on PostgreSQL, which holds other writers until commit), the
change is checked, and the batch's ``revision`` is moved on with a conditional
``UPDATE ... WHERE revision = <the one read>``. Of two concurrent changes, on any database,
only one matches that row; the other is rolled back whole with :class:`BatchStatusError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from planner.blotter import rows as convert
from planner.blotter.records import (
    PENDING_STATUSES,
    AccountPlan,
    Approval,
    AuditEntry,
    Batch,
    BatchSummary,
    BlotterOrder,
    Fill,
    can_move,
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
from planner.errors import BatchStatusError, BlotterError, ConfigError, UnknownBatchError

DB_ENV = "REBALANCE_DB"
"""Environment variable naming the store's URL when ``--db`` is not given."""

DEFAULT_DB_FILE = "rebalance.db"
"""The SQLite file used when neither ``--db`` nor ``$REBALANCE_DB`` is set."""

MIGRATIONS = Path(__file__).with_name("migrations")


def resolve_db_url(db: str | None = None, folder: Path | None = None) -> str:
    """The store's URL: ``db`` if given, else ``$REBALANCE_DB``, else the SQLite file
    ``rebalance.db`` in ``folder`` (default: the current folder). A plain path (no
    ``scheme://``) is taken as a SQLite file."""
    chosen = db or os.environ.get(DB_ENV) or ""
    if not chosen:
        chosen = str((folder or Path.cwd()) / DEFAULT_DB_FILE)
    if "://" not in chosen:
        return f"sqlite:///{Path(chosen).expanduser().resolve()}"
    return chosen


def open_store(db: str | None = None, *, migrate: bool = True) -> Store:
    """Open the store at ``db`` (a URL or SQLite path; see :func:`resolve_db_url`) and bring
    its schema to the newest revision. Raises :class:`ConfigError` naming the URL when it
    is malformed, its driver is missing, or the database cannot be reached."""
    url = resolve_db_url(db)
    try:
        engine = _engine(url)
        if migrate:
            _upgrade(engine)
    except (ArgumentError, ModuleNotFoundError, ImportError) as exc:
        raise ConfigError(f"--db {_safe(url)}: not a usable database URL ({exc})") from exc
    except OperationalError as exc:
        raise ConfigError(f"--db {_safe(url)}: cannot open the store ({exc.orig})") from exc
    return Store(url=url, engine=engine)


def _safe(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # Wait up to 30 s for another writer rather than failing at once; foreign keys are
        # off by default in SQLite.
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _alembic_config(connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(engine: Engine) -> None:
    """Run the migrations up to head, unless the store is already there."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with engine.connect() as connection:
        heads = set(ScriptDirectory(str(MIGRATIONS)).get_heads())
        if set(MigrationContext.configure(connection).get_current_heads()) == heads:
            return
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Two first opens at once: the second waits here, then finds the tables made.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7105150001)")
        command.upgrade(_alembic_config(connection), "head")


STORE_LOCK = 7105150002
"""PostgreSQL advisory lock key of the changes that read other batches (the migrations'
first-open lock is 7105150001)."""


def _lock_store(session: Session) -> None:
    """Hold a store-wide lock until the transaction ends: PostgreSQL's transaction-level
    advisory lock; on SQLite the file's write lock, taken now by an update that changes
    nothing (another writer waits for it, up to the busy timeout)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(STORE_LOCK)))
    else:
        session.execute(update(BatchRow).where(BatchRow.revision < 0).values(revision=0))


def _pending(session: Session) -> dict[str, str]:
    """See :meth:`Store.pending_accounts`."""
    rows = session.execute(
        select(AccountPlanRow.account_id, AccountPlanRow.batch_id)
        .join(BatchRow, BatchRow.batch_id == AccountPlanRow.batch_id)
        .where(BatchRow.status.in_(sorted(PENDING_STATUSES)))
        .where(AccountPlanRow.status == "approved")
        .order_by(AccountPlanRow.batch_id)
    )
    return {account_id: batch_id for account_id, batch_id in rows}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# -- a change in progress -------------------------------------------------------------------


@dataclass
class BatchChange:
    """The changes to one batch being made in one transaction (see :meth:`Store.change`).

    ``batch`` (with its orders and accounts), ``approvals`` and ``fills`` are as read at
    the start, under the lock. Calls only collect the changes; they are written, with one
    audit entry per call, when the ``with`` block ends without an error.
    """

    batch: Batch
    approvals: tuple[Approval, ...]
    fills: tuple[Fill, ...]
    pending_elsewhere: Mapping[str, str] = field(default_factory=dict)
    """With ``Store.change(..., others=True)``: the accounts of other batches whose orders
    may be in the market (account id -> batch id), read under the store-wide lock."""
    status: str = ""
    _new_approvals: list[Approval] = field(default_factory=list)
    _new_fills: list[Fill] = field(default_factory=list)
    _account_status: dict[str, str] = field(default_factory=dict)
    _summary_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    _audit: list[AuditEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = self.batch.status

    def move_to(self, status: str, *, actor: str, action: str, detail: str = "") -> None:
        """Move the batch to ``status``; :class:`BatchStatusError` (nothing changed) when
        the lifecycle does not allow it from the current status."""
        if not can_move(self.status, status):
            raise BatchStatusError(
                f"batch {self.batch.batch_id} is {self.status}; it cannot become {status} "
                f"(nothing changed)"
            )
        self.audit(actor=actor, action=action, detail=detail, to_status=status)
        self.status = status

    def add_approval(self, approver: str, account_ids: Iterable[str] = ()) -> Approval:
        """Record ``approver``'s approval of the batch (or of ``account_ids`` only)."""
        approval = Approval(self.batch.batch_id, approver, _now(), tuple(sorted(account_ids)))
        self._new_approvals.append(approval)
        return approval

    def set_account_status(self, account_ids: Iterable[str], status: str) -> None:
        """Set the status of some of the batch's accounts (``proposed``, ``approved``,
        ``rejected``)."""
        known = {a.account_id for a in self.batch.accounts}
        for account_id in account_ids:
            if account_id not in known:
                raise BlotterError(
                    f"batch {self.batch.batch_id} has no account {account_id} (nothing changed)"
                )
            self._account_status[account_id] = status

    def update_summary(self, account_id: str, values: Mapping[str, Any]) -> None:
        """Add ``values`` (JSON-able) to an account's summary, e.g. what its fills did."""
        if account_id not in {a.account_id for a in self.batch.accounts}:
            raise BlotterError(
                f"batch {self.batch.batch_id} has no account {account_id} (nothing changed)"
            )
        self._summary_updates.setdefault(account_id, {}).update(values)

    def add_fills(self, fills: Iterable[Fill]) -> None:
        """Record executions; each names an order of this batch."""
        orders = {o.order_id for o in self.batch.orders}
        for fill in fills:
            if fill.order_id not in orders:
                raise BlotterError(
                    f"batch {self.batch.batch_id} has no order {fill.order_id} (nothing changed)"
                )
            self._new_fills.append(replace(fill, batch_id=self.batch.batch_id, fill_id=None))

    def audit(
        self, *, actor: str, action: str, detail: str = "", to_status: str | None = None
    ) -> None:
        """Add an audit entry (who, what, when, the batch's book fingerprint)."""
        self._audit.append(
            AuditEntry(
                batch_id=self.batch.batch_id,
                actor=actor,
                action=action,
                at=_now(),
                book_fingerprint=self.batch.book_fingerprint,
                detail=detail,
                from_status=self.status if to_status else None,
                to_status=to_status,
            )
        )

    def account_statuses(self) -> dict[str, str]:
        """Every account's status, with the changes made so far."""
        return {
            a.account_id: self._account_status.get(a.account_id, a.status)
            for a in self.batch.accounts
        }


# -- the store ------------------------------------------------------------------------------


@dataclass
class Store:
    """An open store. Use :func:`open_store`; close with :meth:`close` (or ``with``)."""

    url: str
    engine: Engine
    _sessions: sessionmaker = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the store's connections."""
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        """``sqlite``, ``postgresql``, ..."""
        return self.engine.dialect.name

    # reads

    def load_batch(self, batch_id: str) -> Batch:
        """The batch with its orders (in sequence, with lot instructions) and account plans
        (by account id); :class:`UnknownBatchError` if there is none."""
        with self._sessions() as session:
            return self._load(session, batch_id)

    def list_batches(self) -> list[BatchSummary]:
        """Every batch, newest first (ties by id), with its account and order counts."""
        with self._sessions() as session:
            accounts = dict(
                session.execute(
                    select(AccountPlanRow.batch_id, func.count()).group_by(AccountPlanRow.batch_id)
                ).all()
            )
            orders: dict[str, list[int]] = {}
            for batch_id, flags in session.execute(select(OrderRow.batch_id, OrderRow.flags)):
                counts = orders.setdefault(batch_id, [0, 0])
                counts[0] += 1
                counts[1] += bool(flags)
            rows = session.scalars(select(BatchRow)).all()
            summaries = [
                BatchSummary(
                    batch_id=row.batch_id,
                    status=row.status,
                    as_of=row.as_of,
                    proposer=row.proposer,
                    created_at=convert.utc(row.created_at),
                    accounts=accounts.get(row.batch_id, 0),
                    orders=orders.get(row.batch_id, [0, 0])[0],
                    flagged_orders=orders.get(row.batch_id, [0, 0])[1],
                )
                for row in rows
            ]
        summaries.sort(key=lambda s: s.batch_id)
        summaries.sort(key=lambda s: s.created_at, reverse=True)
        return summaries

    def approvals(self, batch_id: str) -> tuple[Approval, ...]:
        """The batch's approvals, oldest first."""
        with self._sessions() as session:
            self._row(session, batch_id)
            rows = session.scalars(
                select(ApprovalRow)
                .where(ApprovalRow.batch_id == batch_id)
                .order_by(ApprovalRow.approval_id)
            )
            return tuple(convert.approval_record(r) for r in rows)

    def fills(self, batch_id: str) -> tuple[Fill, ...]:
        """The fills recorded against the batch's orders, in the order recorded."""
        with self._sessions() as session:
            self._row(session, batch_id)
            return self._fills(session, batch_id)

    def audit_log(self, batch_id: str | None = None) -> tuple[AuditEntry, ...]:
        """The audit log (of one batch, or all), oldest first."""
        with self._sessions() as session:
            query = select(AuditRow).order_by(AuditRow.entry_id)
            if batch_id is not None:
                query = query.where(AuditRow.batch_id == batch_id)
            return tuple(convert.audit_record(r) for r in session.scalars(query))

    def pending_accounts(self) -> dict[str, str]:
        """Accounts whose orders may be in the market: account id -> the id of its
        approved, exported or filled batch (the account's plan approved, not rejected)."""
        with self._sessions() as session:
            return _pending(session)

    # writes

    def save_batch(
        self,
        batch: Batch,
        orders: Sequence[BlotterOrder],
        accounts: Sequence[AccountPlan],
        *,
        actor: str | None = None,
    ) -> None:
        """Record a new batch with its orders and account plans, and an audit entry
        ``propose`` by ``actor`` (default: the proposer), in one transaction."""
        with self._sessions.begin() as session:
            session.add(convert.batch_row(batch))
            session.flush()
            session.add_all(convert.account_row(batch.batch_id, a) for a in accounts)
            for order in orders:
                session.add(convert.order_row(batch.batch_id, order))
            session.flush()
            for order in orders:
                session.add_all(
                    convert.lot_row(order.order_id, position, lot)
                    for position, lot in enumerate(order.lot_instructions)
                )
            session.add(
                convert.audit_row(
                    AuditEntry(
                        batch_id=batch.batch_id,
                        actor=actor or batch.proposer,
                        action="propose",
                        at=_now(),
                        book_fingerprint=batch.book_fingerprint,
                        detail=f"{len(accounts)} accounts, {len(orders)} orders",
                        to_status=batch.status,
                    )
                )
            )

    @contextmanager
    def change(
        self, batch_id: str, expect_revision: int | None = None, others: bool = False
    ) -> Iterator[BatchChange]:
        """Change one batch in one transaction::

            with store.change(batch_id) as change:
                change.add_approval("bob")
                change.move_to("approved", actor="bob", action="approve")

        The batch is read under a lock (PostgreSQL) and written with a compare-and-set on
        its revision: if someone else changed it meanwhile, or the block raises, nothing is
        written (:class:`BatchStatusError` for the former). With ``expect_revision`` (the
        ``revision`` of a :class:`Batch` loaded earlier) the change is also refused when the
        batch changed since that read: a decision acts on the batch its maker saw.

        With ``others``, the change also reads other batches (``pending_elsewhere``: an
        approval checks that no other batch has the same accounts in the market), and such
        changes are serialised store-wide (:func:`_lock_store`), so two approvals of two
        batches cannot both pass that check before either is written."""
        with self._sessions() as session, session.begin():
            if others:
                _lock_store(session)
            row = self._row(session, batch_id, lock=True)
            revision = row.revision
            if expect_revision is not None and revision != expect_revision:
                raise BatchStatusError(
                    f"batch {batch_id} was changed by someone else meanwhile (it is now "
                    f"{row.status}); nothing changed (look at it again with 'rebalance "
                    f"blotter show {batch_id}')"
                )
            batch = self._load(session, batch_id, row=row)
            approvals = tuple(
                convert.approval_record(r)
                for r in session.scalars(
                    select(ApprovalRow)
                    .where(ApprovalRow.batch_id == batch_id)
                    .order_by(ApprovalRow.approval_id)
                )
            )
            pending = _pending(session) if others else {}
            elsewhere = {a: b for a, b in pending.items() if b != batch_id}
            change = BatchChange(batch, approvals, self._fills(session, batch_id), elsewhere)
            yield change
            try:
                self._write(session, change, revision)
            except OperationalError as exc:
                # SQLite: another writer held the file past the busy timeout.
                raise BatchStatusError(
                    f"batch {batch_id}: the store is busy with another change ({exc.orig}); "
                    f"nothing changed, try again"
                ) from None

    def set_status(
        self, batch_id: str, status: str, *, actor: str, action: str | None = None, detail: str = ""
    ) -> Batch:
        """Move a batch to ``status`` (checked against the lifecycle) with an audit entry;
        returns the batch as it now is."""
        with self.change(batch_id) as change:
            change.move_to(status, actor=actor, action=action or status, detail=detail)
        return self.load_batch(batch_id)

    def record_fills(
        self,
        batch_id: str,
        fills: Sequence[Fill],
        *,
        actor: str,
        status: str | None = None,
        detail: str = "",
    ) -> None:
        """Record ``fills`` against the batch's orders and, if ``status`` is given, move the
        batch to it, with audit entries, all in one transaction."""
        with self.change(batch_id) as change:
            change.add_fills(fills)
            change.audit(actor=actor, action="fills", detail=detail or f"{len(fills)} fills")
            if status is not None:
                change.move_to(status, actor=actor, action=status, detail=detail)

    # internals

    def _row(self, session: Session, batch_id: str, lock: bool = False) -> BatchRow:
        query = select(BatchRow).where(BatchRow.batch_id == batch_id)
        if lock:
            # FOR UPDATE on PostgreSQL; SQLite has no row locks and ignores it, and the
            # conditional UPDATE in _write decides there.
            query = query.with_for_update()
        row = session.scalars(query).one_or_none()
        if row is None:
            raise UnknownBatchError(f"no batch {batch_id} in the store {_safe(self.url)}")
        return row

    def _load(self, session: Session, batch_id: str, row: BatchRow | None = None) -> Batch:
        row = row or self._row(session, batch_id)
        order_rows = session.scalars(
            select(OrderRow).where(OrderRow.batch_id == batch_id).order_by(OrderRow.sequence)
        ).all()
        lots: dict[str, list[LotInstructionRow]] = {}
        for lot in session.scalars(
            select(LotInstructionRow)
            .join(OrderRow, OrderRow.order_id == LotInstructionRow.order_id)
            .where(OrderRow.batch_id == batch_id)
        ):
            lots.setdefault(lot.order_id, []).append(lot)
        account_rows = session.scalars(
            select(AccountPlanRow)
            .where(AccountPlanRow.batch_id == batch_id)
            .order_by(AccountPlanRow.account_id)
        ).all()
        return convert.batch_record(
            row,
            orders=[convert.order_record(o, lots.get(o.order_id, ())) for o in order_rows],
            accounts=[convert.account_record(a) for a in account_rows],
        )

    def _fills(self, session: Session, batch_id: str) -> tuple[Fill, ...]:
        rows = session.scalars(
            select(FillRow).where(FillRow.batch_id == batch_id).order_by(FillRow.fill_id)
        )
        return tuple(convert.fill_record(r) for r in rows)

    def _write(self, session: Session, change: BatchChange, revision: int) -> None:
        batch_id = change.batch.batch_id
        moved = session.execute(
            update(BatchRow)
            .where(BatchRow.batch_id == batch_id, BatchRow.revision == revision)
            .values(status=change.status, revision=revision + 1)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:
            raise BatchStatusError(
                f"batch {batch_id} was changed by someone else meanwhile; nothing changed "
                f"(look at it again with 'rebalance blotter show {batch_id}')"
            )
        for account_id, status in sorted(change._account_status.items()):
            session.execute(
                update(AccountPlanRow)
                .where(AccountPlanRow.batch_id == batch_id)
                .where(AccountPlanRow.account_id == account_id)
                .values(status=status)
                .execution_options(synchronize_session=False)
            )
        summaries = {a.account_id: a.summary for a in change.batch.accounts}
        for account_id, values in sorted(change._summary_updates.items()):
            session.execute(
                update(AccountPlanRow)
                .where(AccountPlanRow.batch_id == batch_id)
                .where(AccountPlanRow.account_id == account_id)
                .values(summary={**summaries[account_id], **values})
                .execution_options(synchronize_session=False)
            )
        session.add_all(convert.approval_row(a) for a in change._new_approvals)
        session.add_all(convert.fill_row(f) for f in change._new_fills)
        session.add_all(convert.audit_row(entry) for entry in change._audit)
        session.flush()


def store_error(exc: SQLAlchemyError, url: str) -> BlotterError:
    """A database error as a one-line :class:`BlotterError` naming the store."""
    return BlotterError(
        f"store {_safe(url)}: {exc.__class__.__name__}: {getattr(exc, 'orig', exc)}"
    )


def describe(mapping: Mapping[str, str]) -> str:
    """``a=1, b=2`` in key order, for audit details."""
    return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))
