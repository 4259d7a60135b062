"""Reconciliation: match a fills file to a batch's approved orders, roll the book forward
by what was executed, report each account's allocation after the trades against its
target, and move the batch to ``filled`` and ``reconciled`` with audit entries.

Nothing is applied unless everything checks: an unknown batch, a batch not yet exported
(or already reconciled), a book changed since the batch was planned, a malformed fills
file, a fill for an unknown or unapproved order, fills adding up to more than an order,
a sell beyond its lot instructions or its lot: each is refused with a message naming the
batch, the file's line and field, and what was expected.

The new book is written in full to a hidden folder first; the store then records the
fills and the reconciliation in one transaction, and only once that is committed is the
new book put in place. If the store refuses (someone changed the batch meanwhile) the
hidden folder is removed: no new book, the old one untouched, and the message says to run
the command again.

Partial fills are fine: an order filled in part is rolled forward for what was filled and
reported ``partial``; the rest is not carried over (the batch ends reconciled; the next
plan starts from the rolled-forward book).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from planner.blotter.batch import login_name
from planner.blotter.fills import FillIssues, FillRow, read_fills
from planner.blotter.fingerprint import ensure_book_unchanged
from planner.blotter.records import (
    APPROVED,
    EXPORTED,
    FILLED,
    RECONCILED,
    Batch,
    BlotterOrder,
    Fill,
)
from planner.blotter.rolled_book import stage_rolled_book
from planner.blotter.rollforward import Execution, RollForward, roll_forward
from planner.blotter.store import Store, open_store
from planner.domain import Book
from planner.errors import BatchStatusError, BlotterError, OutputError
from planner.io import load_book
from planner.positions import drift_frame
from planner.returns import account_tax
from planner.tax import YearSoFar

DEFAULT_TOLERANCE = 0.005
"""Allocation tolerance: a class more than this (a weight, 0.005 = 0.5 pp) off its target
after the trades is an exception."""

SHARE_TOLERANCE = 1e-6
"""Shares: fills may exceed an order or a lot instruction by this much (float residue)."""

RECONCILABLE = (EXPORTED, FILLED)
"""Statuses a batch can be reconciled from."""

FILLED_FIGURES = "filled"
"""The key of an account's summary (in the store) under which reconciliation records what
its fills realised and their tax (:func:`filled_figures`)."""

HARVEST_REASON = "tax-loss harvest"
"""How an order's reason starts when the order harvests a loss (:mod:`planner.reasons`)."""


@dataclass(frozen=True)
class OrderFill:
    """How far one approved order was filled: ``filled`` shares of ``order.shares`` at an
    ``average_price`` (dollars per share, ``None`` when unfilled); ``status`` is
    ``filled``, ``partial`` or ``unfilled``."""

    order: BlotterOrder
    filled: float
    average_price: float | None
    status: str


@dataclass(frozen=True)
class Reconciliation:
    """The outcome of :func:`reconcile`: the batch as it now is, the new book's folder, each
    order's fill, the allocation after the trades (:func:`allocation_frame`) and its
    exceptions, the roll-forward itself, and the tolerance used."""

    batch: Batch
    book_path: Path
    orders: tuple[OrderFill, ...]
    allocation: pd.DataFrame
    rolled: RollForward
    tolerance: float

    @property
    def exceptions(self) -> pd.DataFrame:
        """The allocation rows beyond the tolerance."""
        return self.allocation[self.allocation["exception"] != ""]


def reconcile(
    batch_id: str,
    fills: str | Path,
    book: str | Path | None,
    out: str | Path,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    db: str | None = None,
    actor: str | None = None,
    store: Store | None = None,
    today: date | None = None,
) -> Reconciliation:
    """Reconcile batch ``batch_id`` with the fills file ``fills`` and roll the book at
    ``book`` (``None``: the folder the batch recorded) forward into ``out`` (``out`` equal
    to the book: in place, after a backup).

    The store is ``store``, else opened from ``db`` (see
    :func:`planner.blotter.store.resolve_db_url`). ``actor`` is who reconciles (default:
    the login name). ``today`` (default :meth:`datetime.date.today`) is the last trade date
    a fill may have. Raises :class:`BlotterError` (or a subclass) with nothing changed when
    anything does not check; see the module's docstring."""
    if not (0 <= tolerance < 1):
        raise BlotterError(f"--tolerance: expected a fraction in [0, 1), got {tolerance}")
    owned = store is None
    store = store or open_store(db)
    try:
        return _reconcile(
            store, batch_id, Path(fills), book, Path(out), tolerance, actor, today or date.today()
        )
    finally:
        if owned:
            store.close()


