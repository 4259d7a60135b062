"""Constraints of the rebalance program: one small class each, with a readable label.

Each turns a :class:`~constraints.base.Context` (the compiled template's variables and
parameters) into cvxpy rows once, and an account's :class:`~constraints.base.AccountInputs`
into parameter values for every solve. This package does not import the planner.
"""

from constraints.base import BIG, TRADE_EPS, AccountInputs, Constraint, Context, Switches, Trades
from constraints.holdings import (
    CashFloor,
    CashFlowMode,
    ClassBands,
    LotBounds,
    NoShorting,
    TurnoverCap,
    WeightLimits,
)
from constraints.restrictions import (
    DoNotBuy,
    DoNotSell,
    DoNotTrade,
    LegacyHoldings,
    Restricted,
)
from constraints.taxes import GainBudget, HarvestLimit, HoldNearLongTerm, ShortTermGainCap
from constraints.trading import MinimumTrade, WholeShares
from constraints.wash import TradeDirection, WashSaleLookback, WashSaleOneDirection

__all__ = [
    "BIG",
    "TRADE_EPS",
    "AccountInputs",
    "CashFloor",
    "CashFlowMode",
    "ClassBands",
    "Constraint",
    "Context",
    "DoNotBuy",
    "DoNotSell",
    "DoNotTrade",
    "GainBudget",
    "HarvestLimit",
    "HoldNearLongTerm",
    "LegacyHoldings",
    "LotBounds",
    "MinimumTrade",
    "NoShorting",
    "Restricted",
    "ShortTermGainCap",
    "Switches",
    "TradeDirection",
    "Trades",
    "TurnoverCap",
    "WashSaleLookback",
    "WashSaleOneDirection",
    "WeightLimits",
    "WholeShares",
]
