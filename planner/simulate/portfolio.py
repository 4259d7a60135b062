"""What a simulation runs: the model, its securities, the account and its starting lots,
the prices and the flows, gathered from a book's model or a quick ``--weights`` portfolio.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from planner.domain import (
    CASH,
    Account,
    Band,
    ClassTarget,
    Lot,
    Model,
    Security,
    Settings,
    TriggerSpec,
)
from planner.errors import ConfigError
from planner.simulate.ledger import ACCOUNT_ID
from planner.simulate.market import synthetic_securities

TaxesFrom = Literal["portfolio", "external"]

DEFAULT_ST_RATE = 0.408
"""Default short-term rate: 37% top federal bracket plus 3.8% NIIT (a fraction)."""
DEFAULT_LT_RATE = 0.238
"""Default long-term rate: 20% plus 3.8% NIIT (a fraction)."""
REFERENCE_BAND = Band(abs=0.05)
"""Band of ``days_outside_band`` for a ``--weights`` portfolio (a book's model uses its own
inner bands), the same for every workflow so the column compares them."""


@dataclass(frozen=True)
class Portfolio:
    """A simulated account before prices: ``model`` (class targets, cash included),
    ``securities`` (prices are placeholders, set each day), ``account`` (registration,
    rates, fractional shares; ``cash`` the starting cash in dollars), ``lots`` it starts
    with (empty: it starts in cash and buys the model on the first day), ``settings`` of
    the planner, and ``reference`` (asset class -> band) for ``days_outside_band``."""

    model: Model
    securities: dict[str, Security]
    account: Account
    lots: tuple[Lot, ...] = ()
    settings: Settings = field(default_factory=Settings)
    reference: dict[str, Band] = field(default_factory=dict)
    lot_prices: dict[str, float] = field(default_factory=dict)
    """Price per symbol the starting lots' unit costs refer to (the book's), dollars."""
    lot_as_of: date | None = None
    """The book date the starting lots' acquisition dates refer to."""

    @property
    def symbols(self) -> tuple[str, ...]:
        """Model securities, then securities only the starting lots hold (sorted)."""
        own = list(self.model.securities)
        legacy = sorted({lot.symbol for lot in self.lots} - set(own))
        return (*own, *legacy)


def parse_weights(text: str) -> dict[str, float]:
    """``SPY=0.6,AGG=0.4`` -> ``{"SPY": 0.6, "AGG": 0.4}``; the rest to 1 is cash."""
    out: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        symbol, sep, value = part.partition("=")
        symbol = symbol.strip()
        if not sep or not symbol:
            raise ConfigError(f"--weights: {part!r}: expected SYMBOL=FRACTION, e.g. SPY=0.6")
        try:
            weight = float(value)
        except ValueError:
            raise ConfigError(f"--weights: {part!r}: {value.strip()!r} is not a number") from None
        if not 0 < weight <= 1:
            raise ConfigError(f"--weights: {symbol}: {weight} is not a fraction in (0, 1]")
        if symbol in out:
            raise ConfigError(f"--weights: {symbol} is given twice")
        if symbol == CASH:
            raise ConfigError(f"--weights: {CASH} is the rest to 1; do not give it")
        out[symbol] = weight
    if not out:
        raise ConfigError("--weights: no SYMBOL=FRACTION given")
    total = sum(out.values())
    if total > 1 + 1e-9:
        raise ConfigError(f"--weights: the weights sum to {total:g}, more than 1")
    return out


def account_for(
    registration: str, st_rate: float, lt_rate: float, fractional: bool, cash: float, model: str
) -> Account:
    """The simulated account (id :data:`ACCOUNT_ID`, its own household)."""
    if registration not in ("taxable", "ira", "roth"):  # roth: a book account's, untaxed
        raise ConfigError(f"--registration {registration!r}: expected taxable or ira")
    for name, rate in (("--st-rate", st_rate), ("--lt-rate", lt_rate)):
        if not 0 <= rate < 1:
            raise ConfigError(f"{name} {rate}: expected a fraction in [0, 1)")
    if not cash >= 0:
        raise ConfigError(f"--initial {cash}: expected a positive amount of dollars")
    return Account(
        ACCOUNT_ID,
        model,
        ACCOUNT_ID,
        registration,
        float(cash),
        st_rate,
        lt_rate,
        fractional_shares=fractional,
    )


def weights_portfolio(
    weights: dict[str, float],
    initial: float,
    registration: str = "taxable",
    st_rate: float = DEFAULT_ST_RATE,
    lt_rate: float = DEFAULT_LT_RATE,
    fractional: bool = False,
    spread_bps: float = 2.0,
) -> Portfolio:
    """A quick portfolio: each symbol its own asset class (named after it) and wash group
    (the synthetic market's group where it knows the symbol), cash the rest to 1, no
    minimum trade, ``spread_bps`` full spread and no commission."""
    if not initial > 0:
        raise ConfigError(f"--initial {initial}: expected a positive amount of dollars")
    known = synthetic_securities()
    classes = [ClassTarget(s, w, (s,), {s: w}, REFERENCE_BAND, None) for s, w in weights.items()]
    cash = max(0.0, 1.0 - sum(weights.values()))
    classes.append(ClassTarget(CASH, cash, (), {}, Band(), None))
    model = Model("weights", tuple(classes), "target", TriggerSpec("threshold"), "--weights")
    securities = {
        s: Security(s, s, 1.0, known[s].wash_group if s in known else s, spread_bps, 0.0, 0.0)
        for s in weights
    }
    account = account_for(registration, st_rate, lt_rate, fractional, initial, model.name)
    reference = {s: REFERENCE_BAND for s in weights}
    return Portfolio(model, securities, account, reference=reference)