def _reconcile(
    store: Store,
    batch_id: str,
    fills_path: Path,
    book: str | Path | None,
    out: Path,
    tolerance: float,
    actor: str | None,
    today: date,
) -> Reconciliation:
    actor = actor or login_name()
    batch = store.load_batch(batch_id)
    book_path = Path(book if book is not None else batch.book_path)
    if batch.status not in RECONCILABLE:
        hint = " (export it first: rebalance blotter export)" if batch.status == APPROVED else ""
        raise BatchStatusError(
            f"batch {batch_id} is {batch.status}; only an exported or filled batch can be "
            f"reconciled{hint}; nothing changed"
        )
    ensure_book_unchanged(batch, book_path)
    rows = read_fills(fills_path)
    recorded = store.fills(batch_id)
    loaded = load_book(book_path)
    executions, new_fills = match_fills(
        batch, rows, recorded, head=f"fills {fills_path}", today=today
    )
    approved = approved_accounts(batch)
    traded = {e.account_id for e in executions}
    rolled = roll_forward(loaded, executions, rebalanced=sorted(traded & approved))
    orders = order_fills(batch, executions)
    allocation = allocation_frame(rolled.book, batch, tolerance)
    partial = sum(o.status != "filled" for o in orders)
    exceptions = int((allocation["exception"] != "").sum())
    figures = filled_figures(loaded, batch, executions, rolled)
    # The new book is written completely (staged) before the store records the
    # reconciliation, and put in place only once that record is committed: a lost
    # compare-and-set (or any store failure) leaves no new book and the old one untouched.
    staged = stage_rolled_book(rolled, book_path, out, label=batch_id)
    try:
        with store.change(batch_id) as change:
            if change.status != batch.status or len(change.fills) != len(recorded):
                raise BatchStatusError(
                    f"batch {batch_id} was changed by someone else meanwhile; nothing changed"
                )
            detail = f"{len(rows)} rows from {fills_path.name}"
            if new_fills:
                change.add_fills(new_fills)
                change.audit(actor=actor, action="fills", detail=detail)
            if change.status == EXPORTED:
                change.move_to(FILLED, actor=actor, action="fill", detail=detail)
            for account_id, values in figures.items():
                change.update_summary(account_id, {FILLED_FIGURES: values})
            change.move_to(
                RECONCILED,
                actor=actor,
                action="reconcile",
                detail=(
                    f"book rolled forward to {Path(out).resolve()}; {len(orders) - partial} "
                    f"orders filled, {partial} partial or unfilled; {exceptions} allocation "
                    f"exceptions beyond {tolerance * 100:g} pp"
                ),
            )
    except BatchStatusError as exc:
        staged.discard()
        raise BatchStatusError(
            f"{exc}\nThe store did not record the reconciliation, so the rolled-forward book "
            f"was not written ({out} and {book_path} are as they were): run the command again"
        ) from None
    except BaseException:
        staged.discard()
        raise
    try:
        staged.commit()
    except OutputError as exc:
        raise BlotterError(
            f"batch {batch_id} is recorded as reconciled, but the rolled-forward book could "
            f"not be put in place: {exc}. The complete new book is in {staged.staging}; "
            f"move its files to {out}"
        ) from None
    return Reconciliation(
        batch=store.load_batch(batch_id),
        book_path=Path(out),
        orders=orders,
        allocation=allocation,
        rolled=rolled,
        tolerance=tolerance,
    )


def approved_accounts(batch: Batch) -> set[str]:
    """The batch's accounts whose plans were approved."""
    return {a.account_id for a in batch.accounts if a.status == APPROVED}


