"""Seeded generators of realistic books: the demo book and property tests (the benchmark
book is in :mod:`planner.benchmark_book`), and the price model both use.

Prices come from the project's own factor model (market + asset-class factors + small
idiosyncratic noise, so substitutes correlate about 0.99), daily over business days. Lots are
bought along the simulated path at its prices, so gains and losses, short- and long-term,
arise naturally; holdings are drawn around the model with noise so that a good share of
accounts sit outside their bands. Nothing is read from outside the project.

The trade history of :func:`generate_book` covers the last :data:`TRADE_HISTORY_DAYS` days
and agrees with the lots: every lot acquired in that span (dividend reinvestments included)
has its buy, and every sale is a loss sale in a taxable account that no buy of its wash group
in the household within the wash-sale window would have washed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from planner.calendar import last_review_on_or_before, next_business_day_on_or_after
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
    TaxReturn,
    TriggerSpec,
)

AS_OF = date(2026, 11, 20)

TRADE_HISTORY_DAYS = 60
"""Days of trade history a generated book carries (twice the wash-sale window)."""

WASH_DAYS = 30
"""The wash-sale window on each side of a loss sale."""


@dataclass(frozen=True)
class Fund:
    """One synthetic fund: its class, wash group, starting price (dollars), bid-ask spread
    (basis points), minimum trade (dollars) and firm-wide restriction."""

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
    Fund("VTI", "US_EQUITY", "VTI", 210.0, 1.0),
    Fund("ITOT", "US_EQUITY", "ITOT", 95.0, 1.5),
    Fund("SCHB", "US_EQUITY", "SCHB", 48.0, 2.0),
    Fund("IJR", "US_SMALL", "SP600", 95.0, 2.0),
    Fund("VB", "US_SMALL", "VB", 190.0, 2.0),
    Fund("VEA", "INTL_DEV", "VEA", 45.0, 2.0),
    Fund("IEFA", "INTL_DEV", "IEFA", 65.0, 2.0),
    Fund("SCHF", "INTL_DEV", "SCHF", 34.0, 3.0),
    Fund("VWO", "EM_EQUITY", "VWO", 41.0, 3.0),
    Fund("IEMG", "EM_EQUITY", "IEMG", 50.0, 3.0),
    Fund("BND", "US_BONDS", "BND", 75.0, 1.0),
    Fund("AGG", "US_BONDS", "AGG", 100.0, 1.0),
    Fund("SCHZ", "US_BONDS", "SCHZ", 46.0, 2.0),
    Fund("SCHP", "TIPS", "SCHP", 53.0, 2.0),
    Fund("TIP", "TIPS", "TIP", 108.0, 2.0),
    Fund("VNQ", "REIT", "VNQ", 85.0, 2.0),
    Fund("SCHH", "REIT", "SCHH", 21.0, 3.0),
    Fund("IVV", "US_EQUITY", "SP500", 480.0, 1.0),
    Fund("VOO", "US_EQUITY", "SP500", 440.0, 1.0),
    Fund("OLDFX", "US_EQUITY", "OLDFX", 31.0, 5.0, 250.0, "no_buy"),
)

MODEL_SPECS = {
    "conservative": {
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
        # S&P 500 funds as alternates: substitutes inside one wash group (IVV/VOO).
        "securities": {"US_EQUITY": ("VTI", "IVV", "VOO")},
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
EQUITY_CLASSES = ("US_EQUITY", "US_SMALL", "INTL_DEV", "EM_EQUITY", "REIT")
BOND_CLASSES = ("US_BONDS", "TIPS")
MONTHLY_PAYERS = BOND_CLASSES
"""Classes whose funds pay a dividend every month (reinvested in DRIP accounts)."""

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


def _implementation(name: str) -> dict[str, tuple[str, ...]]:
    """Securities of each class of a model: preferred first, then alternates."""
    return {**IMPLEMENTATION, **MODEL_SPECS[name].get("securities", {})}


def describe_mix(name: str, targets: dict[str, float], cash: float) -> str:
    """E.g. ``Moderate 62/36/2 (equity/bonds/cash)``: the model's own targets, in percent."""
    equity = sum(t for c, t in targets.items() if c in EQUITY_CLASSES)
    bonds = sum(t for c, t in targets.items() if c in BOND_CLASSES)
    mix = "/".join(f"{round(x * 100):d}" for x in (equity, bonds, cash))
    return f"{name.capitalize()} {mix} (equity/bonds/cash)"


