"""Outlier flags: the rules that pick out orders and accounts for a reviewer's eye.

Each rule is a small function returning its flags as text, ``"code: detail"``; the codes
are listed in :data:`ORDER_RULES` and :data:`ACCOUNT_RULES`, and every threshold is in the
``[blotter]`` table of ``book.toml`` (:class:`planner.domain.BlotterSettings`). Flags only
inform: a flagged order is approved or rejected like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from planner.domain import CASH, Book

__all__ = ["ACCOUNT_RULES", "ORDER_RULES", "FlagContext", "OrderFacts", "account_flags"]


@dataclass(frozen=True)
class OrderFacts:
    """What the order rules look at: one order before it is a :class:`BlotterOrder`.
    ``lot_gains`` are the realised gains (dollars) of the lots a sell takes."""

    account_id: str
    symbol: str
    side: str
    est_value: float
    est_st_gain: float
    lot_gains: tuple[float, ...]


@dataclass(frozen=True)
class FlagContext:
    """The book, the as-of date, and each account's shares after the plan by symbol."""

    book: Book
    as_of: date
    shares_after: Mapping[str, Mapping[str, float]]

    @property
    def settings(self):
        return self.book.settings.blotter


def _money(x: float) -> str:
    return f"-${-x:,.2f}" if x < 0 else f"${x:,.2f}"


# -- order rules ---------------------------------------------------------------------------


def short_term_gain(order: OrderFacts, ctx: FlagContext) -> Iterator[str]:
    if ctx.settings.flag_short_term_gain and order.est_st_gain > 0.005 and _taxable(order, ctx):
        yield f"short_term_gain: realises {_money(order.est_st_gain)} short-term"


def wash_window_opened(order: OrderFacts, ctx: FlagContext) -> Iterator[str]:
    """A loss sale starts a window in which buying its wash group would disallow the loss."""
    if order.side != "sell" or not _taxable(order, ctx) or not any(g < 0 for g in order.lot_gains):
        return
    group = ctx.book.securities[order.symbol].wash_group
    days = ctx.book.settings.wash_window_days
    until = ctx.as_of + timedelta(days=days)
    yield f"wash_window: loss sale; no buys of wash group {group} until {until.isoformat()}"


def dividend_reinvestment(order: OrderFacts, ctx: FlagContext) -> Iterator[str]:
    """A loss sale that leaves shares of its wash group whose dividends are reinvested: the
    next reinvestment within the window is a buy that washes (part of) the loss."""
    reinvested = set(ctx.settings.dividend_reinvest)
    if order.side != "sell" or not reinvested or not _taxable(order, ctx):
        return
    if not any(g < 0 for g in order.lot_gains):
        return
    group = ctx.book.securities[order.symbol].wash_group
    held = ctx.shares_after.get(order.account_id, {})
    culprits = sorted(
        s
        for s, shares in held.items()
        if shares > 1e-9
        and ctx.book.securities[s].wash_group == group
        and ("*" in reinvested or s in reinvested)
    )
    if culprits:
        yield (
            f"wash_by_dividend: {', '.join(culprits)} still held with dividends reinvested; "
            f"a reinvestment within the window would wash this loss"
        )


def dust(order: OrderFacts, ctx: FlagContext) -> Iterator[str]:
    if order.est_value < ctx.settings.flag_dust_value:
        yield (
            f"dust: order value {_money(order.est_value)} below "
            f"{_money(ctx.settings.flag_dust_value)}"
        )


def stale_price(order: OrderFacts, ctx: FlagContext) -> Iterator[str]:
    """The security's last price in the book's price history is too old (books without a
    history, or without the symbol in it, are not judged)."""
    prices = ctx.book.prices
    if prices is None or order.symbol not in prices.columns:
        return
    dated = prices[order.symbol].dropna()
    if dated.empty:
        return
    last = dated.index[-1].date()
    age = (ctx.as_of - last).days
    if age > ctx.settings.flag_price_age_days:
        yield (
            f"stale_price: last price of {order.symbol} is from {last.isoformat()}, {age} days "
            f"before {ctx.as_of.isoformat()}"
        )


ORDER_RULES: tuple[Callable[[OrderFacts, FlagContext], Iterator[str]], ...] = (
    short_term_gain,
    wash_window_opened,
    dividend_reinvestment,
    dust,
    stale_price,
)


