"""Price histories for the simulator: the seeded synthetic market, and the reader of a real
history in the ``prices.csv`` layout.

Prices are dividend-adjusted closes in dollars per share, one column per symbol, indexed by
trading day (``pandas.Timestamp``, ascending). The simulator uses the levels for returns and
as trade prices (a simulated account trades at the adjusted close; see :mod:`.engine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from planner.calendar import is_business_day
from planner.errors import ConfigError
from planner.synthetic import CLASSES, FUNDS

TRADING_DAYS = 252
"""Trading days per year, for annualising daily figures."""

MARKET_VOL = 0.15
"""Annual volatility of the synthetic market factor in calm times (a fraction)."""

HISTORY_YEARS = 3
"""Years of synthetic history generated before the simulation's start (the optimiser's
covariance is estimated from it, so no future price informs a trade)."""


@dataclass(frozen=True)
class SyntheticSecurity:
    """A security the synthetic market prices: its asset class (a key of
    :data:`planner.synthetic.CLASSES`), wash group and first price (dollars)."""

    symbol: str
    asset_class: str
    wash_group: str
    start_price: float


EXTRA_SECURITIES = (SyntheticSecurity("SPY", "US_EQUITY", "SP500", 450.0),)
"""Securities the synthetic market prices besides the demo book's funds."""


def synthetic_securities() -> dict[str, SyntheticSecurity]:
    """Every symbol the synthetic market can price: the demo book's funds and SPY."""
    out = {
        f.symbol: SyntheticSecurity(f.symbol, f.asset_class, f.group, f.start_price) for f in FUNDS
    }
    for s in EXTRA_SECURITIES:
        out.setdefault(s.symbol, s)
    return out


def trading_days(start: date, end: date) -> pd.DatetimeIndex:
    """NYSE trading days from ``start`` to ``end`` (both included)."""
    days = pd.bdate_range(pd.Timestamp(start), pd.Timestamp(end))
    keep = [is_business_day(d.date()) for d in days]
    return days[np.asarray(keep, dtype=bool)]