def _models(names=("conservative", "moderate", "aggressive")) -> dict[str, Model]:
    models = {}
    for name in names:
        spec = MODEL_SPECS[name]
        implementation = _implementation(name)
        classes = []
        for c, t in spec["targets"].items():
            syms = implementation[c]
            classes.append(ClassTarget(c, t, syms, {syms[0]: t}, spec["band"], spec["outer"]))
        classes.append(ClassTarget(CASH, spec["cash"], (), {}, Band(abs=0.02), None))
        description = describe_mix(name, spec["targets"], spec["cash"])
        models[name] = Model(
            name, tuple(classes), spec["rebalance_to"], spec["trigger"], description
        )
    return models


def _previous_review(frequency: str, review: date) -> date:
    return last_review_on_or_before(frequency, review - timedelta(days=1))


def _account_dates(trigger: TriggerSpec, as_of: date, rng) -> tuple[date | None, date | None]:
    """(last_rebalanced, last_reviewed) of one account, as a firm's records would have them.

    - threshold: rebalanced 20-540 days ago (10 %: never); no calendar reviews.
    - calendar: every review rebalances, so ``last_rebalanced`` is a review date: the
      latest (80 %), the one before (12 %: the latest review was missed and is still due)
      or none (8 %: a new account, first reviewed on the next review date).
    - hybrid: rebalanced any day 20-540 days ago (on a review with a breach, or on an
      outer-band alarm) or never; ``last_reviewed`` records the latest review, quiet or not
      (80 %), the one before (12 %: the latest review is still due) or none (8 %).
    """
    if trigger.kind == "calendar":
        latest = last_review_on_or_before(trigger.calendar, as_of)
        u = rng.random()
        if u < 0.80:
            return latest, None
        if u < 0.92:
            return _previous_review(trigger.calendar, latest), None
        return None, None
    days_ago = int(rng.integers(20, 540))
    rebalanced = (as_of - timedelta(days=days_ago)) if rng.random() < 0.9 else None
    if trigger.kind != "hybrid":
        return rebalanced, None
    latest = last_review_on_or_before(trigger.calendar, as_of)
    u = rng.random()
    if u < 0.80:
        return rebalanced, latest
    if u < 0.92:
        return rebalanced, _previous_review(trigger.calendar, latest)
    return rebalanced, None


def _monthly_pay_dates(as_of: date, days: int) -> list[pd.Timestamp]:
    """First business day of each month within the last ``days`` days up to ``as_of``."""
    out = []
    year, month = as_of.year, as_of.month
    while True:
        d = next_business_day_on_or_after(date(year, month, 1))
        if d <= as_of:
            if (as_of - d).days > days:
                break
            out.append(pd.Timestamp(d))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return sorted(out)