def filled_figures(
    book: Book, batch: Batch, executions: Sequence[Execution], rolled: RollForward
) -> dict[str, dict[str, float]]:
    """What each approved account's ``executions`` (rolled into ``rolled``) realised, and its tax, as the plan's summary has
    them (dollars): ``realized_st`` and ``realized_lt`` (the gains its sales report this
    year, after any wash-sale deferral, with the loss of an earlier sale its buys
    disallowed added back; in an IRA or Roth the gains as realised, untaxed), ``est_tax`` and
    ``carryforward_added`` (the exact increment of its return's tax and of the loss carried
    forward, the return's year to date taken from ``book``, the book before the trades,
    with the return's accounts of the batch taken in account order, as a plan takes them)
    and ``harvested_loss`` (the plan's, times the share of its harvest sells filled). An
    account whose orders went unfilled has zeros."""
    reported: dict[str, list[float]] = {
        a: [loss, 0.0] for a, loss in rolled.past_disallowed.items()
    }
    for sale in rolled.sales:
        both = reported.setdefault(sale.execution.account_id, [0.0, 0.0])
        if book.accounts[sale.execution.account_id].taxable:
            both[0] += sale.reported_st
            both[1] += sale.reported_lt
        else:  # nothing to report: the gain as realised, as a plan's summary has it
            both[0 if sale.term == "ST" else 1] += sale.realized_gain
    filled: dict[str, float] = {}
    for e in executions:
        filled[e.order_id] = filled.get(e.order_id, 0.0) + e.shares
    years: dict[str, YearSoFar] = {}
    out: dict[str, dict[str, float]] = {}
    for plan in sorted(batch.accounts, key=lambda a: a.account_id):
        if plan.status != APPROVED:
            continue
        a = plan.account_id
        st, lt = reported.get(a, (0.0, 0.0))
        account = book.accounts.get(a)
        tax_return = book.tax_return(a) if account is not None else None
        year = None
        if tax_return is not None:
            year = years.get(tax_return.return_id) or YearSoFar.of(tax_return)
            years[tax_return.return_id] = year.plus(st, lt)
        added = account_tax(
            year, st, lt, account.st_rate if account else 0.0, account.lt_rate if account else 0.0
        )
        sells = [o for o in batch.orders if o.account_id == a and o.side == "sell"]
        harvests = [o for o in sells if o.reason.startswith(HARVEST_REASON)] or sells
        ordered = sum(o.shares for o in harvests)
        done = sum(min(filled.get(o.order_id, 0.0), o.shares) for o in harvests)
        planned_harvest = _number(plan.summary.get("harvested_loss"))
        planned_harvest = 0.0 if math.isnan(planned_harvest) else planned_harvest
        out[a] = {
            "realized_st": st,
            "realized_lt": lt,
            "est_tax": added.est_tax,
            "carryforward_added": added.carryforward_added,
            "harvested_loss": planned_harvest * done / ordered if ordered > 0 else 0.0,
        }
    return out


# -- matching ------------------------------------------------------------------------------


