"""``rebalance blotter``: list, show, approve, reject, cancel and export saved batches.

Only parses arguments and prints; the work is in :mod:`planner.blotter`. Exit codes as the
rest of the CLI: 0 success, 1 bad input (an unknown batch, a status that does not allow
the step, a changed book, a maker-checker refusal, an unwritable file, an unusable store),
2 a usage error. A refused step changes nothing.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from planner.errors import BookError, ConfigError, PlannerError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Review, approve and export saved batches (see 'rebalance plan --save').",
)
console = Console(width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True, soft_wrap=True)

EXIT_BAD_INPUT = 1

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="The store: a SQLAlchemy URL or a SQLite file (default: $REBALANCE_DB, else "
        "rebalance.db in the current folder).",
    ),
]
BatchArg = Annotated[str, typer.Argument(help="Batch id (see 'rebalance blotter list').")]
ByOpt = Annotated[str, typer.Option("--by", help="Who does it (recorded in the audit log).")]
WhyOpt = Annotated[str, typer.Option("--why", help="Why (recorded in the audit log).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


class ExportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    fix = "fix"


def _safe(value) -> str:
    from planner.cli import _safe as safe

    return safe(value)


def _fail(exc: Exception) -> typer.Exit:
    if isinstance(exc, BookError):
        err.print(f"[bold red]{len(exc.issues)} problem(s) in the batch's book[/]")
        for issue in exc.issues:
            err.print(f"  {_safe(issue)}", highlight=False)
    else:
        # One line each: a message listing problems (a fills file's) keeps its lines.
        for line in str(exc).splitlines() or [""]:
            err.print(f"[red]{_safe(line)}[/]")
    return typer.Exit(EXIT_BAD_INPUT)


def _open(db: str | None):
    from planner.blotter.store import open_store

    try:
        return open_store(db)
    except ConfigError as exc:
        raise _fail(exc) from None


def _money(value: float | None) -> str:
    value = value or 0.0
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _json(value) -> None:
    # Plain print: rich would wrap and colour it.
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def blotter_for_plan(db: str | None, save: bool, ignore_pending: bool):
    """The blotter side of ``rebalance plan`` (see :mod:`planner.blotter.planning`)."""
    from planner.blotter.planning import plan_blotter

    try:
        return plan_blotter(db, save, ignore_pending)
    except PlannerError as exc:
        raise _fail(exc) from None


def save_for_plan(blotter, loaded, result, by, options, ids, book_path: Path) -> None:
    """Record ``plan --save``'s batch and print its id."""
    from planner.blotter.batch import login_name

    as_of = loaded.settings.as_of
    if result.orders.empty:
        blotter.close()
        console.print("No orders: no batch saved", highlight=False)
        return
    try:
        batch = blotter.save(
            loaded,
            result,
            proposer=(by or "").strip() or login_name(),
            as_of=as_of,
            options=options,
            accounts=ids,
            book_path=book_path,
        )
    except (PlannerError, OSError) as exc:
        raise _fail(exc) from None
    finally:
        blotter.close()
    flagged = sum(1 for o in batch.orders if o.flags)
    console.print(
        f"Saved batch {batch.batch_id}: {len(batch.accounts)} accounts, {len(batch.orders)} "
        f"orders ({flagged} flagged), status {batch.status}",
        highlight=False,
    )


