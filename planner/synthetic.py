"""Seeded generators of realistic books: the demo book, benchmarks and property tests.

Prices come from the project's own factor model (market + asset-class factors + small
idiosyncratic noise, so substitutes correlate about 0.99), daily over business days. Lots are
bought along the simulated path at its prices, so gains and losses, short- and long-term,
arise naturally; holdings are drawn around the model with noise so that a good share of
accounts sit outside their bands. Nothing is read from outside the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from planner.domain import (
    CASH,
    LOT_COLUMNS,
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

AS_OF = date(2026, 11, 20)


@dataclass(frozen=True)
class _Fund:
    symbol: str
    asset_class: str
    group: str
    start_price: float
    spread_bps: float = 2.0
    min_trade: float = 100.0
    restricted: str = "none"


# asset class: (annual drift, annual vol of the class factor, market beta)
CLASSES = {
    "US_EQUITY": (0.08, 0.10, 1.0),
    "US_SMALL": (0.08, 0.14, 1.1),
    "INTL_DEV": (0.06, 0.11, 0.8),
    "EM_EQUITY": (0.06, 0.16, 0.9),
    "US_BONDS": (0.03, 0.05, 0.05),
    "TIPS": (0.03, 0.06, 0.05),
    "REIT": (0.06, 0.17, 0.8),
}
FUNDS = (
    _Fund("VTI", "US_EQUITY", "VTI", 210.0, 1.0),
    _Fund("ITOT", "US_EQUITY", "ITOT", 95.0, 1.5),
    _Fund("SCHB", "US_EQUITY", "SCHB", 48.0, 2.0),
    _Fund("IJR", "US_SMALL", "SP600", 95.0, 2.0),
    _Fund("VB", "US_SMALL", "VB", 190.0, 2.0),
    _Fund("VEA", "INTL_DEV", "VEA", 45.0, 2.0),
    _Fund("IEFA", "INTL_DEV", "IEFA", 65.0, 2.0),
    _Fund("SCHF", "INTL_DEV", "SCHF", 34.0, 3.0),
    _Fund("VWO", "EM_EQUITY", "VWO", 41.0, 3.0),
    _Fund("IEMG", "EM_EQUITY", "IEMG", 50.0, 3.0),
    _Fund("BND", "US_BONDS", "BND", 75.0, 1.0),
    _Fund("AGG", "US_BONDS", "AGG", 100.0, 1.0),
    _Fund("SCHZ", "US_BONDS", "SCHZ", 46.0, 2.0),
    _Fund("SCHP", "TIPS", "SCHP", 53.0, 2.0),
    _Fund("TIP", "TIPS", "TIP", 108.0, 2.0),
    _Fund("VNQ", "REIT", "VNQ", 85.0, 2.0),
    _Fund("SCHH", "REIT", "SCHH", 21.0, 3.0),
    _Fund("IVV", "US_EQUITY", "SP500", 480.0, 1.0),
    _Fund("VOO", "US_EQUITY", "SP500", 440.0, 1.0),
    _Fund("OLDFX", "US_EQUITY", "OLDFX", 31.0, 5.0, 250.0, "no_buy"),
)

MODEL_SPECS = {
    "conservative": {
        "description": "Conservative 30/70",
        "targets": {
            "US_EQUITY": 0.18,
            "INTL_DEV": 0.08,
            "EM_EQUITY": 0.02,
            "US_BONDS": 0.48,
            "TIPS": 0.18,
            "REIT": 0.03,
        },
        "cash": 0.03,
        "band": Band(rel=0.20),
        "outer": None,
        "rebalance_to": "target",
        "trigger": TriggerSpec("calendar", "semiannual", False, 10000.0),
    },
    "moderate": {
        "description": "Moderate 60/40",
        "targets": {
            "US_EQUITY": 0.36,
            "US_SMALL": 0.05,
            "INTL_DEV": 0.12,
            "EM_EQUITY": 0.04,
            "US_BONDS": 0.30,
            "TIPS": 0.06,
            "REIT": 0.05,
        },
        "cash": 0.02,
        "band": Band(abs=0.05, rel=0.25, combine="tighter"),
        "outer": Band(abs=0.10, rel=0.50, combine="tighter"),
        "rebalance_to": "midpoint",
        "trigger": TriggerSpec("hybrid", "quarterly", False, 5000.0),
    },
    "aggressive": {
        "description": "Aggressive 85/15",
        "targets": {
            "US_EQUITY": 0.45,
            "US_SMALL": 0.10,
            "INTL_DEV": 0.18,
            "EM_EQUITY": 0.07,
            "US_BONDS": 0.10,
            "REIT": 0.09,
        },
        "cash": 0.01,
        "band": Band(abs=0.05),
        "outer": None,
        "rebalance_to": "band_edge",
        "trigger": TriggerSpec("threshold", None, False, 5000.0),
    },
}
IMPLEMENTATION = {
    "US_EQUITY": ("VTI", "ITOT", "SCHB"),
    "US_SMALL": ("IJR", "VB"),
    "INTL_DEV": ("VEA", "IEFA", "SCHF"),
    "EM_EQUITY": ("VWO", "IEMG"),
    "US_BONDS": ("BND", "AGG", "SCHZ"),
    "TIPS": ("SCHP", "TIP"),
    "REIT": ("VNQ", "SCHH"),
}
RATES = (  # (st_rate, lt_rate): federal + NIIT + state combinations
    (0.22 + 0.05, 0.15 + 0.05),
    (0.24 + 0.05, 0.15 + 0.05),
    (0.32 + 0.038 + 0.06, 0.15 + 0.038 + 0.06),
    (0.35 + 0.038 + 0.05, 0.20 + 0.038 + 0.05),
    (0.37 + 0.038 + 0.093, 0.20 + 0.038 + 0.093),
    (0.37 + 0.038, 0.20 + 0.038),
)


def business_days(end: date, years: float) -> pd.DatetimeIndex:
    start = pd.Timestamp(end) - pd.Timedelta(days=int(years * 365.25))
    return pd.bdate_range(start, pd.Timestamp(end))


def simulate_prices(funds, classes, days: pd.DatetimeIndex, rng) -> pd.DataFrame:
    """Daily prices from market + class factors + idiosyncratic noise (log returns)."""
    n_days = len(days)
    dt = 1 / 252
    market = rng.normal(0.0, 0.15 * np.sqrt(dt), n_days)
    class_names = sorted({f.asset_class for f in funds})
    factor = {c: rng.normal(0.0, classes[c][1] * np.sqrt(dt), n_days) for c in class_names}
    out = {}
    for f in funds:
        drift, _, beta = classes[f.asset_class]
        noise = rng.normal(0.0, 0.006 * np.sqrt(dt), n_days)
        r = (drift - 0.5 * 0.03) * dt + beta * market + factor[f.asset_class] + noise
        path = np.exp(np.cumsum(r))
        out[f.symbol] = f.start_price * path / path[-1] * rng.uniform(0.9, 1.1)
    return pd.DataFrame(out, index=days).round(4)


def _models(names=("conservative", "moderate", "aggressive")) -> dict[str, Model]:
    models = {}
    for name in names:
        spec = MODEL_SPECS[name]
        classes = []
        for c, t in spec["targets"].items():
            syms = IMPLEMENTATION[c]
            classes.append(ClassTarget(c, t, syms, {syms[0]: t}, spec["band"], spec["outer"]))
        classes.append(ClassTarget(CASH, spec["cash"], (), {}, Band(abs=0.02), None))
        models[name] = Model(
            name, tuple(classes), spec["rebalance_to"], spec["trigger"], spec["description"]
        )
    return models


def _lot_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(LOT_COLUMNS))
    frame["acquired"] = pd.to_datetime(frame["acquired"])
    frame["shares"] = frame["shares"].astype(float)
    frame["unit_cost"] = frame["unit_cost"].astype(float)
    return frame.sort_values(
        ["account_id", "symbol", "acquired", "lot_id"], kind="stable", ignore_index=True
    )


def generate_book(
    seed: int = 0,
    n_accounts: int = 200,
    as_of: date = AS_OF,
    lots_per_holding: tuple[int, int] = (1, 6),
    years_of_prices: int = 3,
) -> Book:
    """The demo-style book: 3 models over 7 classes and ~20 ETFs, households of taxable,
    IRA and Roth accounts, lots bought over six years, recent trades with live wash-sale
    windows, cash flows, and many accounts outside their bands."""
    rng = np.random.default_rng(seed)
    history = business_days(as_of, 6.5)
    prices = simulate_prices(FUNDS, CLASSES, history, rng)
    last = prices.iloc[-1]
    securities = {
        f.symbol: Security(
            f.symbol,
            f.asset_class,
            float(last[f.symbol]),
            f.group,
            f.spread_bps,
            0.0,
            f.min_trade,
            f.restricted,
        )
        for f in FUNDS
    }
    models = _models()
    names = sorted(models)
    accounts: dict[str, Account] = {}
    lot_rows, trade_rows = [], []
    household = 0
    k = 0
    recent = history[history >= pd.Timestamp(as_of) - pd.Timedelta(days=60)]
    while k < n_accounts:
        household += 1
        hh = f"H{household:04d}"
        st, lt = RATES[int(rng.integers(len(RATES)))]
        regs = ["taxable"] + list(
            rng.choice(["ira", "roth"], size=int(rng.integers(0, 3)), replace=False)
        )
        model = names[int(rng.integers(len(names)))]
        for reg in regs:
            if k >= n_accounts:
                break
            k += 1
            aid = f"A{k:04d}"
            value = float(np.exp(rng.normal(np.log(400_000), 1.0)))
            value = min(max(value, 50_000.0), 5_000_000.0)
            m = models[model]
            weights = {c.asset_class: c.target for c in m.classes if c.asset_class != CASH}
            noisy = {c: max(0.0, w * np.exp(rng.normal(0, 0.22))) for c, w in weights.items()}
            total = sum(noisy.values())
            cash_weight = float(rng.uniform(0.0, 0.05))
            held_dollars = {c: w / total * value * (1 - cash_weight) for c, w in noisy.items()}
            lot_n = 0
            for c, dollars in held_dollars.items():
                syms = IMPLEMENTATION[c]
                choice = syms[0] if rng.random() < 0.7 else syms[int(rng.integers(1, len(syms)))]
                if c == "US_EQUITY" and rng.random() < 0.12:
                    choice = "OLDFX" if rng.random() < 0.5 else "IVV"
                price_now = securities[choice].price
                n_lots = int(rng.integers(lots_per_holding[0], lots_per_holding[1] + 1))
                split = rng.dirichlet(np.ones(n_lots)) * dollars
                for part in split:
                    day = history[int(rng.integers(0, len(history) - 1))]
                    cost = float(prices.at[day, choice])
                    shares = round(part / price_now, 0 if rng.random() < 0.7 else 3)
                    if shares <= 0:
                        continue
                    lot_n += 1
                    lot_rows.append(
                        (aid, f"{aid}-L{lot_n:03d}", choice, shares, round(cost, 4), day)
                    )
            cash_flow = 0.0
            if rng.random() < 0.15:
                cash_flow = float(np.round(rng.choice([1, -1]) * rng.uniform(5_000, 100_000), -2))
                cash_flow = max(cash_flow, -0.3 * value)
            last_rebalanced = (
                (pd.Timestamp(as_of) - pd.Timedelta(days=int(rng.integers(20, 540)))).date()
                if rng.random() < 0.9
                else None
            )
            accounts[aid] = Account(
                aid,
                model,
                hh,
                reg,
                round(cash_weight * value, 2),
                round(st, 4),
                round(lt, 4),
                gain_budget=float(np.round(rng.uniform(2_000, 20_000), -2))
                if rng.random() < 0.08
                else None,
                st_gain_cap=float(np.round(rng.uniform(0, 5_000), -2))
                if rng.random() < 0.05
                else None,
                cash_flow=cash_flow,
                fractional_shares=bool(rng.random() < 0.3),
                do_not_buy=frozenset({"VWO"}) if rng.random() < 0.04 else frozenset(),
                do_not_sell=frozenset({"VTI"}) if rng.random() < 0.03 else frozenset(),
                last_rebalanced=last_rebalanced,
            )
            # Recent trades: a loss sale (blocks buys of its group) or a buy (blocks loss sales).
            if rng.random() < 0.15 and len(recent) > 0:
                f = FUNDS[int(rng.integers(0, 17))]
                day = recent[int(rng.integers(len(recent)))]
                px = float(prices.at[day, f.symbol])
                if rng.random() < 0.6:
                    shares = float(rng.integers(10, 200))
                    trade_rows.append(
                        (
                            aid,
                            day,
                            f.symbol,
                            "sell",
                            shares,
                            px,
                            round(-shares * px * rng.uniform(0.03, 0.15), 2),
                        )
                    )
                else:
                    shares = float(rng.integers(5, 100))
                    trade_rows.append((aid, day, f.symbol, "buy", shares, px, np.nan))
                    lot_n += 1
                    lot_rows.append(
                        (aid, f"{aid}-L{lot_n:03d}", f.symbol, shares, round(px, 4), day)
                    )
    lots = _lot_frame(lot_rows)
    lots = lots[lots["acquired"] <= pd.Timestamp(as_of)].reset_index(drop=True)
    trades = pd.DataFrame(trade_rows, columns=list(TRADE_COLUMNS))
    trades["trade_date"] = pd.to_datetime(trades["trade_date"])
    trades["realized_gain"] = trades["realized_gain"].astype(float)
    trades = trades.sort_values(
        ["account_id", "trade_date", "symbol", "side"], kind="stable", ignore_index=True
    )
    shown = prices.iloc[-int(years_of_prices * 252) :]
    settings = Settings(as_of=as_of, wash_sale_scope="household")
    return Book(securities, models, accounts, lots, trades, shown, settings)


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
        _Fund(s, k, s, float(rng.uniform(20, 300)), 2.0, 100.0)
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
    acc = np.repeat(account_ids, n_securities * L)
    sym = np.tile(np.repeat(np.array(symbols), L), n)
    lot_ids = np.char.add(
        np.char.add(acc.astype(str), "-"), np.tile(np.arange(n_securities * L), n).astype(str)
    )
    lots = pd.DataFrame(
        {
            "account_id": acc,
            "lot_id": lot_ids,
            "symbol": sym,
            "shares": shares.ravel(),
            "unit_cost": np.round(costs.ravel(), 4),
            "acquired": days.to_numpy()[day_idx.ravel()],
        }
    )
    lots = lots[lots["shares"] > 0].sort_values(
        ["account_id", "symbol", "acquired", "lot_id"], kind="stable", ignore_index=True
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