def synthetic_market(
    symbols: list[str] | tuple[str, ...], start: date, end: date, seed: int = 0
) -> pd.DataFrame:
    """Seeded daily adjusted closes of ``symbols`` on NYSE days from :data:`HISTORY_YEARS`
    before ``start`` to ``end``.

    Log returns are market factor x beta + asset-class factor + idiosyncratic noise, with
    the class drifts, factor volatilities and betas of :data:`planner.synthetic.CLASSES`
    (US equity about 18% a year, bonds about 5%, substitutes correlated about 0.99).
    Volatility switches between a calm and a stressed regime (twice the shocks; a Markov
    chain of about two calm years, then about three stressed months), and one crash falls in
    the first half of the simulated span: over 25 trading days the market factor loses about
    35% (log) with three times the calm volatility, while bonds gain a little (a flight to
    quality); equities then recover at their normal drift. Same seed, same prices.
    """
    known = synthetic_securities()
    unknown = sorted(set(symbols) - set(known))
    if unknown:
        raise ConfigError(
            f"the synthetic market has no price for {', '.join(unknown)}; it prices "
            f"{', '.join(sorted(known))}; give a real history with --prices"
        )
    if not start < end:
        raise ConfigError(f"start {start} must be before end {end}")
    days = trading_days(start - timedelta(days=round(HISTORY_YEARS * 365.25)), end)
    rng = np.random.default_rng(seed)
    n = len(days)
    dt = 1.0 / TRADING_DAYS
    # Regimes: calm (scale 1) and stressed (scale 2), switching with daily probabilities.
    scale = np.ones(n)
    stressed = False
    switch = rng.random(n)
    for t in range(n):
        # Leave a stressed spell with probability 1/60 a day, enter one with 1/500.
        stressed = switch[t] >= 1 / 60 if stressed else switch[t] < 1 / 500
        scale[t] = 2.0 if stressed else 1.0
    market = rng.normal(0.0, MARKET_VOL * np.sqrt(dt), n) * scale
    class_names = sorted({known[s].asset_class for s in symbols})
    factor = {c: rng.normal(0.0, CLASSES[c][1] * np.sqrt(dt), n) * scale for c in class_names}
    # The crash: 25 days somewhere in the first half of the simulated span.
    first = int(np.searchsorted(days, pd.Timestamp(start)))
    span = max(n - first, 60)
    crash_start = first + int(rng.integers(span // 10, max(span // 2, span // 10 + 1)))
    crash = np.zeros(n, dtype=bool)
    crash[crash_start : crash_start + 25] = True
    market = np.where(crash, -0.35 / 25 + market * 3.0, market)
    out = {}
    for s in symbols:
        sec = known[s]
        drift, _, beta = CLASSES[sec.asset_class]
        noise = rng.normal(0.0, 0.006 * np.sqrt(dt), n)
        r = (drift - 0.5 * (MARKET_VOL * beta) ** 2) * dt + beta * market
        r = r + factor[sec.asset_class] + noise
        if beta < 0.5:  # bonds: a small flight-to-quality gain during the crash
            r = np.where(crash, r + 0.04 / 25, r)
        path = np.exp(np.cumsum(r) - r[0])
        out[s] = sec.start_price * path
    return pd.DataFrame(out, index=days).round(4)


def read_prices(path: Path) -> pd.DataFrame:
    """A price history in the ``prices.csv`` layout (a ``date`` column, then one column per
    symbol of dividend-adjusted closes in dollars; an empty cell: no price that day), or
    the same as a Parquet file. Raises :class:`ConfigError` naming the file, row and
    column of the first problem of each kind."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such price file")
    try:
        if path.suffix == ".parquet":
            raw = pd.read_parquet(path).astype(str).replace({"nan": "", "None": ""})
        else:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{path}: cannot read it as a price table ({exc})") from exc
    if "date" not in raw.columns:
        raise ConfigError(f"{path}: line 1: date: no 'date' column (expected date,SYMBOL,...)")
    symbols = [c for c in raw.columns if c != "date"]
    if not symbols:
        raise ConfigError(f"{path}: line 1: no price column besides 'date'")
    dates = pd.to_datetime(raw["date"], format="%Y-%m-%d", errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise ConfigError(
            f"{path}:{row + 2}: date: {raw['date'].iloc[row]!r} is not a date YYYY-MM-DD"
        )
    order = dates.to_numpy()
    if len(order) > 1 and not np.all(order[1:] > order[:-1]):
        row = int(np.flatnonzero(order[1:] <= order[:-1])[0]) + 1
        raise ConfigError(
            f"{path}:{row + 2}: date: {raw['date'].iloc[row]} is not after the row before "
            "(dates must be ascending and unique)"
        )
    values = {}
    for s in symbols:
        text = raw[s].str.strip()
        number = pd.to_numeric(text.where(text != ""), errors="coerce")
        wrong = np.flatnonzero((number.isna() & (text != "")).to_numpy())
        if len(wrong):
            row = int(wrong[0])
            raise ConfigError(
                f"{path}:{row + 2}: {s}: {text.iloc[row]!r} is not a number (expected an "
                "adjusted close in dollars, or an empty cell)"
            )
        nonpositive = np.flatnonzero((number <= 0).to_numpy())
        if len(nonpositive):
            row = int(nonpositive[0])
            raise ConfigError(
                f"{path}:{row + 2}: {s}: {text.iloc[row]} is not a positive price in dollars"
            )
        values[s] = number.to_numpy(dtype=float)
    return pd.DataFrame(values, index=pd.DatetimeIndex(dates, name="date"))


def window(
    prices: pd.DataFrame,
    symbols: list[str] | tuple[str, ...],
    start: date | None,
    end: date | None,
    source: str = "prices",
) -> pd.DataFrame:
    """The rows of ``prices`` from ``start`` to ``end`` (both included; ``None``: the first
    or last row where every symbol has a price) and the columns ``symbols``; raises
    :class:`ConfigError` for a symbol the history lacks or a day in the window without a
    price."""
    missing = [s for s in symbols if s not in prices.columns]
    if missing:
        raise ConfigError(
            f"{source}: no column for {', '.join(missing)} (the file has "
            f"{', '.join(map(str, prices.columns))})"
        )
    frame = prices[list(symbols)]
    complete = frame.notna().all(axis=1)
    if start is None:
        if not complete.any():
            raise ConfigError(f"{source}: no day has a price for every one of {', '.join(symbols)}")
        start = frame.index[complete.to_numpy()][0].date()
    if end is None:
        end = frame.index[-1].date()
    if not start < end:
        raise ConfigError(f"start {start} must be before end {end}")
    out = frame.loc[pd.Timestamp(start) : pd.Timestamp(end)]
    if len(out) < 2:
        raise ConfigError(f"{source}: fewer than two trading days from {start} to {end}")
    holes = out.isna()
    if holes.to_numpy().any():
        column = str(out.columns[holes.any(axis=0).to_numpy()][0])
        first = out.index[holes[column].to_numpy()][0].date()
        raise ConfigError(
            f"{source}: {column}: no price on {first}, inside the simulated window "
            f"{out.index[0].date()}..{out.index[-1].date()} (choose a later --start)"
        )
    return out


def history_before(prices: pd.DataFrame, symbols, start: pd.Timestamp) -> pd.DataFrame | None:
    """Up to three years of complete rows before ``start``, for the optimiser's covariance;
    ``None`` when there are fewer than 60."""
    frame = prices.loc[prices.index < start, list(symbols)].dropna()
    frame = frame.loc[frame.index >= start - pd.Timedelta(days=3 * 366)]
    return frame if len(frame) >= 60 else None