def _washed(sale, buys_by_household: dict, household_of: dict, group_of: dict) -> bool:
    """Whether a household buy of the sale's wash group within the window washes it."""
    account_id, day, symbol = sale[0], sale[1], sale[2]
    group = group_of[symbol]
    span = pd.Timedelta(days=WASH_DAYS)
    return any(
        group_of[s] == group and day - span <= d <= day + span
        for s, d in buys_by_household.get(household_of[account_id], ())
    )


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
    """The demo-style book: 3 models over 7 classes and 20 ETFs (IVV and VOO substitutes in
    one wash group), households of taxable, IRA and Roth accounts, lots bought over six
    years, dividend reinvestments, recent tax-loss harvests and buys with live wash-sale
    windows, cash flows, calendar review records and many accounts outside their bands."""
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
    group_of = {s: sec.wash_group for s, sec in securities.items()}
    models = _models()
    names = sorted(models)
    accounts: dict[str, Account] = {}
    lot_rows, sales = [], []
    household = 0
    k = 0
    start = pd.Timestamp(as_of) - pd.Timedelta(days=TRADE_HISTORY_DAYS)
    recent = history[history >= start]
    pay_dates = _monthly_pay_dates(as_of, TRADE_HISTORY_DAYS)
    while k < n_accounts:
        household += 1
        hh = f"H{household:04d}"
        st, lt = RATES[int(rng.integers(len(RATES)))]
        regs = ["taxable"] + list(
            rng.choice(["ira", "roth"], size=int(rng.integers(0, 3)), replace=False)
        )
        model = names[int(rng.integers(len(names)))]
        implementation = _implementation(model)
        for reg in regs:
            if k >= n_accounts:
                break
            k += 1
            aid = f"A{k:04d}"
            own: list[tuple[str, float, float, pd.Timestamp]] = []  # symbol, shares, cost, day
            value = float(np.exp(rng.normal(np.log(400_000), 1.0)))
            value = min(max(value, 50_000.0), 5_000_000.0)
            m = models[model]
            weights = {c.asset_class: c.target for c in m.classes if c.asset_class != CASH}
            noisy = {c: max(0.0, w * np.exp(rng.normal(0, 0.22))) for c, w in weights.items()}
            total = sum(noisy.values())
            cash_weight = float(rng.uniform(0.0, 0.05))
            held_dollars = {c: w / total * value * (1 - cash_weight) for c, w in noisy.items()}
            held: dict[str, float] = {}  # symbol -> dollars
            for c, dollars in held_dollars.items():
                syms = implementation[c]
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
                    own.append((choice, shares, cost, day))
                    held[choice] = held.get(choice, 0.0) + shares * price_now
            # Dividend reinvestment: monthly payers buy a small fractional lot each payday.
            if rng.random() < 0.25:
                for symbol in sorted(held):
                    if securities[symbol].asset_class not in MONTHLY_PAYERS:
                        continue
                    for day in pay_dates:
                        px = float(prices.at[day, symbol])
                        own.append((symbol, round(held[symbol] * 0.0035 / px, 3), px, day))
            cash_flow = 0.0
            if rng.random() < 0.15:
                cash_flow = float(np.round(rng.choice([1, -1]) * rng.uniform(5_000, 100_000), -2))
                cash_flow = max(cash_flow, -0.3 * value)
            last_rebalanced, last_reviewed = _account_dates(m.trigger, as_of, rng)
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
                last_reviewed=last_reviewed,
            )
            # Recent trades. A taxable account may have harvested a loss: sold a fund of its
            # model at a loss and bought a substitute of another wash group the same day
            # (that group's buys are then blocked, and loss sales of the substitute). Any
            # account may have bought a fund of its model (blocking loss sales of its group
            # in the household, IRA and Roth buys included).
            if rng.random() < 0.25 and len(recent) > 0:
                day = recent[int(rng.integers(len(recent)))]
                classes = [c for c in weights if len(implementation[c]) > 1]
                c = classes[int(rng.integers(len(classes)))]
                syms = implementation[c]
                sold = syms[int(rng.integers(len(syms)))]
                if reg == "taxable" and rng.random() < 0.7:
                    px = float(prices.at[day, sold])
                    shares = float(rng.integers(10, 200))
                    loss = -round(shares * px * rng.uniform(0.03, 0.15), 2)
                    sales.append((aid, day, sold, "sell", shares, px, loss))
                    others = [s for s in syms if group_of[s] != group_of[sold]]
                    bought = others[int(rng.integers(len(others)))]
                    bought_px = float(prices.at[day, bought])
                    own.append((bought, float(np.floor(shares * px / bought_px)), bought_px, day))
                else:
                    own.append(
                        (sold, float(rng.integers(5, 100)), float(prices.at[day, sold]), day)
                    )
            lot_rows.extend(
                (aid, f"{aid}-L{n:03d}", symbol, shares, round(cost, 4), day)
                for n, (symbol, shares, cost, day) in enumerate(
                    [o for o in own if o[1] > 0], start=1
                )
            )
    lots = _lot_frame(lot_rows)
    lots = lots[lots["acquired"] <= pd.Timestamp(as_of)].reset_index(drop=True)
    # The history agrees with the lots: a buy for every lot acquired in its span ...
    bought = lots[lots["acquired"] >= start]
    buys = [
        (a, d, s, "buy", float(q), float(c), np.nan)
        for a, d, s, q, c in zip(
            bought["account_id"],
            bought["acquired"],
            bought["symbol"],
            bought["shares"],
            bought["unit_cost"],
            strict=True,
        )
    ]
    # ... and no loss sale that a household buy of its wash group would have washed (its
    # realised loss would then be partly disallowed and the replacement's basis adjusted).
    household_of = {a: acc.household_id for a, acc in accounts.items()}
    buys_by_household: dict[str, list[tuple[str, pd.Timestamp]]] = {}
    for a, d, s, *_ in buys:
        buys_by_household.setdefault(household_of[a], []).append((s, d))
    kept = [t for t in sales if not _washed(t, buys_by_household, household_of, group_of)]
    trades = pd.DataFrame(buys + kept, columns=list(TRADE_COLUMNS))
    trades["trade_date"] = pd.to_datetime(trades["trade_date"])
    trades["realized_gain"] = trades["realized_gain"].astype(float)
    trades = trades.sort_values(
        ["account_id", "trade_date", "symbol", "side", "shares"], kind="stable", ignore_index=True
    )
    shown = prices.iloc[-int(years_of_prices * 252) :]
    settings = Settings(as_of=as_of, wash_sale_scope="household")
    # The tax year, from a generator of its own so that the rest of the book stays as it was.
    accounts, returns = _tax_returns(accounts, np.random.default_rng([seed, 13]))
    return Book(securities, models, accounts, lots, trades, shown, settings, returns=returns)