def order_flags(order: OrderFacts, ctx: FlagContext) -> tuple[str, ...]:
    """Every order rule's flags, in rule order."""
    return tuple(flag for rule in ORDER_RULES for flag in rule(order, ctx))


def _taxable(order: OrderFacts, ctx: FlagContext) -> bool:
    return ctx.book.accounts[order.account_id].taxable


# -- account rules (on the account's summary row) ------------------------------------------


def tax_amount(row: Mapping, ctx: FlagContext) -> Iterator[str]:
    limit = ctx.settings.flag_tax_amount
    if (row.get("est_tax") or 0.0) > limit:
        yield f"tax_amount: estimated tax {_money(row['est_tax'])} above {_money(limit)}"


def tax_fraction(row: Mapping, ctx: FlagContext) -> Iterator[str]:
    value = row.get("value") or 0.0
    share = ctx.settings.flag_tax_fraction
    if value > 0 and (row.get("est_tax") or 0.0) > share * value:
        yield (
            f"tax_fraction: estimated tax {_money(row['est_tax'])} is "
            f"{row['est_tax'] / value:.2%} of the account, above {share:.2%}"
        )


def turnover(row: Mapping, ctx: FlagContext) -> Iterator[str]:
    level = ctx.settings.flag_turnover
    if (row.get("turnover") or 0.0) > level:
        yield f"turnover: {row['turnover']:.1%} of the account, above {level:.1%}"


def outside_bands(row: Mapping, ctx: FlagContext) -> Iterator[str]:
    """A class (cash aside; see the cash rules) still outside its band after the plan."""
    model = ctx.book.models[ctx.book.accounts[row["account_id"]].model]
    out = []
    for target in model.classes:
        if target.asset_class == CASH or target.band is None:
            continue
        weight = row.get(f"post_{target.asset_class}")
        if weight is None:
            continue
        low, high = target.band.bounds(target.target)
        if not (low - 1e-9 <= weight <= high + 1e-9):
            shown = round(weight, 6) + 0.0  # no "-0.0%" for a class sold out
            out.append(f"{target.asset_class} {shown:.1%} (band {low:.1%}-{high:.1%})")
    if out:
        yield "outside_bands: after the plan " + "; ".join(out)


def cash_level(row: Mapping, ctx: FlagContext) -> Iterator[str]:
    model = ctx.book.models[ctx.book.accounts[row["account_id"]].model]
    cash = row.get(f"post_{CASH}")
    if cash is None:
        return
    target = model.cash
    floor = target.band.bounds(target.target)[0] if target.band else target.target
    if cash < floor - 1e-9:
        yield f"cash_below_floor: cash {cash:.2%} after the plan, floor {max(floor, 0):.2%}"
    ceiling = target.target + ctx.settings.flag_cash_above_target
    if cash > ceiling + 1e-9:
        yield (
            f"cash_above_target: cash {cash:.2%} after the plan, target {target.target:.2%} "
            f"(flagged above {ceiling:.2%})"
        )


def solver_fallback(row: Mapping, ctx: FlagContext) -> Iterator[str]:
    """LotQP is the planner's own solver and SCIP the exact mode's; any other means LotQP
    did not handle the account."""
    solver = row.get("solver") or ""
    if solver and solver not in ("LOTQP", "SCIP"):
        yield f"solver_fallback: solved by {solver}, not LotQP"


def notes(row: Mapping, ctx: FlagContext) -> Iterator[str]:
    message = (row.get("message") or "").strip()
    if message:
        yield f"notes: {message}"


ACCOUNT_RULES: tuple[Callable[[Mapping, FlagContext], Iterator[str]], ...] = (
    tax_amount,
    tax_fraction,
    turnover,
    outside_bands,
    cash_level,
    solver_fallback,
    notes,
)


def account_flags(row: Mapping, ctx: FlagContext) -> tuple[str, ...]:
    """Every account rule's flags for one summary row, in rule order."""
    return tuple(flag for rule in ACCOUNT_RULES for flag in rule(row, ctx))


def flag_code(flag: str) -> str:
    """The code of a flag (the text before its colon)."""
    return flag.split(":", 1)[0]
