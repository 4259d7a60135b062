"""A plan's result as a batch: ids, orders in sending order (sells before buys within an
account) with their lot instructions, gains, tax and flags; the accounts held back because
an earlier batch of theirs is still in the market; and saving it all in the store."""

from __future__ import annotations

import getpass
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from planner import __version__
from planner.blotter.fingerprint import book_fingerprint
from planner.blotter.flags import FlagContext, OrderFacts, account_flags, order_flags
from planner.blotter.records import PROPOSED, AccountPlan, Batch, BlotterOrder, LotInstruction
from planner.blotter.store import Store
from planner.domain import Book
from planner.orders import PlanResult

PENDING_STATUS = "pending_batch"
"""Summary status of an account not planned because a batch of its is in the market."""

_SIDE_RANK = {"sell": 0, "buy": 1}


def login_name() -> str:
    """The user's login name (the default ``--by``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def new_batch_id(now: datetime) -> str:
    """``B<UTC date>-<time>-<6 hex>``: sorts by creation time, unique across machines."""
    return f"B{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def plain(value: Any) -> Any:
    """A summary cell as JSON: NumPy scalars as Python numbers, NaN as ``None``, dates and
    timestamps as ISO text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | date):
        return value.isoformat()
    if value is pd.NaT or value is None:
        return None
    return value


def _limit_price(side: str, price: float, book: Book) -> float | None:
    settings = book.settings.blotter
    if settings.order_type != "limit":
        return None
    # Buys may pay up to the tolerance above the estimate, sells accept down to it below;
    # limits are in whole cents.
    factor = 1 + settings.limit_tolerance if side == "buy" else 1 - settings.limit_tolerance
    return round(price * factor, 2)


