"""``rebalance reconcile``, ``report`` and ``notices``: after a batch is in the market.

Only parses arguments and prints; the work is in :mod:`planner.blotter.reconcile`,
:mod:`planner.blotter.report` and :mod:`planner.blotter.notices`. Exit codes as the rest
of the CLI: 0 success, 1 bad input (an unknown batch, a status that does not allow the
step, a changed book, a malformed fills file, fills for unknown or unapproved orders or
beyond an order, an unwritable output, an unusable store), 2 a usage error. A refused
step changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from planner.cli_blotter import BatchArg, DbOpt, _fail, _money, _safe, console, err
from planner.errors import PlannerError

TABLE_ROWS = 30
"""Orders not wholly filled and allocation exceptions shown in the terminal (each); the
Python API returns all of them."""


def reconcile(
    batch_id: BatchArg,
    fills: Annotated[
        Path,
        typer.Argument(
            help="Fills file (.csv or .parquet): order_id (or account_id, symbol, side), "
            "shares, price, date, and optionally lot_id and commission."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for the rolled-forward book (new or empty; the book itself rolls "
            "it in place after a backup copy).",
        ),
    ],
    book: Annotated[
        Path | None,
        typer.Option("--book", help="The book the batch was planned from (default: its path)."),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="Allocation exception threshold, a weight (0.005 = 0.5 pp off target).",
        ),
    ] = 0.005,
    db: DbOpt = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who reconciles (default: login name).")
    ] = None,
) -> None:
    """Match fills to the batch's approved orders, roll the book forward, report the
    allocation after the trades, and mark the batch reconciled."""
    from planner.blotter.reconcile import reconcile as run

    if not 0 <= tolerance < 1:
        err.print(f"[red]--tolerance: expected a fraction in [0, 1), got {tolerance}[/]")
        raise typer.Exit(2)
    try:
        result = run(batch_id, fills, book, out, tolerance=tolerance, db=db, actor=by)
    except PlannerError as exc:
        raise _fail(exc) from None
    counts = {"filled": 0, "partial": 0, "unfilled": 0}
    for o in result.orders:
        counts[o.status] += 1
    short = [o for o in result.orders if o.status != "filled"]
    for o in short[:TABLE_ROWS]:
        console.print(
            f"{_safe(o.order.order_id)} {_safe(o.order.account_id)} {o.order.side} "
            f"{_safe(o.order.symbol)}: {o.status}, {o.filled:g} of {o.order.shares:g} shares",
            highlight=False,
        )
    if len(short) > TABLE_ROWS:
        console.print(f"... and {len(short) - TABLE_ROWS} more orders not wholly filled")
    exceptions = result.exceptions
    if len(exceptions):
        table = Table(
            title=f"Allocation after the trades: {len(exceptions)} classes beyond "
            f"{tolerance * 100:g} pp of target"
        )
        for col in ("account", "class", "target", "planned", "actual", "drift"):
            table.add_column(col, justify="left" if col in ("account", "class") else "right")
        for row in exceptions.head(TABLE_ROWS).itertuples():
            table.add_row(
                _safe(row.account_id),
                _safe(row.asset_class),
                f"{row.target:.2%}",
                f"{row.planned:.2%}" if row.planned == row.planned else "",
                f"{row.actual:.2%}",
                f"{row.drift * 100:+.2f} pp",
            )
        console.print(table)
        if len(exceptions) > TABLE_ROWS:
            console.print(f"... and {len(exceptions) - TABLE_ROWS} more")
    added = result.rolled.returns_added
    st = sum(v[0] for v in added.values())
    lt = sum(v[1] for v in added.values())
    console.print(
        f"Batch {_safe(batch_id)} {result.batch.status}: {counts['filled']} orders filled, "
        f"{counts['partial']} partial, {counts['unfilled']} unfilled; "
        f"{len(result.rolled.sales)} lot sales, {len(result.rolled.new_lots)} new lots, "
        f"{len(result.rolled.replacements)} wash-sale replacements; year to date "
        f"{_money(st)} short-term, {_money(lt)} long-term added to {len(added)} returns",
        highlight=False,
    )
    console.print(f"wrote the rolled-forward book {_safe(result.book_path)}", highlight=False)


def report(
    batch_id: BatchArg,
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
    db: DbOpt = None,
) -> None:
    """Write the batch's report: one self-contained HTML file (charts as inline SVG)."""
    from planner.blotter.report import write_report

    try:
        path = write_report(batch_id, out, db=db)
    except PlannerError as exc:
        raise _fail(exc) from None
    console.print(f"wrote {_safe(path)}", highlight=False)


def notices(
    batch_id: BatchArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for the notices.")],
    db: DbOpt = None,
    template: Annotated[
        Path | None,
        typer.Option(
            "--template",
            help="A Jinja2 template of your own (see planner/blotter/templates/notice.j2).",
        ),
    ] = None,
) -> None:
    """Write one client notice per account of the batch, as Markdown and as text."""
    from planner.blotter.notices import write_notices

    try:
        paths = write_notices(batch_id, out, db=db, template=template)
    except PlannerError as exc:
        raise _fail(exc) from None
    console.print(
        f"wrote {len(paths) // 2} notices (.md and .txt) in {_safe(out)}", highlight=False
    )