def _tax_returns(
    accounts: dict[str, Account], rng: np.random.Generator
) -> tuple[dict[str, Account], dict[str, TaxReturn]]:
    """Married households with a second taxable account (a joint and an individual account
    on one return: about a third of the households that have a second account), and the
    year so far of some returns: realised gains to date, losses carried in, a few
    married-filing-separately returns."""
    by_household: dict[str, list[str]] = {}
    for a in sorted(accounts):
        by_household.setdefault(accounts[a].household_id, []).append(a)
    out = dict(accounts)
    returns = {}
    for household, ids in sorted(by_household.items()):
        married = len(ids) > 1 and rng.random() < 0.35
        if married:
            out[ids[1]] = replace(accounts[ids[1]], registration="taxable")
        status = (
            "married_joint"
            if married
            else str(
                rng.choice(["single", "married_joint", "married_separate"], p=[0.7, 0.22, 0.08])
            )
        )
        ytd_st = ytd_lt = carry_st = carry_lt = 0.0
        if rng.random() < 0.35:
            ytd_st = float(np.round(rng.uniform(-6_000, 12_000), -1))
            ytd_lt = float(np.round(rng.uniform(-4_000, 40_000), -1))
        if rng.random() < 0.15:
            carry_st = float(np.round(rng.uniform(0, 20_000), -1))
            carry_lt = float(np.round(rng.uniform(0, 30_000), -1))
        if status != "single" or ytd_st or ytd_lt or carry_st or carry_lt:
            returns[household] = TaxReturn(household, status, ytd_st, ytd_lt, carry_st, carry_lt)
    return out, returns