def shares_after(book: Book, orders: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each traded account's shares by symbol after the plan's orders."""
    accounts = set(orders["account_id"])
    lots = book.lots[book.lots["account_id"].isin(accounts)]
    held = lots.groupby(["account_id", "symbol"])["shares"].sum()
    out: dict[str, dict[str, float]] = {}
    for (account_id, symbol), shares in held.items():
        out.setdefault(account_id, {})[symbol] = float(shares)
    for row in orders.itertuples(index=False):
        sign = 1.0 if row.side == "buy" else -1.0
        mine = out.setdefault(row.account_id, {})
        mine[row.symbol] = mine.get(row.symbol, 0.0) + sign * float(row.shares)
    return out


def build_batch(
    book: Book,
    result: PlanResult,
    *,
    proposer: str,
    as_of: date,
    options: Mapping[str, Any],
    book_path: Path,
    now: datetime | None = None,
) -> Batch:
    """The batch of a plan: every account with orders and its orders (sells first), with
    lot instructions, estimated gains and tax, and flags. Accounts planned without orders,
    failed ones and held-back ones are not in it (the plan's summary lists them)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    batch_id = new_batch_id(now)
    orders = result.orders.copy()
    orders["_rank"] = orders["side"].map(_SIDE_RANK)
    orders = orders.sort_values(["account_id", "_rank", "symbol"], kind="stable")
    context = FlagContext(book, as_of, shares_after(book, orders))
    lots_by_order: dict[tuple[str, str], list] = {}
    for lot in result.lot_sales.sort_values(["account_id", "symbol", "lot_id"]).itertuples(
        index=False
    ):
        lots_by_order.setdefault((lot.account_id, lot.symbol), []).append(lot)

    made: list[BlotterOrder] = []
    for sequence, row in enumerate(orders.itertuples(index=False), start=1):
        account = book.accounts[row.account_id]
        lots = lots_by_order.get((row.account_id, row.symbol), []) if row.side == "sell" else []
        instructions = tuple(
            LotInstruction(
                lot_id=str(lot.lot_id),
                shares=float(lot.shares),
                unit_cost=float(lot.unit_cost),
                acquired=pd.Timestamp(lot.acquired).date(),
                term=str(lot.term),
                realized_gain=float(lot.realized_gain),
            )
            for lot in lots
        )
        st = sum(i.realized_gain for i in instructions if i.term == "ST")
        lt = sum(i.realized_gain for i in instructions if i.term == "LT")
        # The order's own tax at the account's marginal rates; the account's exact netted
        # figure (year to date, carryforward, deduction) is its summary's est_tax.
        tax = st * account.st_rate + lt * account.lt_rate if account.taxable else 0.0
        facts = OrderFacts(
            row.account_id,
            row.symbol,
            row.side,
            float(row.est_value),
            st,
            tuple(i.realized_gain for i in instructions),
        )
        made.append(
            BlotterOrder(
                batch_id=batch_id,
                order_id=f"{batch_id}-{sequence:05d}",
                account_id=row.account_id,
                symbol=row.symbol,
                side=row.side,
                shares=float(row.shares),
                order_type=book.settings.blotter.order_type,
                limit_price=_limit_price(row.side, float(row.est_price), book),
                time_in_force=book.settings.blotter.time_in_force,
                est_price=float(row.est_price),
                est_value=float(row.est_value),
                est_cost=float(row.est_cost),
                est_st_gain=st,
                est_lt_gain=lt,
                est_tax=tax,
                reason=str(row.reason),
                flags=order_flags(facts, context),
                lot_instructions=instructions,
                sequence=sequence,
            )
        )
    traded = {o.account_id for o in made}
    accounts = []
    for row in result.summary.to_dict("records"):
        if row["account_id"] not in traded:
            continue
        summary = {str(k): plain(v) for k, v in row.items()}
        accounts.append(
            AccountPlan(
                batch_id=batch_id,
                account_id=row["account_id"],
                summary=summary,
                status=PROPOSED,
                flags=account_flags(summary, context),
            )
        )
    return Batch(
        batch_id=batch_id,
        proposer=proposer,
        as_of=as_of,
        options={str(k): plain(v) for k, v in sorted(options.items())},
        package_version=__version__,
        book_fingerprint=book_fingerprint(book_path),
        book_path=str(Path(book_path).resolve()),
        created_at=now,
        status=PROPOSED,
        orders=tuple(made),
        accounts=tuple(sorted(accounts, key=lambda a: a.account_id)),
    )


def save_plan(
    store: Store,
    book: Book,
    result: PlanResult,
    *,
    proposer: str,
    as_of: date,
    options: Mapping[str, Any],
    book_path: Path,
) -> Batch:
    """Build the plan's batch and record it (status ``proposed``); returns it."""
    batch = build_batch(
        book, result, proposer=proposer, as_of=as_of, options=options, book_path=book_path
    )
    store.save_batch(batch, batch.orders, batch.accounts, actor=proposer)
    return batch


def held_back(store: Store, account_ids: Sequence[str]) -> dict[str, str]:
    """Of ``account_ids``, those with an approved, exported or filled batch not yet
    reconciled: account id -> batch id."""
    pending = store.pending_accounts()
    return {a: pending[a] for a in sorted(account_ids) if a in pending}


def with_held_back(result: PlanResult, book: Book, held: Mapping[str, str]) -> PlanResult:
    """The plan's result with a summary row (status ``pending_batch``) for every account
    held back, rows sorted by account as ever."""
    if not held:
        return result
    rows = [
        {
            "account_id": account_id,
            "model": book.accounts[account_id].model,
            "decision": "none",
            "rebalance_to": "",
            "reasons": "",
            "status": PENDING_STATUS,
            "solver": "",
            "solve_ms": 0.0,
            "passes": 0,
            "value": math.nan,
            "te_before": math.nan,
            "te_after": math.nan,
            "turnover": 0.0,
            "est_cost": 0.0,
            "realized_st": 0.0,
            "realized_lt": 0.0,
            "est_tax": 0.0,
            "model_tax": 0.0,
            "carryforward_added": 0.0,
            "harvested_loss": 0.0,
            "harvest_value": 0.0,
            "rounding_residual": 0.0,
            "message": f"batch {batch_id} is in the market, not yet reconciled "
            f"(plan it anyway with --ignore-pending)",
        }
        for account_id, batch_id in sorted(held.items())
    ]
    columns = list(result.summary.columns) if not result.summary.empty else list(rows[0])
    pending = pd.DataFrame(rows).reindex(columns=columns)
    parts = [p for p in (result.summary, pending) if not p.empty]
    summary = pd.concat(parts, ignore_index=True).sort_values("account_id", ignore_index=True)
    return replace(result, summary=summary)
