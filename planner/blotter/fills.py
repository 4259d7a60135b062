"""A fills file: the executions a custodian or broker reports for a batch, read and checked.

One row per execution, CSV or Parquet, read through pyarrow with every cell checked and
every problem named by file, line and field (as a book's are):

| column | required | meaning |
|---|---|---|
| ``order_id`` | this, or the next three | the batch's order id |
| ``account_id``, ``symbol``, ``side`` | where no ``order_id`` | the order, by account, symbol and side |
| ``shares`` | yes | shares executed, > 0 |
| ``price`` | yes | dollars per share, > 0 |
| ``date`` | yes | trade date, ``YYYY-MM-DD`` |
| ``lot_id`` | no | for a sell, the lot relieved (a sell from several lots takes one row per lot); empty: the approved lot instructions apply |
| ``commission`` | no | dollars for the row (empty: the security's commission per share) |

:func:`fills_template` writes such a file for a batch as if every approved order had
been filled in full at its estimated price (``rebalance blotter fills-template``): a
start for a custodian's file, and a way to try the whole path on a demo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from planner.blotter.records import APPROVED, Batch
from planner.errors import BlotterError, OutputError
from planner.io import cells
from planner.io.cells import Issues
from planner.io.tables import SUFFIXES, Table, checked, read_file

FILL_REQUIRED = ("shares", "price", "date")
FILL_OPTIONAL = ("order_id", "account_id", "symbol", "side", "lot_id", "commission")
ORDER_KEYS = ("account_id", "symbol", "side")


@dataclass(frozen=True)
class FillRow:
    """One row of a fills file: where it is (``file``, ``line``), the order it names (by
    ``order_id``, or by ``account_id``/``symbol``/``side``), ``shares`` at ``price``
    dollars per share on ``trade_date``, the ``lot_id`` a sell relieved (``None``: the
    lot instructions apply) and ``commission`` dollars (``None``: the security's)."""

    file: str
    line: int
    order_id: str | None
    account_id: str | None
    symbol: str | None
    side: str | None
    shares: float
    price: float
    trade_date: date
    lot_id: str | None = None
    commission: float | None = None

    @property
    def where(self) -> str:
        """``FILLS.csv:3``: the row as a message names it."""
        return f"{self.file}:{self.line}"


class FillIssues:
    """Problems of a fills file and of its match with a batch, listed together."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, field: str, message: str) -> None:
        self.lines.append(f"{where}: {field}: {message}")

    def raise_if_any(self, head: str) -> None:
        """Raise one :class:`BlotterError` listing every problem, after ``head``."""
        if not self.lines:
            return
        n = len(self.lines)
        title = f"{head}: {n} problem{'s' if n != 1 else ''}; nothing was applied"
        raise BlotterError("\n".join([title, *(f"  {line}" for line in self.lines)]))


def read_fills(path: str | Path) -> tuple[FillRow, ...]:
    """The rows of the fills file at ``path`` (``.csv`` or ``.parquet``), in file order.

    Raises :class:`BlotterError` listing every problem found (each naming file, line and
    field and what was expected): a missing or unreadable file, a missing or unknown
    column, a row naming no order, a cell that is not what its column holds."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise BlotterError(
            f"{path}: expected a fills file ending in .csv or .parquet; nothing was applied"
        )
    issues = Issues()
    table = _table(path, issues)
    if table is not None:
        named = "order_id" in table.columns or all(k in table.columns for k in ORDER_KEYS)
        if not named:
            issues.add(
                table.name,
                1,
                "order_id",
                "missing column: give order_id, or account_id, symbol and side",
            )
    rows: tuple[FillRow, ...] = ()
    if table is not None and not issues.items:
        rows = _rows(table, issues)
    problems = issues.finish()
    if problems:
        n = len(problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the fills file {path}; nothing was applied"
        raise BlotterError("\n".join([head, *(f"  {p}" for p in problems)]))
    return rows


def _table(path: Path, issues: Issues) -> Table | None:
    """The file as a :class:`~planner.io.tables.Table`, its columns checked; ``None`` after
    reporting why it cannot be read. The book reader's own readers read it (every cell of
    a CSV as text, lines named as an editor shows them)."""
    table = read_file(path, issues)
    return None if table is None else checked(table, FILL_REQUIRED, FILL_OPTIONAL, issues)


def _rows(table: Table, issues: Issues) -> tuple[FillRow, ...]:
    order_id = cells.ids(table, "order_id", issues, "an order id", optional=True)
    account = cells.ids(table, "account_id", issues, "an account id", optional=True)
    symbol = cells.ids(table, "symbol", issues, "a symbol", optional=True)
    side = cells.texts(table, "side").to_pylist()
    bad_side = [s not in ("", "buy", "sell") for s in side]
    issues.rows(table, "side", bad_side, lambda raw: f"expected buy or sell, got {raw}")
    lot_id = cells.ids(table, "lot_id", issues, "a lot id", optional=True)
    shares = cells.numbers(table, "shares", issues, "a number > 0", lambda v: v > 0)
    price = cells.numbers(table, "price", issues, "a number > 0", lambda v: v > 0)
    commission = cells.numbers(
        table, "commission", issues, "a number >= 0", lambda v: v >= 0, optional=True
    )
    days = cells.dates(table, "date", issues)
    order_id, account, symbol, lot_id = (c.to_pylist() for c in (order_id, account, symbol, lot_id))
    unnamed = [
        not o and not (a and s and d)
        for o, a, s, d in zip(order_id, account, symbol, side, strict=True)
    ]
    issues.rows(
        table,
        "order_id",
        unnamed,
        lambda raw: "expected an order id, or account_id, symbol and side, got none",
    )
    out = []
    for k in range(len(table)):
        if np.isnat(days[k]) or math.isnan(shares[k]) or math.isnan(price[k]):
            continue  # reported
        out.append(
            FillRow(
                file=table.name,
                line=table.line(k),
                order_id=order_id[k] or None,
                account_id=account[k] or None,
                symbol=symbol[k] or None,
                side=side[k] or None,
                shares=float(shares[k]),
                price=float(price[k]),
                trade_date=pd.Timestamp(days[k]).date(),
                lot_id=lot_id[k] or None,
                commission=None if math.isnan(commission[k]) else float(commission[k]),
            )
        )
    return tuple(out)


TEMPLATE_COLUMNS = ("order_id", "account_id", "symbol", "side", "shares", "price", "date", "lot_id")
"""Columns of :func:`fills_template`'s file."""


def fills_template(batch: Batch, out: str | Path, day: date | None = None) -> Path:
    """Write to ``out`` (a new ``.csv`` file) a fills file filling every approved order of
    ``batch`` in full at its estimated price on ``day`` (default: the batch's as-of date),
    a sell as one row per lot of its instructions; returns ``out``.

    Raises :class:`BlotterError` when the batch has no approved orders or ``out`` exists
    or is not a ``.csv`` file (nothing is written then)."""
    from planner.blotter.report import write_text_atomic

    out = Path(out)
    if out.suffix != ".csv":
        raise BlotterError(f"{out}: expected a file name ending in .csv; nothing was written")
    if out.exists():
        raise BlotterError(f"{out}: the file exists; nothing was written (give a new name)")
    approved = {a.account_id for a in batch.accounts if a.status == APPROVED}
    orders = [o for o in batch.orders if o.account_id in approved]
    if not orders:
        raise BlotterError(
            f"batch {batch.batch_id} ({batch.status}) has no approved orders; nothing was written"
        )
    when = (day or batch.as_of).isoformat()
    lines = [",".join(TEMPLATE_COLUMNS)]
    for o in orders:
        head = f"{o.order_id},{o.account_id},{o.symbol},{o.side}"
        parts = [(i.shares, i.lot_id) for i in o.lot_instructions] if o.side == "sell" else []
        for shares, lot_id in parts or [(o.shares, "")]:
            lines.append(f"{head},{shares!r},{o.est_price!r},{when},{lot_id}")
    try:
        return write_text_atomic(out, "\n".join(lines) + "\n")
    except OutputError as exc:
        raise BlotterError(str(exc)) from None
