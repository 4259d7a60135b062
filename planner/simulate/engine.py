"""The day-by-day loop: one simulated account through a price history under one workflow,
with the real planner at every trigger.

Conventions (the README repeats them):

- The account buys the model at target at the close of the first trading day (through the
  planner, a full rebalance from cash), unless it starts from a book account's lots.
- Each day's close moves the holdings' value; shares and cash change only by trades,
  flows and tax payments.
- Drift is measured at the close, before any trade; a trigger trades at that close, at the
  close prices (the adjusted close; the spread is the cost).
- A calendar review falls on the first trading day of its period; ``daryanani`` looks
  every n-th trading day.
- Dividends are in the adjusted prices (reinvested in the security; no cash dividends).
- Flows (``--flows``) happen at the close of their day (the next trading day if it is not
  one): a contribution is invested and a withdrawal raised by the planner's cash-flow
  rebalance, or by the workflow's own rebalance if it fires that day.
- A tax year closes at its last trading day: wash sales and the exact Schedule D netting
  with the losses carried in (:meth:`.Ledger.close_year`). Its tax is paid at the close of
  the next trading day, from cash and, if cash falls short, from a sell-only plan (or
  paid from outside with ``taxes_from="external"``). A year's negative tax (the $3,000
  deduction's saving) is paid into the account.

Speed: between two trades the shares are constant, so the weights of a stretch of days are
one array operation; the trigger policy (:mod:`planner.triggers`) is evaluated only on days
the vectorised screen says it could fire, and the optimiser only when it fires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np
import pandas as pd

from planner.decisions import AccountState, Decision
from planner.domain import CASH, Book, Model, Security
from planner.errors import PlannerError
from planner.program.inputs import universe_for
from planner.program.objective import TrackingError, TransactionCost
from planner.run import PlanOptions, RunSpec, plan_account, prepare
from planner.simulate.ledger import ACCOUNT_ID, Ledger
from planner.simulate.portfolio import Portfolio, TaxesFrom, shifted_lots
from planner.simulate.workflows import Workflow
from planner.triggers import CashFlow

NAIVE_TE_VALUE = 1.0
"""Tracking-error value of the naive baseline: it pays anything to reach target."""

REARM_FRACTION = 0.5
"""How far (a fraction of the band's half-width) beyond where a plan left it a class still
outside its band must drift before its band fires again (see :func:`_acknowledge`).
Without it a threshold whose tax-aware plan stops short of the band would fire, and be
planned, every day."""

STRETCH_DAYS = 260
"""Days screened per array operation (about a year)."""


@dataclass(frozen=True)
class Market:
    """The prices of a simulation: ``prices`` (trading days x symbols, dollars) of the
    simulated window, ``history`` (before it, for the optimiser's covariance; ``None``:
    the window's first year, a stated look-ahead into the risk model only) and ``flows``
    (dollars per trading day of the window, + contribution / - withdrawal)."""

    prices: pd.DataFrame
    history: pd.DataFrame | None = None
    flows: pd.Series | None = None


@dataclass(frozen=True)
class Setup:
    """What every workflow of one simulation shares: the portfolio and market, the
    asset classes (model order, cash included, then legacy), the class of each security,
    each class's target, and the planner's run spec (its risk model and compiled templates
    are shared by every workflow)."""

    portfolio: Portfolio
    market: Market
    symbols: tuple[str, ...]
    classes: tuple[str, ...]
    class_of: np.ndarray
    targets: np.ndarray
    in_model: np.ndarray
    security_targets: np.ndarray
    spec: RunSpec
    naive_spec: RunSpec
    taxes_from: TaxesFrom


@dataclass
class DailyPath:
    """Per-day arrays of one workflow's run (mutable while it runs)."""

    weights: np.ndarray  # days x classes, pre-trade
    value: np.ndarray  # post-trade value at the close, dollars
    traded: np.ndarray  # bool
    costs: np.ndarray  # cumulative, dollars
    taxes: np.ndarray  # cumulative taxes paid, dollars
    owed: np.ndarray  # tax owed and not yet paid, dollars
    external: np.ndarray  # flows into the account that day (+) incl. taxes paid from it (-)
    turnover: np.ndarray  # (buys + sells) / 2 / pre-trade value that day
    planned: np.ndarray  # bool: the optimiser was called (whether or not it traded)


@dataclass(frozen=True)
class WorkflowRun:
    """The result of one workflow: its label, the per-day arrays, one dict per order
    (the trade log), the ledger at the end, and plans that failed (date, status, text)."""

    label: str
    path: DailyPath
    trades: list[dict]
    ledger: Ledger
    failures: list[tuple[date, str, str]] = field(default_factory=list)


def setup(portfolio: Portfolio, market: Market, taxes_from: TaxesFrom = "portfolio") -> Setup:
    """Classes, arrays and the planner's run spec for ``portfolio`` on ``market``."""
    model = portfolio.model
    symbols = tuple(s for s in portfolio.symbols if s in portfolio.securities)
    secs = portfolio.securities
    classes = list(model.class_targets)
    for s in symbols:
        c = secs[s].asset_class
        if c not in classes:
            classes.append(c)
    class_of = np.array([classes.index(secs[s].asset_class) for s in symbols], dtype=np.intp)
    targets = np.array([model.class_targets.get(c, 0.0) for c in classes])
    in_model = np.array([c in model.class_targets for c in classes], dtype=bool)
    sec_targets = np.array([model.security_targets.get(s, 0.0) for s in symbols])
    first = market.prices.index[0].date()
    history = market.history
    if history is None:
        history = market.prices.iloc[: min(len(market.prices), 253)]
    book = Book(
        securities=_priced(secs, market.prices.iloc[0]),
        models={model.name: model},
        accounts={ACCOUNT_ID: portfolio.account},
        lots=Ledger(True, 0, 0).lot_frame(),
        trades=Ledger(True, 0, 0).trade_frame(first),
        prices=history[list(symbols)],
        settings=portfolio.settings,
    )
    spec = prepare(book, first, [ACCOUNT_ID], PlanOptions(), decide_now=False)
    naive_objective = NAIVE_TE_VALUE * TrackingError() + TransactionCost()
    naive = replace(
        spec,
        options=PlanOptions(relief="hifo"),
        objective=naive_objective,
        token=spec.token + "-naive",
    )
    return Setup(
        portfolio,
        market,
        symbols,
        tuple(classes),
        class_of,
        targets,
        in_model,
        sec_targets,
        spec,
        naive,
        taxes_from,
    )


def _priced(securities: dict[str, Security], row: pd.Series) -> dict[str, Security]:
    return {s: replace(sec, price=float(row[s])) for s, sec in securities.items()}


def run_workflow(
    s: Setup, workflow: Workflow, progress: Callable[[int], None] | None = None
) -> WorkflowRun:
    """Run one workflow over the whole window (see the module doc)."""
    prices = s.market.prices[list(s.symbols)]
    days = prices.index
    n, k = len(days), len(s.classes)
    p = prices.to_numpy(dtype=float)
    dates = [d.date() for d in days]
    portfolio = s.portfolio
    model = portfolio.model
    account = portfolio.account
    ledger = Ledger(
        account.taxable,
        account.st_rate,
        account.lt_rate,
        wash_window_days=portfolio.settings.wash_window_days,
        wash_groups={sym: sec.wash_group for sym, sec in portfolio.securities.items()},
    )
    first_prices = dict(zip(s.symbols, p[0], strict=True))
    for lot in shifted_lots(portfolio, dates[0], first_prices):
        ledger.add_lot(lot.symbol, lot.shares, lot.unit_cost, lot.acquired, lot.bought_on)
    ledger.cash = account.cash
    path = DailyPath(
        np.zeros((n, k)),
        np.zeros(n),
        np.zeros(n, dtype=bool),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n, dtype=bool),
    )
    flows = np.zeros(n)
    if s.market.flows is not None:
        flows = s.market.flows.reindex(days, fill_value=0.0).to_numpy(dtype=float)
    looks = workflow.look_days(days)
    look_index = np.flatnonzero(looks)
    limits = workflow.breach_limits(s.classes, s.targets, s.in_model)
    acknowledged = limits
    policy = workflow.policy(s.classes)
    years = days.year.to_numpy()
    year_end = np.r_[years[1:] != years[:-1], False]
    pay_day = np.r_[False, years[1:] != years[:-1]]
    event = (flows != 0) | year_end | pay_day
    run = WorkflowRun(workflow.label, path, [], ledger)
    spec = s.naive_spec if workflow.naive else s.spec

    onehot = np.zeros((len(s.symbols), k))
    onehot[np.arange(len(s.symbols)), s.class_of] = 1.0
    cash_k = s.classes.index(CASH)
    flows_only = CashFlow(0.0)

    def weights_of(rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """Pre-trade class weights and values of the days ``rows`` at today's shares."""
        sec_values = p[rows] * ledger.shares(s.symbols)
        class_values = sec_values @ onehot
        class_values[:, cash_k] += ledger.cash
        total = sec_values.sum(axis=1) + ledger.cash
        with np.errstate(invalid="ignore", divide="ignore"):
            return class_values / total[:, None], total

    def trade(t: int, decision: Decision | None, flow: float) -> None:
        """Plan and book day ``t``'s trades (``decision`` None: only the flow)."""
        if decision is None or not decision.fire:
            ledger.cash += flow
            return
        if workflow.naive and decision.mode in ("partial", "full"):
            decision = replace(decision, mode="full", rebalance_to="target", class_bounds={})
        day = dates[t]
        securities = _priced(portfolio.securities, prices.iloc[t])
        book = ledger.book(
            day,
            securities,
            {model.name: model},
            replace(account, cash_flow=flow),
            portfolio.settings,
        )
        universes = {model.name: universe_for(book, model)}
        day_spec = replace(spec, as_of=day, universes=universes)
        path.planned[t] = True
        try:
            outcome = plan_account(book, day_spec, ACCOUNT_ID, decision, None, ledger.year_so_far())
        except (PlannerError, ValueError) as exc:
            run.failures.append((day, type(exc).__name__, str(exc)))
            ledger.cash += flow
            return
        _book_outcome(s, run, t, day, outcome, decision, flow, securities)

    # Day 0: the initial purchase (from cash) at the first close.
    path.weights[0] = weights_of(slice(0, 1))[0][0]
    if not portfolio.lots:
        start = Decision(True, "full", "target", ("initial purchase at target",))
        trade(0, start, 0.0)
        path.traded[0] = False  # the initial purchase is not a rebalance
        # Day 0's drift is the one after the purchase: the account exists from then on.
        path.weights[0] = weights_of(slice(0, 1))[0][0]
    path.value[0] = float(ledger.shares(s.symbols) @ p[0] + ledger.cash)
    path.costs[0] = ledger.costs
    if progress:
        progress(1)
    t = 0
    while t < n - 1:
        stop = min(n - 1, t + STRETCH_DAYS)
        events = np.flatnonzero(event[t + 1 : stop + 1])
        if len(events):
            stop = t + 1 + int(events[0])
        rows = slice(t + 1, stop + 1)
        w, total = weights_of(rows)
        candidates = looks[rows].copy()
        if limits is not None:
            lo, hi = limits
            # A class a plan left outside its band (acknowledged) screens against wider
            # limits until it is back inside its band (see REARM_FRACTION).
            back = np.maximum.accumulate((w >= lo) & (w <= hi), axis=0)
            low = np.where(back, lo, acknowledged[0])
            high = np.where(back, hi, acknowledged[1])
            candidates &= ((w < low) | (w > high)).any(axis=1)
        fired: tuple[int, Decision] | None = None
        for c in np.flatnonzero(candidates):
            if limits is not None:
                # The stretch up to this day brought these classes back inside their band.
                acknowledged = _reset(acknowledged, limits, back[c])
            d = t + 1 + int(c)
            decision = _evaluate(policy, model, s.classes, w[c], dates, d, look_index, 0.0)
            if decision.fire:
                fired = (d, decision)
                break
        end = fired[0] if fired else stop
        if limits is not None and not fired:
            acknowledged = _reset(acknowledged, limits, back[-1])
        span = slice(t + 1, end + 1)
        path.weights[span] = w[: end - t]
        path.value[span] = total[: end - t]
        path.costs[span] = ledger.costs
        path.taxes[span] = ledger.taxes_paid
        path.owed[span] = ledger.tax_due + ledger.open_year_tax()
        # Day ``end``: a trigger, an event, or the end of the stretch.
        flow = float(flows[end])
        paid = 0.0
        if pay_day[end]:
            raise_, paid = _pay_taxes(s, ledger, end)
            flow += raise_
        decision = fired[1] if fired else None
        if flow != 0.0:
            # A flow day the workflow does not look at trades the flow only.
            rule = policy if looks[end] else flows_only
            decision = _evaluate(
                rule, model, s.classes, w[end - t - 1], dates, end, look_index, flow
            )
        path.external[end] = float(flows[end]) - paid
        trade(end, decision, flow)
        if limits is not None and decision is not None and decision.mode in ("partial", "full"):
            # Only a rebalance acknowledges a class it left outside its band: a cash-flow
            # plan (a flow, or taxes raised) did not try to fix the bands, so a breach it
            # leaves fires at the next look.
            acknowledged = _acknowledge(limits, s.targets, weights_of(slice(end, end + 1))[0][0])
        if year_end[end]:
            ledger.close_year(int(years[end]))
        path.value[end] = float(ledger.shares(s.symbols) @ p[end] + ledger.cash)
        path.costs[end] = ledger.costs
        path.taxes[end] = ledger.taxes_paid
        path.owed[end] = ledger.tax_due + ledger.open_year_tax()
        if progress:
            progress(end - t)
        t = end
    return run


def _acknowledge(
    limits: tuple[np.ndarray, np.ndarray], targets: np.ndarray, after: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Screen limits after a plan: a class the plan left outside its band (the tax-aware
    optimiser judged the rest of the way not worth its tax and cost) fires again only once
    its weight moves :data:`REARM_FRACTION` of the band's half-width further out than the
    plan left it, or after it has been back inside its band."""
    lo, hi = limits
    half = np.where(np.isfinite(hi), hi - targets, np.inf)
    low = np.where(after < lo, after - REARM_FRACTION * half, lo)
    high = np.where(after > hi, after + REARM_FRACTION * half, hi)
    return low, high


def _reset(
    acknowledged: tuple[np.ndarray, np.ndarray],
    limits: tuple[np.ndarray, np.ndarray],
    back: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The acknowledged limits with the classes back inside their band (``back``) reset."""
    return np.where(back, limits[0], acknowledged[0]), np.where(back, limits[1], acknowledged[1])


def _evaluate(
    policy,
    model: Model,
    classes,
    weights: np.ndarray,
    dates: list[date],
    t: int,
    look_index: np.ndarray,
    flow: float,
) -> Decision:
    """The workflow's trigger decision at the close of day ``t``: the account was last
    looked at on the previous look day (so a calendar review on ``t`` is due)."""
    before = look_index[look_index < t]
    last = dates[int(before[-1])] if len(before) else dates[0]
    state = AccountState(
        dates[t],
        {c: float(x) for c, x in zip(classes, weights, strict=True)},
        model,
        None,
        flow,
        None,
        last,
    )
    return policy.evaluate(state)


def _pay_taxes(s: Setup, ledger: Ledger, t: int) -> tuple[float, float]:
    """Pay last year's tax on day ``t``, from outside or from the account. Returns (the
    part cash cannot cover, as a withdrawal for the planner to raise, dollars <= 0; the
    tax paid from the account, dollars)."""
    due = ledger.tax_due
    ledger.tax_due = 0.0
    ledger.taxes_paid += due
    if s.taxes_from == "external" or due == 0.0:
        return 0.0, 0.0
    if due < 0 or due <= ledger.cash:
        ledger.cash -= due
        return 0.0, due
    short = due - max(ledger.cash, 0.0)
    ledger.cash -= due - short
    return -short, due


def _book_outcome(s, run, t, day, outcome, decision, flow, securities) -> None:
    """Apply a plan's lot sales and buys to the ledger and log its orders."""
    ledger = run.ledger
    orders = outcome.orders
    sales = outcome.lot_sales
    value_before = float(
        ledger.shares(s.symbols) @ np.array([securities[x].price for x in s.symbols])
    )
    value_before += ledger.cash + flow
    realized: dict[str, list[float]] = {}
    if sales:
        for lot_id, q, symbol in zip(
            sales["lot_id"], sales["shares"], sales["symbol"], strict=True
        ):
            gain, long_term = ledger.sell(day, str(lot_id), float(q), securities[symbol].price)
            pair = realized.setdefault(str(symbol), [0.0, 0.0])
            pair[1 if long_term else 0] += gain
    cash = ledger.cash + flow
    traded = 0.0
    reason = "; ".join(decision.reasons)
    if orders:
        for symbol, side, q, price, value, cost in zip(
            orders["symbol"],
            orders["side"],
            orders["shares"],
            orders["est_price"],
            orders["est_value"],
            orders["est_cost"],
            strict=True,
        ):
            if side == "buy":
                ledger.buy(day, str(symbol), float(q), float(price))
                cash -= float(value)
            else:
                cash += float(value)
            cash -= float(cost)
            ledger.costs += float(cost)
            traded += float(value)
            st, lt = realized.get(str(symbol), (0.0, 0.0)) if side == "sell" else (0.0, 0.0)
            run.trades.append(
                {
                    "workflow": run.label,
                    "date": day,
                    "mode": decision.mode,
                    "symbol": str(symbol),
                    "side": str(side),
                    "shares": float(q),
                    "price": float(price),
                    "value": float(value),
                    "cost": float(cost),
                    "realized_st": st if ledger.taxable else 0.0,
                    "realized_lt": lt if ledger.taxable else 0.0,
                    "reason": reason,
                }
            )
    ledger.cash = cash
    if orders and t > 0:
        run.path.traded[t] = True
        run.path.turnover[t] = traded / 2 / value_before if value_before > 0 else 0.0
