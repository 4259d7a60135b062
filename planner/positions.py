"""What the accounts hold: the book's lots as flat arrays, and each account's value and
class weights, computed for the whole book at once.

An account's value is ``V = sum_i p_i h_i + cash + cash_flow``: a pending contribution counts
as cash already there and a pending withdrawal as cash already gone, so that drift is measured
against what the account will hold once the flow settles.

Planning one account must cost microseconds, not a pandas group-by: with 10,000 accounts and
five million lots, per-account DataFrame work would dominate everything else. So the sorted
lots frame is turned once into arrays (symbol codes, shares, costs, acquisition days, the
position of each lot among its account's lots of the same symbol), and an account's lots are
a slice ``[start, stop)`` of them. Holding terms depend on the as-of date and are computed
once per date for the whole book.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from planner import tax
from planner.domain import CASH, Book, Lot, arrow, purchase_dates


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
    purchased: np.ndarray  # datetime64[D]: the trade date (acquired but for replacements)
    lot_id: pa.Array
    """Lot ids, as the book's frame holds them (Arrow strings): read per lot sold (see
    :meth:`lot_ids`), never turned into five million Python objects."""
    within: np.ndarray
    ranges: dict[str, tuple[int, int]]
    max_lots: dict[str, int]
    _terms: dict = field(default_factory=dict)

    def rows(self, account_id: str) -> slice:
        start, stop = self.ranges.get(account_id, (0, 0))
        return slice(start, stop)

    def bought_between(self, account_id: str, first: date, last: date) -> tuple[Lot, ...]:
        """The account's lots bought (trade date) from ``first`` to ``last``, both included."""
        rows = self.rows(account_id)
        days = self.purchased[rows]
        hit = np.flatnonzero(
            (days >= np.datetime64(first, "D")) & (days <= np.datetime64(last, "D"))
        )
        hit = hit + rows.start
        return tuple(
            Lot(
                account_id,
                lot_id,
                self.symbols[self.symbol_code[r]],
                float(self.shares[r]),
                float(self.unit_cost[r]),
                self.acquired[r].item(),
                self.purchased[r].item(),
            )
            for r, lot_id in zip(hit.tolist(), self.lot_ids(hit), strict=True)
        )

    def lot_ids(self, rows: np.ndarray) -> list[str]:
        """The ids of the lots at book ``rows``."""
        return self.lot_id.take(pa.array(np.asarray(rows, dtype=np.int64))).to_pylist()

    def terms(self, as_of: date) -> tuple[np.ndarray, np.ndarray]:
        """(long-term flag, days until long-term) of every lot on ``as_of``; cached."""
        if as_of not in self._terms:
            day = self.acquired.astype(np.int64)  # days since 1970-01-01
            if len(day):
                # The holding-period rule once per calendar day of the book's range, then
                # a lookup per lot.
                low = int(day.min())
                calendar = np.arange(low, int(day.max()) + 1).astype("datetime64[D]")
                first = tax.first_long_term_dates(calendar).astype("datetime64[D]")
                until = (first - np.datetime64(as_of, "D")).astype(np.int64)
                days = until[day - low]
            else:
                days = np.zeros(0, dtype=np.int64)
            self._terms.clear()
            self._terms[as_of] = (days <= 0, days)
        return self._terms[as_of]


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def lot_arrays(book: Book) -> LotArrays:
    """The :class:`LotArrays` of ``book``, built on first use and kept while it lives."""
    cached = _CACHE.get(book)
    if cached is None:
        cached = _CACHE[book] = _build(book)
    return cached


def _build(book: Book) -> LotArrays:
    lots = book.lots
    symbols = tuple(sorted(book.securities))
    ranges = book.lot_ranges
    # Symbol codes through the column's own dictionary: each distinct text looked up once.
    encoded = pc.dictionary_encode(arrow(lots["symbol"]))
    position = {s: k for k, s in enumerate(symbols)}
    renumber = np.array([position[s] for s in encoded.dictionary.to_pylist()], dtype=np.int32)
    code = renumber[encoded.indices.to_numpy()] if len(renumber) else np.zeros(0, np.int32)
    starts = np.array(sorted(start for start, _ in ranges.values()), dtype=np.int64)
    # A run of one symbol in one account starts where the symbol changes or an account does;
    # a lot's slot is its distance from the start of its run.
    run_start = np.zeros(len(code), dtype=bool)
    run_start[starts] = True
    run_start[1:] |= code[1:] != code[:-1]
    position = np.arange(len(code))
    within = (position - np.maximum.accumulate(np.where(run_start, position, 0))).astype(np.int32)
    per_account = np.maximum.reduceat(within, starts) + 1 if len(starts) else []
    ids_in_order = sorted(ranges, key=lambda a: ranges[a][0])
    return LotArrays(
        symbols=symbols,
        symbol_code=code,
        shares=lots["shares"].to_numpy(dtype=float),
        unit_cost=lots["unit_cost"].to_numpy(dtype=float),
        acquired=lots["acquired"].to_numpy().astype("datetime64[D]"),
        purchased=purchase_dates(lots).to_numpy().astype("datetime64[D]"),
        lot_id=arrow(lots["lot_id"]),
        within=within,
        ranges=ranges,
        max_lots={a: int(k) for a, k in zip(ids_in_order, per_account, strict=True)},
    )