def match_fills(
    batch: Batch,
    rows: Sequence[FillRow],
    recorded: Sequence[Fill] = (),
    head: str = "fills",
    today: date | None = None,
) -> tuple[list[Execution], list[Fill]]:
    """The executions of ``rows`` (and of fills ``recorded`` in the store before) against
    the batch's orders, and the new :class:`Fill` records for the store (one per lot a
    sell relieves). Sells without a lot take the approved lot instructions in order.

    Raises :class:`BlotterError` listing every problem: an order not in the batch or not
    approved, a row whose account, symbol or side contradict its order, a date before the
    batch's as-of date or (for ``rows``) after ``today`` (``None``: not checked), a
    ``lot_id`` on a buy, fills adding up to more than an order, a
    sell beyond its lot instructions."""
    issues = FillIssues()
    by_id = {o.order_id: o for o in batch.orders}
    by_key = {(o.account_id, o.symbol, o.side): o for o in batch.orders}
    statuses = {a.account_id: a.status for a in batch.accounts}
    approved = approved_accounts(batch)
    stored = [
        FillRow(
            file="store fill",
            line=f.fill_id or 0,
            order_id=f.order_id,
            account_id=None,
            symbol=None,
            side=None,
            shares=f.shares,
            price=f.price,
            trade_date=f.trade_date,
            lot_id=f.lot_id,
        )
        for f in recorded
    ]
    matched: list[tuple[FillRow, BlotterOrder, bool]] = []  # (row, order, from the file)
    for row, new in [(r, False) for r in stored] + [(r, True) for r in rows]:
        order = _order_of(row, by_id, by_key, batch, issues)
        if order is None:
            continue
        if order.account_id not in approved:
            status = statuses.get(order.account_id, "not in the batch")
            issues.add(
                row.where,
                "order_id",
                f"order {order.order_id} ({order.account_id} {order.side} {order.symbol}) "
                f"is not approved (its account's plan is {status}); only approved orders "
                f"can be filled",
            )
            continue
        if row.trade_date < batch.as_of:
            issues.add(
                row.where,
                "date",
                f"expected a date on or after the batch's as-of date {batch.as_of}, "
                f"got {row.trade_date}",
            )
        if new and today is not None and row.trade_date > today:
            issues.add(
                row.where,
                "date",
                f"expected a trade date on or before today ({today}), got {row.trade_date}: "
                f"a fill cannot be in the future",
            )
        if row.lot_id and order.side == "buy":
            issues.add(row.where, "lot_id", "expected no lot on a buy (a buy makes a new lot)")
        matched.append((row, order, new))

    filled: dict[str, float] = {}
    for row, order, _ in matched:
        filled[order.order_id] = filled.get(order.order_id, 0.0) + row.shares
    for order_id, shares in filled.items():
        order = by_id[order_id]
        if shares > order.shares + SHARE_TOLERANCE:
            where = ", ".join(r.where for r, o, _ in matched if o.order_id == order_id)
            issues.add(
                where,
                "shares",
                f"fills of order {order_id} ({order.account_id} {order.side} {order.symbol}) "
                f"add up to {shares:g} shares, more than the {order.shares:g} ordered "
                f"(overfill refused)",
            )

    # Rows naming their lot first, so that the rows without one take what is left of the
    # instructions whatever the file's order.
    left = {
        o.order_id: [[i.lot_id, i.shares] for i in o.lot_instructions]
        for o in batch.orders
        if o.side == "sell"
    }
    for row, order, _ in matched:
        if order.side == "sell" and row.lot_id:
            for slot in left[order.order_id]:
                if slot[0] == row.lot_id:
                    slot[1] = max(slot[1] - row.shares, 0.0)
    executions: list[Execution] = []
    new_fills: list[Fill] = []
    for row, order, new in sorted(matched, key=lambda m: m[0].lot_id is None):
        portions = [(row.lot_id, row.shares)] if row.lot_id or order.side == "buy" else []
        if order.side == "sell" and not row.lot_id:
            portions = _from_instructions(row, order, left[order.order_id], issues)
        for lot_id, shares in portions:
            commission = None
            if row.commission is not None:
                commission = row.commission * shares / row.shares
            executions.append(
                Execution(
                    account_id=order.account_id,
                    symbol=order.symbol,
                    side=order.side,
                    shares=shares,
                    price=row.price,
                    trade_date=row.trade_date,
                    lot_id=lot_id if order.side == "sell" else order.order_id,
                    commission=commission,
                    order_id=order.order_id,
                    source=row.where,
                )
            )
            if new:
                new_fills.append(
                    Fill(
                        batch_id=batch.batch_id,
                        order_id=order.order_id,
                        shares=shares,
                        price=row.price,
                        trade_date=row.trade_date,
                        lot_id=lot_id if order.side == "sell" else None,
                    )
                )
    issues.raise_if_any(f"{head} for batch {batch.batch_id}")
    return executions, new_fills


