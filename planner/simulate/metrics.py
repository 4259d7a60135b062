"""Figures of a workflow's run: one ``metrics.csv`` row.

Definitions (weights and drifts are fractions, money dollars, rates fractions a year):

- ``rebalances``: days that traded after the initial purchase (trigger, flow and tax days
  alike); ``trades``: orders on those days (one per security and side).
- ``turnover``: the sum over those days of (buys + sells) / 2 / the account's value that
  day, per year.
- ``costs``: trading costs paid, the initial purchase included; ``taxes_paid``: tax paid
  for closed years (negative: the deduction's saving was larger).
- ``max_abs_drift``: the largest absolute class-weight drift (cash included) at any close,
  before trading; ``mean_abs_drift``: the mean over closes of the day's largest absolute
  drift.
- ``days_outside_band``: closes at which a class was outside its reference band (the
  model's inner bands; +/-5 pp for ``--weights``), the same band for every workflow.
- ``tracking_error``: annualised (sqrt 252) standard deviation of the daily return minus
  the daily return of the target weights rebalanced daily (cash at 0%).
- ``annual_return``: annualised time-weighted return (flows and taxes paid from the
  account are external; costs are not), ``volatility`` its daily standard deviation x
  sqrt 252, ``max_drawdown`` its worst peak-to-trough fall (negative).
- ``pre_tax_value``: the account at the last close; ``after_tax_value``: less the tax owed
  and unpaid (closed years not yet paid, and the open year's gains at its exact netting)
  and less taxes paid from outside (``taxes_from="external"``); ``liquidation_value``:
  ``after_tax_value`` less the extra tax and the trading cost of selling every lot at the
  last close.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.simulate.engine import Setup, WorkflowRun
from planner.simulate.market import TRADING_DAYS

METRIC_COLUMNS = (
    "workflow",
    "rebalances",
    "trades",
    "turnover",
    "costs",
    "taxes_paid",
    "realized_st",
    "realized_lt",
    "max_abs_drift",
    "mean_abs_drift",
    "days_outside_band",
    "tracking_error",
    "annual_return",
    "volatility",
    "max_drawdown",
    "pre_tax_value",
    "after_tax_value",
    "liquidation_value",
    "failed_plans",
)


def daily_returns(s: Setup, run: WorkflowRun) -> tuple[np.ndarray, np.ndarray]:
    """(account, benchmark) daily returns from the second day on: the account's with
    flows and taxes paid from it taken out, the benchmark the target weights' return."""
    value = run.path.value
    account = (value[1:] - run.path.external[1:]) / value[:-1] - 1.0
    p = s.market.prices[list(s.symbols)].to_numpy(dtype=float)
    bench = (p[1:] / p[:-1] - 1.0) @ s.security_targets
    return account, bench


def abs_drift(s: Setup, run: WorkflowRun) -> np.ndarray:
    """Each close's largest absolute class drift, before trading."""
    return np.abs(run.path.weights - s.targets).max(axis=1)


def outside_band(s: Setup, run: WorkflowRun) -> np.ndarray:
    """Whether a class is outside its reference band at each close."""
    reference = s.portfolio.reference
    out = np.zeros(len(run.path.value), dtype=bool)
    for k, c in enumerate(s.classes):
        band = reference.get(c)
        if band is None:
            continue
        lo, hi = band.bounds(float(s.targets[k]))
        w = run.path.weights[:, k]
        out |= (w < lo - 1e-9) | (w > hi + 1e-9)
    return out


def metrics_row(s: Setup, run: WorkflowRun) -> dict:
    """One ``metrics.csv`` row (see the module doc)."""
    path = run.path
    days = s.market.prices.index
    years = max((days[-1] - days[0]).days / 365.25, 1 / 365.25)
    first = days[0].date()
    account, bench = daily_returns(s, run)
    growth = np.cumprod(np.r_[1.0, 1.0 + account])
    drawdown = growth / np.maximum.accumulate(growth) - 1.0
    drift = abs_drift(s, run)
    ledger = run.ledger
    last = s.market.prices.iloc[-1]
    prices = {sym: float(last[sym]) for sym in s.symbols}
    owed = float(path.owed[-1])
    external = ledger.taxes_paid if s.taxes_from == "external" else 0.0
    after_tax = float(path.value[-1]) - owed - external
    cost_rate = {sym: s.portfolio.securities[sym].cost_per_dollar for sym in s.symbols}
    sell_cost = sum(q * prices[sym] * cost_rate[sym] for sym, q, *_ in ledger.lots.values())
    liquidation = after_tax - ledger.liquidation_tax(days[-1].date(), prices) - sell_cost
    realized_st = sum(y.reported_st for y in ledger.years) + ledger.ytd_st
    realized_lt = sum(y.reported_lt for y in ledger.years) + ledger.ytd_lt
    sd = (lambda x: float(np.std(x, ddof=1))) if len(account) > 1 else (lambda x: 0.0)
    return {
        "workflow": run.label,
        "rebalances": int(path.traded[1:].sum()),
        "trades": sum(1 for t in run.trades if t["date"] > first),
        "turnover": float(path.turnover[1:].sum() / years),
        "costs": float(ledger.costs),
        "taxes_paid": float(ledger.taxes_paid),
        "realized_st": float(realized_st) if ledger.taxable else 0.0,
        "realized_lt": float(realized_lt) if ledger.taxable else 0.0,
        "max_abs_drift": float(drift.max()),
        "mean_abs_drift": float(drift.mean()),
        "days_outside_band": int(outside_band(s, run).sum()),
        "tracking_error": sd(account - bench) * np.sqrt(TRADING_DAYS),
        "annual_return": float(growth[-1] ** (1.0 / years) - 1.0),
        "volatility": sd(account) * np.sqrt(TRADING_DAYS),
        "max_drawdown": float(drawdown.min()),
        "pre_tax_value": float(path.value[-1]),
        "after_tax_value": after_tax,
        "liquidation_value": float(liquidation),
        "failed_plans": len(run.failures),
    }


def metrics_frame(s: Setup, runs: list[WorkflowRun]) -> pd.DataFrame:
    """``metrics.csv``: one row per workflow, in the order run."""
    return pd.DataFrame([metrics_row(s, r) for r in runs], columns=list(METRIC_COLUMNS))