def accounts_with_recent_trades(book: Book, as_of: date, window_days: int) -> frozenset[str]:
    """Accounts with a trade, or a lot bought, in ``[as_of - window_days, as_of]``: only
    their households can have a live wash-sale block, so every other account skips the
    look-back."""
    start = np.datetime64(as_of - timedelta(days=window_days), "D")
    end = np.datetime64(as_of, "D")
    out: set[str] = set()
    for frame, dates in (
        (book.trades, book.trades["trade_date"]),
        (book.lots, purchase_dates(book.lots)),
    ):
        if frame.empty:
            continue
        days = dates.to_numpy().astype("datetime64[D]")
        live = (days >= start) & (days <= end)
        out.update(frame.loc[live, "account_id"].astype(str).unique())
    return frozenset(out)


# -- values and weights --------------------------------------------------------------------


def _position_values(book: Book):
    """(holders: sorted ids of accounts with lots, the holder index, class code and dollar
    value of every held position in (holder, symbol) order, the sorted class names)."""
    arrays = lot_arrays(book)
    holders = sorted(arrays.ranges)
    symbols = arrays.symbols
    lengths = [arrays.ranges[a][1] - arrays.ranges[a][0] for a in holders]
    # Holders are sorted and their rows tile the lots in that order.
    row_holder = np.repeat(np.arange(len(holders)), lengths)
    shares = np.bincount(
        row_holder * len(symbols) + arrays.symbol_code,
        weights=arrays.shares,
        minlength=len(holders) * len(symbols),
    )
    held = np.flatnonzero(shares)
    holder, code = np.divmod(held, max(len(symbols), 1))
    price = np.array([book.securities[s].price for s in symbols], dtype=float)
    names = sorted({book.securities[s].asset_class for s in symbols})
    class_of = np.array([names.index(book.securities[s].asset_class) for s in symbols])
    class_of = class_of.astype(np.int64).reshape(-1)
    values = shares[held] * price[code]
    return holders, holder, class_of[code] if len(code) else code, values, names


def _group_sums(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group sums of ``values`` (groups ``0 .. n_groups - 1``, 0 where empty), added as
    pandas' group-by adds them, so that the bits do not depend on how groups are keyed."""
    sums = pd.Series(values).groupby(group, sort=True).sum()
    out = np.zeros(n_groups)
    out[sums.index.to_numpy(dtype=np.int64)] = sums.to_numpy()
    return out


def weights_and_values(book: Book) -> tuple[pd.DataFrame, pd.Series]:
    """:func:`class_weights` and :func:`account_values` from one pass over the lots."""
    positions = _position_values(book)
    return class_weights(book, positions), account_values(book, positions)


def account_values(book: Book, positions=None) -> pd.Series:
    """Total value V per account in dollars (holdings + cash + pending cash flow)."""
    holders, holder, _, value, _ = positions or _position_values(book)
    held = pd.Series(_group_sums(holder, value, len(holders)), index=holders)
    ids = sorted(book.accounts)
    cash = np.array([book.accounts[a].cash + book.accounts[a].cash_flow for a in ids])
    return pd.Series(held.reindex(ids).fillna(0.0).to_numpy() + cash, index=ids, name="value")


def class_weights(book: Book, positions=None) -> pd.DataFrame:
    """Current weight per (account, asset class), cash included, as a wide frame.

    Rows are account ids (sorted), columns the union of the models' classes and any class
    held outside a model (legacy holdings, whose target is 0), sorted with CASH last.
    Missing combinations are 0. Accounts worth nothing get NaN weights. (``positions``:
    what :func:`_position_values` gives, when the caller has it already.)
    """
    holders, holder, klass, value, names = positions or _position_values(book)
    sums = _group_sums(holder * len(names) + klass, value, len(holders) * len(names))
    present = np.bincount(klass, minlength=len(names)) > 0
    # Each account's classes side by side in memory, as in a pivot table: the row totals
    # below then add in that order (the bits of the weights depend on it).
    wide = pd.DataFrame(
        np.ascontiguousarray(sums.reshape(len(holders), len(names))[:, present]),
        index=holders,
        columns=[c for c, p in zip(names, present, strict=True) if p],
        copy=False,
    )
    ids = sorted(book.accounts)
    wide = wide.reindex(ids, fill_value=0.0)
    model_classes = {c.asset_class for m in book.models.values() for c in m.classes}
    columns = sorted((model_classes | set(wide.columns)) - {CASH}) + [CASH]
    wide = wide.reindex(columns=columns, fill_value=0.0)
    wide[CASH] = [book.accounts[a].cash + book.accounts[a].cash_flow for a in ids]
    total = wide.sum(axis=1)
    weights = wide.div(total.where(total > 0), axis=0)
    weights.index.name = "account_id"
    weights.columns.name = None
    return weights


def drift_frame(book: Book) -> pd.DataFrame:
    """Long frame of account x class: account_id, model, asset_class, current, target, drift.

    Only the classes of the account's model plus any class it holds outside the model are
    listed. Sorted by account then class (CASH last).
    """
    weights = class_weights(book)
    rows = []
    for account_id in weights.index:
        account = book.accounts[account_id]
        targets = book.models[account.model].class_targets
        current = weights.loc[account_id]
        for asset_class in weights.columns:
            w = float(current[asset_class])
            if asset_class not in targets and not w:
                continue
            t = targets.get(asset_class, 0.0)
            rows.append((account_id, account.model, asset_class, w, t, w - t))
    return pd.DataFrame(
        rows, columns=["account_id", "model", "asset_class", "current", "target", "drift"]
    )
