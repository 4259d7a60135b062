"""``rebalance simulate``: one account through a price history, day by day, under several
rebalancing workflows, with the real planner at every trigger.

- :mod:`.market`: the seeded synthetic market and the reader of a real price history;
- :mod:`.portfolio`: the account to simulate, from a book's model or ``--weights``;
- :mod:`.workflows`: the workflows, built from :mod:`planner.triggers` policies;
- :mod:`.ledger`: lots, cash, wash sales, each year's exact netting, taxes and costs;
- :mod:`.engine`: the day loop (conventions in its docstring);
- :mod:`.metrics` and :mod:`.report`: ``metrics.csv``, ``daily.csv``, ``trade_log.csv``
  and ``report.html``.

Python use::

    from planner.simulate import simulate, weights_portfolio, market_for
    portfolio = weights_portfolio({"SPY": 0.6, "AGG": 0.4}, 1_000_000, "ira")
    market = market_for(portfolio, prices_path, date(2020, 1, 1), date(2020, 12, 31))
    result = simulate(portfolio, market, parse_workflows("quarterly,threshold:0.02"))
    result.metrics  # one row per workflow
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from planner.errors import ConfigError
from planner.simulate.engine import Market, Setup, WorkflowRun, run_workflow, setup
from planner.simulate.market import (
    history_before,
    read_prices,
    synthetic_market,
    window,
)
from planner.simulate.metrics import metrics_frame
from planner.simulate.portfolio import (
    Portfolio,
    TaxesFrom,
    book_portfolio,
    parse_weights,
    priced,
    weights_portfolio,
)
from planner.simulate.workflows import DEFAULT_WORKFLOWS, Workflow, parse_workflows

SYNTHETIC_START = date(2006, 1, 1)
SYNTHETIC_END = date(2025, 12, 31)
"""The synthetic market's default window: twenty years."""

__all__ = [
    "DEFAULT_WORKFLOWS",
    "Market",
    "Portfolio",
    "SimulationResult",
    "Workflow",
    "book_portfolio",
    "market_for",
    "parse_weights",
    "parse_workflows",
    "read_flows",
    "simulate",
    "weights_portfolio",
]


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """The shared setup, one run per workflow (in the order given) and ``metrics``."""

    setup: Setup
    runs: tuple[WorkflowRun, ...]
    metrics: pd.DataFrame


def read_flows(path: Path) -> pd.Series:
    """Contributions (+) and withdrawals (-) in dollars by date from a CSV with columns
    ``date`` (YYYY-MM-DD) and ``amount``; several on one date add up. Raises
    :class:`ConfigError` naming the file, line and field of a bad cell."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such flows file")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("date", "amount"):
        if column not in frame.columns:
            raise ConfigError(f"{path}:1: {column}: missing column (expected date,amount)")
    dates = pd.to_datetime(frame["date"].str.strip(), format="%Y-%m-%d", errors="coerce")
    amounts = pd.to_numeric(frame["amount"].str.strip(), errors="coerce")
    for row in range(len(frame)):
        if pd.isna(dates.iloc[row]):
            raise ConfigError(
                f"{path}:{row + 2}: date: {frame['date'].iloc[row]!r} is not a date YYYY-MM-DD"
            )
        if pd.isna(amounts.iloc[row]):
            raise ConfigError(
                f"{path}:{row + 2}: amount: {frame['amount'].iloc[row]!r} is not a number of "
                "dollars (+ contribution, - withdrawal)"
            )
    return amounts.groupby(dates.to_numpy()).sum().sort_index()


def market_for(
    portfolio: Portfolio,
    prices: Path | None,
    start: date | None,
    end: date | None,
    seed: int = 0,
    flows: pd.Series | None = None,
) -> tuple[Portfolio, Market]:
    """The portfolio (alternates the history lacks dropped) and its market: the synthetic
    one (default window :data:`SYNTHETIC_START`..:data:`SYNTHETIC_END`) or the history at
    ``prices``; ``flows`` are moved to the first trading day on or after their date."""
    if prices is None:
        start = start or SYNTHETIC_START
        end = end or SYNTHETIC_END
        frame = synthetic_market(list(portfolio.symbols), start, end, seed)
        source = "synthetic market"
    else:
        frame = read_prices(prices)
        source = str(prices)
        inside = frame.loc[
            pd.Timestamp(start or frame.index[0]) : pd.Timestamp(end or frame.index[-1])
        ]
        portfolio = priced(portfolio, inside, source)
    symbols = [s for s in portfolio.symbols if s in portfolio.securities]
    days = window(frame, symbols, start, end, source)
    history = history_before(frame, symbols, days.index[0])
    on_days = None
    if flows is not None and len(flows):
        last = days.index[-1]
        outside = flows.index[(flows.index < days.index[0]) | (flows.index > last)]
        if len(outside):
            raise ConfigError(
                f"--flows: {outside[0].date()} is outside the simulated window "
                f"{days.index[0].date()}..{last.date()}"
            )
        position = days.index.searchsorted(flows.index)
        on_days = flows.groupby(days.index[position]).sum()
    return portfolio, Market(days, history, on_days)


def simulate(
    portfolio: Portfolio,
    market: Market,
    workflows: Sequence[Workflow],
    taxes_from: TaxesFrom = "portfolio",
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Run every workflow on the same account and market; ``progress(days)`` is called as
    days are done (each workflow counts every day once)."""
    if taxes_from not in ("portfolio", "external"):
        raise ConfigError(f"taxes from {taxes_from!r}: expected portfolio or external")
    shared = setup(portfolio, market, taxes_from)
    runs = tuple(run_workflow(shared, w, progress) for w in workflows)
    return SimulationResult(shared, runs, metrics_frame(shared, list(runs)))