def _order_of(row: FillRow, by_id, by_key, batch: Batch, issues: FillIssues):
    """The order a row names, or ``None`` after reporting why there is none."""
    if row.order_id:
        order = by_id.get(row.order_id)
        if order is None:
            issues.add(row.where, "order_id", f"no order {row.order_id} in batch {batch.batch_id}")
            return None
        for field, value in (
            ("account_id", row.account_id),
            ("symbol", row.symbol),
            ("side", row.side),
        ):
            if value and value != getattr(order, field):
                issues.add(
                    row.where,
                    field,
                    f"expected {getattr(order, field)} as order {order.order_id} has, got {value}",
                )
        return order
    order = by_key.get((row.account_id, row.symbol, row.side))
    if order is None:
        issues.add(
            row.where,
            "order_id",
            f"no {row.side} order of {row.symbol} for account {row.account_id} in batch "
            f"{batch.batch_id}",
        )
    return order


def _from_instructions(
    row: FillRow, order: BlotterOrder, left: list[list], issues: FillIssues
) -> list[tuple[str, float]]:
    """A sell row without a lot, spread over what is left of the order's lot
    instructions, in their order."""
    need, out = row.shares, []
    for slot in left:
        if need <= SHARE_TOLERANCE:
            break
        take = min(need, slot[1])
        if take > SHARE_TOLERANCE:
            out.append((slot[0], take))
            slot[1] -= take
            need -= take
    if need > SHARE_TOLERANCE:
        issues.add(
            row.where,
            "shares",
            f"order {order.order_id}'s lot instructions have {row.shares - need:g} shares "
            f"left for this fill of {row.shares:g}; name the lots (lot_id) for the rest",
        )
    return out


# -- what the fills did --------------------------------------------------------------------


def order_fills(batch: Batch, executions: Sequence[Execution]) -> tuple[OrderFill, ...]:
    """Each approved order's filled shares and average price, in the batch's order."""
    approved = approved_accounts(batch)
    shares: dict[str, float] = {}
    value: dict[str, float] = {}
    for e in executions:
        shares[e.order_id] = shares.get(e.order_id, 0.0) + e.shares
        value[e.order_id] = value.get(e.order_id, 0.0) + e.shares * e.price
    out = []
    for o in batch.orders:
        if o.account_id not in approved:
            continue
        done = shares.get(o.order_id, 0.0)
        if done <= SHARE_TOLERANCE:
            status = "unfilled"
        elif done < o.shares - SHARE_TOLERANCE:
            status = "partial"
        else:
            status = "filled"
        price = value[o.order_id] / done if done > SHARE_TOLERANCE else None
        out.append(OrderFill(o, done, price, status))
    return tuple(out)


ALLOCATION_COLUMNS = (
    "account_id",
    "asset_class",
    "target",
    "planned",
    "actual",
    "drift",
    "exception",
)


def allocation_frame(book: Book, batch: Batch, tolerance: float) -> pd.DataFrame:
    """Per approved account of the batch and asset class, after the trades: the target,
    the weight the plan expected (``planned``, NaN where the plan did not say), the
    ``actual`` weight in the rolled-forward ``book``, its ``drift`` from target (weights,
    fractions) and an ``exception`` text where the drift is beyond ``tolerance``."""
    ids = sorted(approved_accounts(batch))
    if not ids:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALLOCATION_COLUMNS})
    drift = drift_frame(book.subset(ids))
    drift = drift[drift["account_id"].isin(ids)].reset_index(drop=True)
    summaries = {a.account_id: a.summary for a in batch.accounts}
    planned = [
        _number(summaries[a].get(f"post_{c}"))
        for a, c in zip(drift["account_id"], drift["asset_class"], strict=True)
    ]
    exception = [
        f"{c} {d * 100:+.2f} pp off target (tolerance {tolerance * 100:g} pp)"
        if abs(d) > tolerance + 1e-12
        else ""
        for c, d in zip(drift["asset_class"], drift["drift"], strict=True)
    ]
    return pd.DataFrame(
        {
            "account_id": drift["account_id"].astype(object),
            "asset_class": drift["asset_class"].astype(object),
            "target": drift["target"].astype(float),
            "planned": np.array(planned, dtype=float),
            "actual": drift["current"].astype(float),
            "drift": drift["drift"].astype(float),
            "exception": exception,
        }
    )


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
