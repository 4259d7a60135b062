"""Embedded gains of an account's lots, and the taxable accounts where they weigh most
(``rebalance whatif --top-bracket N``). Dollars; rates are fractions."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from planner.domain import Book
from planner.errors import ConfigError
from planner.positions import weights_and_values
from planner.tax import holding_terms, net_capital_gains


def embedded_gains(book: Book, account_id: str, when: date) -> tuple[float, float, int]:
    """Unrealised short- and long-term gain (dollars, net of losses within each term) of
    the account's lots if sold on ``when`` at the book's prices, and how many lots held at
    a gain would be short-term."""
    lots = book.lot_frame(account_id)
    if lots.empty:
        return 0.0, 0.0, 0
    price = lots["symbol"].map({s: sec.price for s, sec in book.securities.items()})
    gain = (lots["shares"] * price - lots["shares"] * lots["unit_cost"]).to_numpy(dtype=float)
    long_term = holding_terms(lots["acquired"].to_numpy(), when)
    short = ~long_term
    return (
        float(gain[short].sum()),
        float(gain[long_term].sum()),
        int(np.count_nonzero(short & (gain > 0))),
    )


def top_bracket(book: Book, count: int, as_of: date | None = None) -> pd.DataFrame:
    """The ``count`` taxable accounts with the largest *embedded tax*: the tax that selling
    every lot on ``as_of`` would cost at the account's own rates, netting its gains and
    losses by term and across terms (short-term gains at the short-term rate), without the
    year's other gains, carried-in losses or the $3,000 deduction. Largest first, ties by
    account id; ``embedded_tax_pct`` is that tax as a fraction of account value."""
    if count < 1:
        raise ConfigError(f"--top-bracket {count}: expected a number of accounts >= 1")
    as_of = as_of or book.settings.as_of or date.today()
    _, values = weights_and_values(book)
    rows = []
    for account_id in sorted(book.accounts):
        account = book.accounts[account_id]
        if not account.taxable:
            continue
        st, lt, st_lots = embedded_gains(book, account_id, as_of)
        n = net_capital_gains(st, lt, ordinary_offset_limit=0.0)
        tax = n.taxable_st * account.st_rate + n.taxable_lt * account.lt_rate
        value = float(values.get(account_id, 0.0))
        rows.append(
            {
                "account_id": account_id,
                "model": account.model,
                "household_id": account.household_id,
                "st_rate": account.st_rate,
                "lt_rate": account.lt_rate,
                "value": value,
                "unrealized_st": st,
                "unrealized_lt": lt,
                "st_gain_lots": st_lots,
                "embedded_tax": tax,
                "embedded_tax_pct": tax / value if value > 0 else 0.0,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.sort_values(["embedded_tax", "account_id"], ascending=[False, True])
    return frame.head(count).reset_index(drop=True)
