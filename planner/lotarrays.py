"""The book's lots and trades as flat numpy arrays, built once per book (per process).

Planning one account must cost microseconds, not a pandas group-by: with 10,000 accounts
and five million lots, per-account DataFrame work dominates everything else. So the sorted
lots frame is turned once into arrays (symbol codes, shares, costs, acquisition days, the
position of each lot among its account's lots of the same symbol), and an account's lots
are a slice ``[start, stop)`` of them. Holding terms depend on the as-of date and are
computed once per date for the whole book.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from numba import njit

from planner import tax
from planner.domain import Book
from planner.memory import small_pages


@dataclass(frozen=True, eq=False)
class LotArrays:
    """Every lot of a book, in the book's order (account, symbol, acquired, lot id).

    ``symbol_code`` indexes ``symbols`` (the book's securities, sorted); ``within`` is the
    position of a lot among its account's lots of the same symbol (0, 1, ...), which is its
    slot in a template. ``ranges`` maps an account to its rows ``(start, stop)``;
    ``max_lots`` to the largest number of lots it holds in one security.
    """

    symbols: tuple[str, ...]
    symbol_code: np.ndarray
    shares: np.ndarray
    unit_cost: np.ndarray
    acquired: np.ndarray  # datetime64[D]
    lot_id: np.ndarray
    """Lot ids: UTF-8 bytes (``S``) when the loader kept them (a book read from disk), else
    the frame's str objects. Bytes matter in forked workers: copying an account's ids would
    touch (and so copy-on-write) every page of the parent's str objects, about 6% of a
    10,000-account run."""
    within: np.ndarray
    ranges: dict[str, tuple[int, int]]
    max_lots: dict[str, int]
    _terms: dict = field(default_factory=dict)

    def rows(self, account_id: str) -> slice:
        start, stop = self.ranges.get(account_id, (0, 0))
        return slice(start, stop)

    def terms(self, as_of: date) -> tuple[np.ndarray, np.ndarray]:
        """(long-term flag, days until long-term) of every lot on ``as_of``; cached."""
        if as_of not in self._terms:
            with small_pages():
                day = self.acquired.view(np.int64)  # days since 1970-01-01
                if len(day) and not np.isnat(self.acquired).any():
                    # The tax rule once per calendar day of the book's range, then one
                    # compiled pass over the lots (eight numpy passes over 5M before).
                    low = int(day.min())
                    calendar = np.arange(low, int(day.max()) + 1).astype("datetime64[D]")
                    first = tax.first_long_term_dates(calendar).astype("datetime64[D]")
                    until = (first - np.datetime64(as_of, "D")).astype(np.int64)
                    days, long_term = _days_until(day, low, until)
                else:
                    first = tax.first_long_term_dates(self.acquired).astype("datetime64[D]")
                    days = (first - np.datetime64(as_of, "D")).astype(np.int64)
                    long_term = days <= 0
            self._terms.clear()
            self._terms[as_of] = (long_term, days)
        return self._terms[as_of]


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def lot_arrays(book: Book) -> LotArrays:
    """The :class:`LotArrays` of ``book``, built on first use and kept while it lives."""
    cached = _CACHE.get(book)
    if cached is None:
        with small_pages():  # written once (see planner.memory)
            cached = _build(book)
        _CACHE[book] = cached
    return cached


def _build(book: Book) -> LotArrays:
    lots = book.lots
    symbols = tuple(sorted(book.securities))
    n = len(lots)
    if n == 0:
        empty = np.zeros(0)
        return LotArrays(
            symbols,
            np.zeros(0, dtype=np.int32),
            empty,
            empty,
            np.zeros(0, dtype="datetime64[D]"),
            np.zeros(0, dtype=object),
            np.zeros(0, dtype=np.int32),
            {},
            {},
        )
    kept = _loader_codes(book, lots)
    if kept is not None and set(kept.symbol_names) <= set(symbols):
        # The loader's codes, renumbered into the sorted symbols: the same codes as the
        # lookup below without reading 5M strings.
        position = {s: k for k, s in enumerate(symbols)}
        renumber = np.array([position[s] for s in kept.symbol_names], dtype=np.int32)
        code = renumber[kept.symbol_code]
    else:
        code = pd.Categorical(lots["symbol"], categories=list(symbols)).codes.astype(np.int32)
    ranges = dict(book._lot_rows)
    starts = np.array(sorted(start for start, _ in ranges.values()), dtype=np.int64)
    within = _within(code, starts)
    per_account = np.maximum.reduceat(within, starts) + 1
    ids_in_order = sorted(ranges, key=lambda a: ranges[a][0])
    max_lots = {a: int(k) for a, k in zip(ids_in_order, per_account, strict=True)}
    return LotArrays(
        symbols=symbols,
        symbol_code=code,
        shares=lots["shares"].to_numpy(dtype=float),
        unit_cost=lots["unit_cost"].to_numpy(dtype=float),
        acquired=lots["acquired"].to_numpy().astype("datetime64[D]"),
        lot_id=_lot_ids(book, lots),
        within=within,
        ranges=ranges,
        max_lots=max_lots,
    )


@njit(cache=True)
def _days_until(day: np.ndarray, low: int, until: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(days until long-term, long-term flag) of lots acquired on ``day``, looked up in
    ``until`` (per calendar day from ``low``)."""
    days = np.empty(day.shape[0], np.int64)
    long_term = np.empty(day.shape[0], np.bool_)
    for k in range(day.shape[0]):
        d = until[day[k] - low]
        days[k] = d
        long_term[k] = d <= 0
    return days, long_term


@njit(cache=True)
def _within(code: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Position of each lot in its run of one symbol in one account (0, 1, ...): a run
    starts where the symbol changes or an account starts (``starts``, sorted rows)."""
    n = code.shape[0]
    within = np.empty(n, np.int32)
    account_start = np.zeros(n, np.bool_)
    for r in starts:
        account_start[r] = True
    run = 0
    for r in range(n):
        run = 0 if r == 0 or account_start[r] or code[r] != code[r - 1] else run + 1
        within[r] = run
    return within


def _loader_codes(book: Book, lots: pd.DataFrame):
    """The loader's :class:`~planner.book.LoaderCodes` when it kept them for this very frame
    (see ``load_book``; a book made with ``replace`` starts without them), else ``None``."""
    kept = getattr(book, "_loader_codes", None)
    if kept is not None and len(kept.symbol_code) == len(lots):
        return kept
    return None


def _lot_ids(book: Book, lots: pd.DataFrame) -> np.ndarray:
    """The loader's bytes of the lot ids when it kept them, else the frame's str objects."""
    kept = _loader_codes(book, lots)
    if kept is not None:
        return kept.lot_id_bytes
    return lots["lot_id"].to_numpy(dtype=object)


def accounts_with_recent_trades(book: Book, as_of: date, window_days: int) -> frozenset[str]:
    """Accounts with a trade dated in ``[as_of - window_days, as_of]``: only their
    households can have a live wash-sale block, so every other account skips the look-back."""
    trades = book.trades
    if trades.empty:
        return frozenset()
    start = np.datetime64(as_of - timedelta(days=window_days), "D")
    dates = trades["trade_date"].to_numpy().astype("datetime64[D]")
    live = (dates >= start) & (dates <= np.datetime64(as_of, "D"))
    return frozenset(trades.loc[live, "account_id"].astype(str).unique())
