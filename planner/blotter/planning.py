"""What ``rebalance plan`` asks of the blotter: which accounts to hold back because a
batch of theirs is in the market, and saving the plan as a batch (``--save``).

The store is consulted when one is named (``--db``, ``$REBALANCE_DB``), when ``--save``
asks for one, or when the default ``rebalance.db`` exists in the current folder; a plain
``plan`` in a folder without a store never creates one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from planner.blotter.batch import held_back, save_plan, with_held_back
from planner.blotter.records import Batch
from planner.blotter.store import DB_ENV, DEFAULT_DB_FILE, Store, open_store
from planner.domain import Book
from planner.orders import PlanResult


@dataclass
class PlanBlotter:
    """The store a plan consults (``None``: none) and the accounts it holds back."""

    store: Store | None
    ignore_pending: bool = False
    held: dict[str, str] = field(default_factory=dict)

    def accounts_to_plan(self, book: Book, ids: Sequence[str] | None) -> list[str] | None:
        """``ids`` (``None``: every account) without the accounts held back; ``None`` when
        nothing is held back and all were asked for."""
        if self.store is None or self.ignore_pending:
            return None if ids is None else list(ids)
        asked = sorted(book.accounts) if ids is None else list(ids)
        self.held = held_back(self.store, asked)
        if not self.held:
            return None if ids is None else list(ids)
        return [a for a in asked if a not in self.held]

    def finish(self, result: PlanResult, book: Book) -> PlanResult:
        """The result with a ``pending_batch`` summary row per account held back."""
        return with_held_back(result, book, self.held)

    def save(
        self,
        book: Book,
        result: PlanResult,
        *,
        proposer: str,
        as_of: date,
        options: Any,
        accounts: Sequence[str] | None,
        book_path: Path,
    ) -> Batch:
        """Record the plan as a batch; ``options`` a :class:`planner.run.PlanOptions`."""
        assert self.store is not None
        recorded = _options(options, accounts, self.ignore_pending)
        return save_plan(
            self.store,
            book,
            result,
            proposer=proposer,
            as_of=as_of,
            options=recorded,
            book_path=book_path,
        )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _options(options: Any, accounts: Sequence[str] | None, ignore_pending: bool) -> dict:
    values: Mapping[str, Any] = asdict(options)
    kept = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in values.items()
        if k != "objective" and (v is None or isinstance(v, str | int | float | bool | tuple))
    }
    kept["accounts"] = list(accounts) if accounts is not None else None
    kept["ignore_pending"] = ignore_pending
    return kept


def plan_blotter(db: str | None, save: bool, ignore_pending: bool) -> PlanBlotter:
    """The blotter side of one ``plan`` run (see the module doc)."""
    wanted = save or db or os.environ.get(DB_ENV) or Path(DEFAULT_DB_FILE).exists()
    return PlanBlotter(open_store(db) if wanted else None, ignore_pending)
