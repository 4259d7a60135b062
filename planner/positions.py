"""Market values and weights of accounts, vectorised over the whole book.

An account's value is ``V = sum_i p_i h_i + cash + cash_flow``: a pending contribution counts
as cash already there and a pending withdrawal as cash already gone, so that drift is measured
against what the account will hold once the flow settles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from planner.domain import CASH, Book


def _holdings(book: Book) -> tuple[list[str], tuple, tuple[str, ...]]:
    """(holders: sorted ids of accounts with lots, ``(holder, code, shares)`` of every held
    position in (holder, symbol) order, the symbols): holder index, symbol code and the
    shares summed over the position's lots, in one compiled pass over the lot arrays."""
    from planner.lotarrays import lot_arrays

    arrays = lot_arrays(book)
    holders = sorted(arrays.ranges)
    symbols = arrays.symbols
    spans = np.array([arrays.ranges[a] for a in holders], dtype=np.int64).reshape(-1, 2)
    holder, code, shares = _positions(spans, arrays.symbol_code, arrays.shares, len(symbols))
    return holders, (holder, code, shares), symbols


@njit(cache=True)
def _positions(spans, symbol_code, lot_shares, n_symbols):
    """Shares per (holder, symbol) over the holders' lot rows ``spans``, added in row order
    (as ``np.bincount`` adds them); the non-zero ones in (holder, symbol) order."""
    total = np.zeros((spans.shape[0], n_symbols))
    for h in range(spans.shape[0]):
        for row in range(spans[h, 0], spans[h, 1]):
            total[h, symbol_code[row]] += lot_shares[row]
    count = 0
    for h in range(spans.shape[0]):
        for c in range(n_symbols):
            count += total[h, c] != 0.0
    holder = np.empty(count, np.int64)
    code = np.empty(count, np.int64)
    shares = np.empty(count)
    k = 0
    for h in range(spans.shape[0]):
        for c in range(n_symbols):
            if total[h, c] != 0.0:
                holder[k], code[k], shares[k] = h, c, total[h, c]
                k += 1
    return holder, code, shares


def holding_values(book: Book) -> pd.DataFrame:
    """Dollar value held per (account_id, symbol), with the symbol's asset class.

    Columns: account_id, symbol, asset_class, shares, value. Sorted by account, symbol.
    Summed in one pass over the book's lot arrays, so it costs the same per lot whether
    the book has ten accounts or ten thousand.
    """
    holders, (holder, code, shares), symbols = _holdings(book)
    if not holders:
        return pd.DataFrame(
            {
                "account_id": pd.Series(dtype=object),
                "symbol": pd.Series(dtype=object),
                "asset_class": pd.Series(dtype=object),
                "shares": pd.Series(dtype=float),
                "value": pd.Series(dtype=float),
            }
        )
    price = np.array([book.securities[s].price for s in symbols])
    klass = np.array([book.securities[s].asset_class for s in symbols], dtype=object)
    return pd.DataFrame(
        {
            "account_id": np.array(holders, dtype=object)[holder],
            "symbol": np.array(symbols, dtype=object)[code],
            "asset_class": klass[code],
            "shares": shares,
            "value": shares * price[code],
        }
    )


def _group_sums(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group sums of ``values`` (groups ``0 .. n_groups - 1``, 0 where empty): pandas'
    group-by sum on integer keys, the kernel (and so the bits) a group-by on the account
    ids would give, without building a frame of 500k strings."""
    sums = pd.Series(values).groupby(group, sort=True).sum()
    out = np.zeros(n_groups)
    out[sums.index.to_numpy(dtype=np.int64)] = sums.to_numpy()
    return out


def _position_values(book: Book):
    """(holders, holder index, class code and dollar value of every held position, sorted
    class names)."""
    holders, (holder, code, shares), symbols = _holdings(book)
    price = np.array([book.securities[s].price for s in symbols], dtype=float)
    names = sorted({book.securities[s].asset_class for s in symbols})
    class_of = np.array([names.index(book.securities[s].asset_class) for s in symbols])
    class_of = class_of.astype(np.int64).reshape(-1)
    return holders, holder, class_of[code] if len(code) else code, shares * price[code], names


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
    # Laid out as pandas lays out a pivot table's values (each account's classes side by
    # side in memory): the row totals below then add in the order, and so to the bits, they
    # did when this frame was a pivot table (checked on the benchmark books, pandas 3.1).
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
