"""The seeded benchmark book: one model of many synthetic securities, every account
holding every security in several lots, for speed and memory measurements
(``examples/benchmark.py``) and tests of large runs. Prices come from
:func:`planner.synthetic.simulate_prices`, as the demo book's do.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from planner.domain import (
    CASH,
    TRADE_COLUMNS,
    Account,
    Band,
    Book,
    ClassTarget,
    Model,
    Security,
    Settings,
    TriggerSpec,
)
from planner.synthetic import AS_OF, Fund, business_days, simulate_prices


def _lexical_rank(texts) -> np.ndarray:
    """The position of each text in sorted order (texts distinct)."""
    rank = np.empty(len(texts), dtype=np.int64)
    rank[np.argsort(np.asarray(texts, dtype=object), kind="stable")] = np.arange(len(texts))
    return rank


def _benchmark_lots(account_ids, symbols, shares, costs, acquired, day_idx) -> pd.DataFrame:
    """The lots frame of a benchmark book from (account, security, lot) arrays: rows with
    shares, sorted by account, symbol, acquired and lot id (``{account}-{k}``, ``k`` the
    lot's number in its account, compared as text), as a sort of the text columns would.

    The sort runs on one integer key (the ranks of the four columns) and the texts are built
    only for the rows kept, so ten million lots take seconds, not minutes."""
    n, n_securities, per_holding = shares.shape
    n_lots = n_securities * per_holding
    account, k = np.divmod(np.arange(shares.size), n_lots)
    security = k // per_holding
    days = day_idx.ravel().astype(np.int64)
    key = _lexical_rank(account_ids.tolist())[account]
    key = key * n_securities + _lexical_rank(symbols)[security]
    key = key * (int(days.max(initial=0)) + 1) + days
    key = key * n_lots + _lexical_rank([str(i) for i in range(n_lots)])[k]
    rows = np.flatnonzero(shares.ravel() > 0)
    rows = rows[np.argsort(key[rows], kind="stable")]
    del key, days
    account, k, security = account[rows], k[rows], security[rows]
    prefixes = np.array([f"{a}-" for a in account_ids.tolist()], dtype=object)
    numbers = np.array([str(i) for i in range(n_lots)], dtype=object)
    lot_ids = np.add(prefixes[account], numbers[k])  # str + str, element by element in C
    text = pd.Series(np.array(account_ids)).dtype  # what pandas makes of the text arrays
    return pd.DataFrame(
        {
            "account_id": pd.Series(account_ids.astype(object)[account], dtype=text),
            "lot_id": pd.Series(lot_ids, dtype=text),
            "symbol": pd.Series(np.array(symbols, dtype=object)[security], dtype=text),
            "shares": shares.ravel()[rows],
            "unit_cost": costs.ravel()[rows],
            "acquired": acquired.ravel()[rows],
        }
    )


def generate_benchmark_book(
    n_accounts: int,
    n_securities: int = 50,
    lots_per_holding: int = 10,
    seed: int = 0,
    as_of: date = AS_OF,
) -> Book:
    """One model of ``n_securities`` synthetic securities in 8 classes; every account is
    drifted outside its bands; ``lots_per_holding`` lots per security held. Vectorised."""
    rng = np.random.default_rng(seed)
    n_classes = 8
    symbols = [f"S{i:03d}" for i in range(n_securities)]
    klass = [f"C{i % n_classes}" for i in range(n_securities)]
    classes = {f"C{c}": (0.06, 0.08 + 0.01 * c, 0.3 + 0.1 * c) for c in range(n_classes)}
    funds = [
        Fund(s, k, s, float(rng.uniform(20, 300)), 2.0, 100.0)
        for s, k in zip(symbols, klass, strict=True)
    ]
    days = business_days(as_of, 2.0)
    prices = simulate_prices(funds, classes, days, rng)
    last = prices.iloc[-1].to_numpy()
    securities = {
        s: Security(s, k, float(p), s, 2.0, 0.0, 100.0)
        for s, k, p in zip(symbols, klass, last, strict=True)
    }
    target = rng.dirichlet(np.ones(n_securities) * 5) * 0.98
    by_class: dict[str, list[int]] = {}
    for i, k in enumerate(klass):
        by_class.setdefault(k, []).append(i)
    model_classes = tuple(
        ClassTarget(
            k,
            float(target[idx].sum()),
            tuple(symbols[i] for i in idx),
            {symbols[i]: float(target[i]) for i in idx},
            Band(abs=0.02),
            None,
        )
        for k, idx in sorted(by_class.items())
    ) + (ClassTarget(CASH, 0.02, (), {}, Band(abs=0.01), None),)
    model = Model("bench", model_classes, "target", TriggerSpec("threshold"), "benchmark model")
    # Holdings: target tilted hard so every account breaches a band.
    n, L = n_accounts, lots_per_holding
    values = np.exp(rng.normal(np.log(500_000), 0.6, n))
    tilt = np.exp(rng.normal(0, 0.6, (n, n_securities)))
    weights = target * tilt
    weights = weights / weights.sum(axis=1, keepdims=True) * 0.97
    dollars = weights * values[:, None]
    split = (
        rng.dirichlet(np.ones(L), size=(n, n_securities))
        if L > 1
        else np.ones((n, n_securities, 1))
    )
    lot_dollars = dollars[:, :, None] * split
    day_idx = rng.integers(0, len(days) - 1, size=(n, n_securities, L))
    costs = prices.to_numpy()[day_idx, np.arange(n_securities)[None, :, None]]
    shares = np.round(lot_dollars / last[None, :, None], 2)
    account_ids = np.array([f"B{i:06d}" for i in range(n)])
    lots = _benchmark_lots(
        account_ids, symbols, shares, np.round(costs, 4), days.to_numpy()[day_idx], day_idx
    )
    accounts = {
        a: Account(
            a,
            "bench",
            a,
            "taxable",
            float(round(v * 0.03, 2)),
            0.408,
            0.238,
            fractional_shares=False,
            last_rebalanced=None,
        )
        for a, v in zip(account_ids, values, strict=True)
    }
    trades = pd.DataFrame({c: pd.Series(dtype=object) for c in TRADE_COLUMNS})
    trades["trade_date"] = pd.Series(dtype="datetime64[ns]")
    for c in ("shares", "price", "realized_gain"):
        trades[c] = pd.Series(dtype=float)
    return Book(
        securities,
        {"bench": model},
        accounts,
        lots,
        trades,
        prices,
        Settings(as_of=as_of, wash_sale_scope="account"),
    )
