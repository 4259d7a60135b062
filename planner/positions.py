"""Market values and weights of accounts, vectorised over the whole book.

An account's value is ``V = sum_i p_i h_i + cash + cash_flow``: a pending contribution counts
as cash already there and a pending withdrawal as cash already gone, so that drift is measured
against what the account will hold once the flow settles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.domain import CASH, Book


def holding_values(book: Book) -> pd.DataFrame:
    """Dollar value held per (account_id, symbol), with the symbol's asset class.

    Columns: account_id, symbol, asset_class, shares, value. Sorted by account, symbol.
    Summed with one ``bincount`` over the book's lot arrays, so it costs the same per lot
    whether the book has ten accounts or ten thousand.
    """
    from planner.lotarrays import lot_arrays

    arrays = lot_arrays(book)
    holders = sorted(arrays.ranges)
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
    symbols = arrays.symbols
    lengths = np.array([arrays.ranges[a][1] - arrays.ranges[a][0] for a in holders])
    starts = np.array([arrays.ranges[a][0] for a in holders])
    # Row order of the lots is the book's; map each row to its account's position in
    # ``holders`` (sorted ids), which is also the row order (the book is sorted by account).
    order = np.argsort(starts, kind="stable")
    holder_of_row = np.repeat(order, lengths[order])
    key = holder_of_row * len(symbols) + arrays.symbol_code
    shares = np.bincount(key, weights=arrays.shares, minlength=len(holders) * len(symbols))
    held = np.flatnonzero(shares != 0)
    holder, code = np.divmod(held, len(symbols))
    price = np.array([book.securities[s].price for s in symbols])
    klass = np.array([book.securities[s].asset_class for s in symbols], dtype=object)
    return pd.DataFrame(
        {
            "account_id": np.array(holders, dtype=object)[holder],
            "symbol": np.array(symbols, dtype=object)[code],
            "asset_class": klass[code],
            "shares": shares[held],
            "value": shares[held] * price[code],
        }
    )


def account_values(book: Book) -> pd.Series:
    """Total value V per account in dollars (holdings + cash + pending cash flow)."""
    held = holding_values(book).groupby("account_id")["value"].sum()
    ids = sorted(book.accounts)
    cash = np.array([book.accounts[a].cash + book.accounts[a].cash_flow for a in ids])
    return pd.Series(held.reindex(ids).fillna(0.0).to_numpy() + cash, index=ids, name="value")


def class_weights(book: Book) -> pd.DataFrame:
    """Current weight per (account, asset class), cash included, as a wide frame.

    Rows are account ids (sorted), columns the union of the models' classes and any class
    held outside a model (legacy holdings, whose target is 0), sorted with CASH last.
    Missing combinations are 0. Accounts worth nothing get NaN weights.
    """
    values = holding_values(book)
    ids = sorted(book.accounts)
    wide = values.pivot_table(
        index="account_id", columns="asset_class", values="value", aggfunc="sum", fill_value=0.0
    ).reindex(ids, fill_value=0.0)
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