def book_portfolio(
    book_path: Path,
    model_name: str | None = None,
    account_id: str | None = None,
    *,
    initial: float | None = None,
    registration: str | None = None,
    st_rate: float | None = None,
    lt_rate: float | None = None,
    fractional: bool | None = None,
    spread_bps: float = 2.0,
) -> Portfolio:
    """A book's model, from cash (``initial`` dollars) or from the lots and cash of
    ``account_id`` (its model unless ``model_name`` says otherwise). Options left
    ``None`` come from the account, else the defaults. Every security's spread is
    ``spread_bps`` and commission 0; minimum trades are the book's."""
    from planner.io import load_book

    book = load_book(book_path)
    account = book.accounts.get(account_id) if account_id else None
    if account_id and account is None:
        raise ConfigError(f"--account {account_id}: no such account in {book_path}")
    name = model_name or (account.model if account else None)
    if name is None:
        raise ConfigError(
            f"a book needs --model NAME or --account ID (models: {', '.join(sorted(book.models))})"
        )
    if name not in book.models:
        raise ConfigError(
            f"--model {name}: no such model in {book_path} (models: "
            f"{', '.join(sorted(book.models))})"
        )
    model = book.models[name]
    lots: tuple[Lot, ...] = ()
    cash = 1_000_000.0 if initial is None else initial
    if account is not None:
        lots = book.lots_of(account.account_id)
        cash = account.cash if initial is None else initial
    if not lots and not cash > 0:
        raise ConfigError(f"--initial {cash}: expected a positive amount of dollars")
    sim_account = account_for(
        registration or (account.registration if account else "taxable"),
        st_rate if st_rate is not None else (account.st_rate if account else DEFAULT_ST_RATE),
        lt_rate if lt_rate is not None else (account.lt_rate if account else DEFAULT_LT_RATE),
        fractional if fractional is not None else bool(account and account.fractional_shares),
        float(cash),
        model.name,
    )
    held = {lot.symbol for lot in lots}
    symbols = [*model.securities, *sorted(held - set(model.securities))]
    securities = {
        s: replace(book.securities[s], spread_bps=spread_bps, commission=0.0) for s in symbols
    }
    reference = {c.asset_class: c.band for c in model.classes if c.asset_class != CASH}
    return Portfolio(
        model,
        securities,
        sim_account,
        tuple(replace(lot, account_id=ACCOUNT_ID) for lot in lots),
        replace(book.settings, as_of=None, wash_sale_scope="account"),
        reference,
        {s: book.securities[s].price for s in symbols},
        book.settings.as_of,
    )


def priced(portfolio: Portfolio, prices: pd.DataFrame, source: str = "prices") -> Portfolio:
    """The portfolio restricted to the securities ``prices`` has a price for on every day
    (pass the simulated window): an alternate (a model security with no target) the
    account does not hold is dropped when the history lacks it; a preferred security or a
    holding it lacks is an error (named with ``source``)."""
    complete = prices.notna().all(axis=0)
    have = {str(c) for c in prices.columns[complete.to_numpy()]}
    model = portfolio.model
    held = {lot.symbol for lot in portfolio.lots}
    needed = [s for s in portfolio.symbols if model.security_targets.get(s, 0.0) > 0 or s in held]
    missing = [s for s in needed if s not in prices.columns]
    if missing:
        raise ConfigError(f"{source}: no column for {', '.join(missing)}")
    # A needed security with a gap in the window is reported, with its day, by window().
    have |= set(needed)
    classes = []
    for c in model.classes:
        keep = tuple(s for s in c.securities if s in have)
        classes.append(replace(c, securities=keep))
    model = replace(model, classes=tuple(classes))
    securities = {s: sec for s, sec in portfolio.securities.items() if s in have}
    return replace(portfolio, model=model, securities=securities)


def shifted_lots(portfolio: Portfolio, start: date, first_prices: dict[str, float]) -> list[Lot]:
    """The starting lots moved to the simulation's first day: each keeps its age (days
    before the book's date become days before ``start``) and its gain as a fraction of
    price (unit cost scaled by the simulated over the book's price)."""
    if not portfolio.lots:
        return []
    as_of = portfolio.lot_as_of or max(lot.acquired for lot in portfolio.lots)
    out = []
    for lot in portfolio.lots:
        scale = first_prices[lot.symbol] / portfolio.lot_prices[lot.symbol]
        age = as_of - lot.acquired
        bought_age = as_of - lot.bought_on
        out.append(
            replace(
                lot,
                unit_cost=float(np.round(lot.unit_cost * scale, 6)),
                acquired=start - age,
                purchased=start - bought_age,
            )
        )
    return out