@app.command("list")
def list_batches(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List the store's batches, newest first."""
    with _open(db) as store:
        batches = store.list_batches()
    if as_json:
        _json(
            [
                {
                    "batch_id": b.batch_id,
                    "status": b.status,
                    "as_of": b.as_of.isoformat(),
                    "accounts": b.accounts,
                    "orders": b.orders,
                    "flagged_orders": b.flagged_orders,
                    "proposer": b.proposer,
                    "created_at": b.created_at.isoformat(),
                }
                for b in batches
            ]
        )
        return
    table = Table(title=f"Batches: {len(batches)}")
    for col in ("batch", "status", "as of", "proposer", "created (UTC)", "accounts", "orders"):
        table.add_column(col, justify="right" if col in ("accounts", "orders") else "left")
    for b in batches:
        table.add_row(
            b.batch_id,
            b.status,
            b.as_of.isoformat(),
            _safe(b.proposer),
            b.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(b.accounts),
            f"{b.orders} ({b.flagged_orders} flagged)",
        )
    console.print(table)


@app.command()
def show(
    batch_id: BatchArg,
    db: DbOpt = None,
    flagged: Annotated[
        bool, typer.Option("--flagged", help="Only flagged accounts and orders.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a batch: its accounts with their flags, its orders with lot instructions."""
    with _open(db) as store:
        try:
            batch = store.load_batch(batch_id)
            approvals = store.approvals(batch_id)
        except PlannerError as exc:
            raise _fail(exc) from None
    accounts = [a for a in batch.accounts if a.flags or not flagged]
    orders = [o for o in batch.orders if o.flags or not flagged]
    if as_json:
        data = asdict(batch)
        data["options"] = dict(batch.options)
        data["accounts"] = [{**asdict(a), "summary": dict(a.summary)} for a in accounts]
        data["orders"] = [asdict(o) for o in orders]
        data["approvals"] = [asdict(a) for a in approvals]
        _json(data)
        return
    console.print(
        f"Batch {batch.batch_id}: {batch.status}, as of {batch.as_of}, proposed by "
        f"{_safe(batch.proposer)} at {batch.created_at:%Y-%m-%d %H:%M:%S} UTC; book "
        f"{_safe(batch.book_path)} (fingerprint {batch.book_fingerprint[:12]}); "
        f"version {batch.package_version}",
        highlight=False,
    )
    if approvals:
        console.print(
            "Approved by "
            + ", ".join(f"{_safe(a.approver)} at {a.at:%Y-%m-%d %H:%M:%S}" for a in approvals),
            highlight=False,
        )
    table = Table(title=f"Accounts: {len(accounts)}" + (" flagged" if flagged else ""))
    for col in ("account", "status", "orders", "turnover", "est tax", "flags"):
        table.add_column(
            col, justify="right" if col in ("orders", "turnover", "est tax") else "left"
        )
    counts = {a.account_id: 0 for a in batch.accounts}
    for o in batch.orders:
        counts[o.account_id] += 1
    for a in accounts:
        table.add_row(
            _safe(a.account_id),
            a.status,
            str(counts[a.account_id]),
            f"{(a.summary.get('turnover') or 0):.1%}",
            _money(a.summary.get("est_tax")),
            "\n".join(_safe(f) for f in a.flags),
        )
    console.print(table)
    table = Table(title=f"Orders: {len(orders)}" + (" flagged" if flagged else ""))
    for col in (
        "order",
        "account",
        "side",
        "symbol",
        "shares",
        "type",
        "est value",
        "est tax",
        "lots",
        "flags",
    ):
        right = col in ("shares", "est value", "est tax")
        table.add_column(col, justify="right" if right else "left", no_wrap=col == "order")
    for o in orders:
        kind = o.order_type if o.limit_price is None else f"limit {o.limit_price:.2f}"
        table.add_row(
            o.order_id,
            _safe(o.account_id),
            o.side,
            _safe(o.symbol),
            f"{o.shares:,.6f}",
            f"{kind} {o.time_in_force}",
            _money(o.est_value),
            _money(o.est_tax),
            "\n".join(f"{_safe(lot.lot_id)} {lot.shares:,.6f}" for lot in o.lot_instructions),
            "\n".join(_safe(f) for f in o.flags),
        )
    console.print(table)


@app.command()
def approve(
    batch_id: BatchArg,
    by: ByOpt,
    accounts: Annotated[
        str | None,
        typer.Option("--accounts", help="Comma-separated account ids to approve (default: all)."),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Approve a proposed batch (maker-checker rules from the book's blotter settings)."""
    from planner.blotter.approvals import approve as approve_batch

    ids = [a.strip() for a in accounts.split(",") if a.strip()] if accounts else None
    with _open(db) as store:
        try:
            outcome = approve_batch(store, batch_id, by, ids)
        except PlannerError as exc:
            raise _fail(exc) from None
    if outcome.status == "approved":
        console.print(
            f"Batch {batch_id} approved by {_safe(by)}: {len(outcome.approved_accounts)} "
            f"accounts (approval {outcome.approvals} of {outcome.needed})",
            highlight=False,
        )
    else:
        console.print(
            f"Batch {batch_id}: approval {outcome.approvals} of {outcome.needed} recorded "
            f"({_safe(by)}); it needs another approver",
            highlight=False,
        )


@app.command()
def reject(batch_id: BatchArg, by: ByOpt, why: WhyOpt, db: DbOpt = None) -> None:
    """Reject a proposed or approved batch (to change orders: reject and plan again)."""
    from planner.blotter.approvals import reject as reject_batch

    _decide(reject_batch, "rejected", batch_id, by, why, db)


@app.command()
def cancel(batch_id: BatchArg, by: ByOpt, why: WhyOpt, db: DbOpt = None) -> None:
    """Cancel a batch not yet filled (its accounts may be planned again)."""
    from planner.blotter.approvals import cancel as cancel_batch

    _decide(cancel_batch, "cancelled", batch_id, by, why, db)


def _decide(step, done: str, batch_id: str, by: str, why: str, db: str | None) -> None:
    """Run ``step(store, batch_id, by, why)`` (reject or cancel) and say it is ``done``."""
    with _open(db) as store:
        try:
            step(store, batch_id, by, why)
        except PlannerError as exc:
            raise _fail(exc) from None
    console.print(f"Batch {batch_id} {done} by {_safe(by)}", highlight=False)


@app.command()
def export(
    batch_id: BatchArg,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv, xlsx or fix (FIX 4.4).")],
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    by: Annotated[
        str | None, typer.Option("--by", help="Who exports (default: login name).")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Write an approved batch's orders to a file; the batch becomes exported."""
    from planner.blotter.batch import login_name
    from planner.blotter.export import export_batch

    with _open(db) as store:
        try:
            path = export_batch(store, batch_id, fmt.value, out, (by or "").strip() or login_name())
            batch = store.load_batch(batch_id)
        except PlannerError as exc:
            raise _fail(exc) from None
    from planner.blotter.export import approved_orders

    console.print(
        f"Batch {batch_id}: {len(approved_orders(batch))} orders written to {_safe(path)} "
        f"({fmt.value}); status {batch.status}",
        highlight=False,
    )


@app.command("fills-template")
def fills_template(
    batch_id: BatchArg,
    out: Annotated[Path, typer.Option("--out", help="The fills file to write (.csv, new).")],
    day: Annotated[
        str | None,
        typer.Option("--date", help="Trade date, YYYY-MM-DD (default: the batch's as-of date)."),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Write a fills file that fills every approved order in full at its estimated price.

    Sells take one row per lot of their instructions. A start for the custodian's file,
    or the fills of a demo run."""
    from datetime import date

    from planner.blotter.fills import fills_template as write_template

    try:
        when = date.fromisoformat(day) if day is not None else None
    except ValueError:
        err.print(f"[red]--date: expected YYYY-MM-DD, got {_safe(day)}[/]")
        raise typer.Exit(2) from None
    with _open(db) as store:
        try:
            path = write_template(store.load_batch(batch_id), out, when)
        except PlannerError as exc:
            raise _fail(exc) from None
    rows = len(path.read_text(encoding="utf-8").splitlines()) - 1
    console.print(f"Batch {batch_id}: {rows} fill rows written to {_safe(path)}", highlight=False)


@app.command()
def audit(
    batch_id: Annotated[str | None, typer.Argument(help="Batch id (default: all).")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the audit log: who did what to which batch, when."""
    with _open(db) as store:
        entries = store.audit_log(batch_id)
    if as_json:
        _json([asdict(e) for e in entries])
        return
    table = Table(title=f"Audit log: {len(entries)} entries")
    for col in ("when (UTC)", "batch", "who", "action", "status", "detail", "book"):
        table.add_column(col)
    for e in entries:
        moved = f"{e.from_status or ''} -> {e.to_status}" if e.to_status else ""
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.batch_id,
            _safe(e.actor),
            e.action,
            moved,
            _safe(e.detail),
            e.book_fingerprint[:12],
        )
    console.print(table)
