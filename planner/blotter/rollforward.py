"""Roll a book forward by executed trades: what the book looks like after the fills.

- Lots sold are relieved by specific identification (the lot and shares each execution
  names); every buy becomes a new lot bought on its trade date at its price plus
  commission per share.
- Wash sales use the project's own maths (:func:`planner.tax.wash.apply_wash_sales`): a
  loss sale replaced within the window (by a buy of this batch, or by a lot bought in the
  window before it) moves the disallowed loss into the replacement's basis and tacks the
  sold shares' holding period onto it; a buy of this batch that replaces a loss sale of
  ``trades.csv`` does the same (that sale's holding period is not in ``trades.csv``, so
  nothing is tacked then), and the loss it disallows is added back to the year to date.
- Executions are appended to ``trades.csv`` (sells with their realised gain), so that the
  next plan's look-back sees the wash windows they opened.
- Cash takes the proceeds less the costs; an account that traded has its pending cash flow
  consumed (the plan invested or raised it) and ``last_rebalanced`` set to its last trade
  date; each tax return's year to date (``returns.csv``) takes the gains its sales report.
- The new book is written to a fresh folder through a temporary one renamed at the end, or
  in place after a backup copy; the old book is untouched until the new one is complete
  and reads back valid.

Units: shares, dollars, dollars per share; dates are ``datetime.date``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np
import pandas as pd

from planner.domain import LOT_COLUMNS, TRADE_COLUMNS, Book, Lot, TaxReturn, purchase_dates
from planner.errors import BlotterError
from planner.tax import LotSale, Replacement, WashSaleOutcome, YearSoFar, apply_wash_sales

SHARE_TOLERANCE = 1e-6
"""Shares: a lot left with fewer shares than this is closed; a sale may exceed what a lot
holds by this much (the book keeps shares to 6 decimals)."""


@dataclass(frozen=True)
class Execution:
    """One executed trade to roll into a book.

    ``shares`` (> 0) of ``symbol`` bought or sold at ``price`` dollars per share on
    ``trade_date``. For a sell ``lot_id`` names the lot it relieves (specific
    identification; a sale from several lots is one execution per lot); for a buy it is the
    new lot's id (``None``: made from account, date and symbol). ``commission`` is dollars
    for the whole execution (``None``: the security's commission per share times shares);
    it adds to a buy's basis and comes off a sale's proceeds. ``order_id`` and ``source``
    (where the execution came from, e.g. ``FILLS.csv:4``) are for messages.
    """

    account_id: str
    symbol: str
    side: str
    shares: float
    price: float
    trade_date: date
    lot_id: str | None = None
    commission: float | None = None
    order_id: str = ""
    source: str = ""


@dataclass(frozen=True)
class SaleOutcome:
    """What one sell execution realised, dollars: ``realized_gain`` (proceeds less
    commission less basis), ``disallowed_loss`` (washed, deferred or lost) and the gains it
    reports this year by term (``reported_st``, ``reported_lt``; 0 in an IRA or Roth)."""

    execution: Execution
    unit_cost: float
    acquired: date
    term: str
    realized_gain: float
    disallowed_loss: float
    reported_st: float
    reported_lt: float


@dataclass(frozen=True)
class RollForward:
    """A book rolled forward: the new ``book`` (in memory, not yet written), one
    :class:`SaleOutcome` per sell execution, the ``new_lots`` the buys made (after
    wash-sale adjustments), every wash-sale ``replacements`` match, and per tax return the
    ``(short-term, long-term)`` dollars added to its year to date (``returns_added``), of
    which ``past_disallowed`` (per selling account) is the loss of ``trades.csv`` sales
    the buys disallowed (added back as short-term)."""

    book: Book
    as_of: date
    sales: tuple[SaleOutcome, ...]
    new_lots: tuple[Lot, ...]
    replacements: tuple[Replacement, ...]
    returns_added: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    accounts: tuple[str, ...] = ()
    past_disallowed: Mapping[str, float] = field(default_factory=dict)


def roll_forward(
    book: Book,
    executions: Sequence[Execution],
    rebalanced: Iterable[str] | None = None,
    as_of: date | None = None,
) -> RollForward:
    """The book after ``executions``.

    ``rebalanced`` are the accounts whose pending cash flow the trades consumed and whose
    ``last_rebalanced`` moves to their last trade date (``None``: every account that
    traded). The new book's as-of date is ``as_of`` (``None``: the later of the book's and
    the last trade date). Raises :class:`BlotterError` naming the execution for an unknown
    account, symbol or lot, a sale larger than its lot, or a date before the lot's
    purchase or after the new as-of date; nothing is changed then.
    """
    old_as_of = book.settings.as_of or date.today()
    last_trade = max((e.trade_date for e in executions), default=old_as_of)
    new_as_of = as_of or max(old_as_of, last_trade)
    _check(book, executions, new_as_of)
    traded = sorted({e.account_id for e in executions})
    rebalanced_ids = sorted(set(traded if rebalanced is None else rebalanced))
    for a in rebalanced_ids:
        if a not in book.accounts:
            raise BlotterError(f"roll-forward: unknown account {a!r}")

    buys = [e for e in executions if e.side == "buy"]
    new_ids = _new_lot_ids(book, buys)
    groups = {s: sec.wash_group for s, sec in book.securities.items()}
    registrations = {a: acc.registration for a, acc in book.accounts.items()}
    window = book.settings.wash_window_days

    lots_out: list[tuple[Lot, date]] = []  # (lot, purchase date) of the accounts touched
    sale_outcomes: dict[int, SaleOutcome] = {}
    new_lots: list[Lot] = []
    replacements: list[Replacement] = []
    past_disallowed: dict[str, float] = {}  # account -> loss of trades.csv sales disallowed
    touched: list[str] = []
    for cluster in _clusters(book, traded):
        touched.extend(cluster)
        members = set(cluster)
        existing = [lot for a in cluster for lot in book.lots_of(a)]
        bought = [
            Lot(e.account_id, new_ids[i], e.symbol, e.shares, _buy_unit_cost(book, e), e.trade_date)
            for i, e in enumerate(buys)
            if e.account_id in members
        ]
        # A buy that replaces a loss sale of trades.csv (the sale comes first, so this is
        # worked out before this batch's own sales).
        bought, used, matched_past, disallowed_past = _wash_past_losses(
            book, cluster, existing, bought, groups, registrations, window
        )
        replacements.extend(matched_past)
        for a, amount in disallowed_past.items():
            past_disallowed[a] = past_disallowed.get(a, 0.0) + amount
        indexed = [(k, e) for k, e in enumerate(executions) if e.side == "sell"]
        indexed = [(k, e) for k, e in indexed if e.account_id in members]
        held = {(lot.account_id, lot.lot_id): lot for lot in existing}
        sales = [_lot_sale(book, e, held[(e.account_id, e.lot_id)]) for _, e in indexed]
        result = apply_wash_sales(
            [_as_purchase(lot) for lot in existing] + bought, sales, groups, window, registrations
        )
        replacements.extend(result.replacements)
        for (k, e), sale, outcome in zip(indexed, sales, result.outcomes, strict=True):
            sale_outcomes[k] = _sale_outcome(e, sale, outcome)
        origins = {(lot.account_id, lot.lot_id): lot.bought_on for lot in existing}
        origins.update({(lot.account_id, lot.lot_id): lot.acquired for lot in bought + used})
        after = list(result.lots) + used
        for lot in after:
            lots_out.append((lot, _purchase_date(lot, origins)))
        new_keys = {(lot.account_id, lot.lot_id) for lot in bought + used}
        new_keys |= {(r.account_id, r.lot_id) for r in matched_past}
        new_lots.extend(lot for lot in after if _base_key(lot, new_keys) in new_keys)

    lots = _lots_frame(book, touched, lots_out)
    trades = _trades_frame(book, executions, sale_outcomes)
    accounts = _accounts(book, executions, rebalanced_ids)
    returns, added = _returns(book, sale_outcomes.values(), past_disallowed, new_as_of)
    settings = replace(book.settings, as_of=new_as_of)
    rolled = Book(
        securities=book.securities,
        models=book.models,
        accounts=accounts,
        lots=lots,
        trades=trades,
        prices=book.prices,
        settings=settings,
        source=book.source,
        returns=returns,
    )
    return RollForward(
        book=rolled,
        as_of=new_as_of,
        sales=tuple(sale_outcomes[k] for k in sorted(sale_outcomes)),
        new_lots=tuple(sorted(new_lots, key=lambda lot: (lot.account_id, lot.lot_id))),
        replacements=tuple(replacements),
        returns_added=added,
        accounts=tuple(rebalanced_ids),
        past_disallowed=dict(sorted(past_disallowed.items())),
    )


# -- checks --------------------------------------------------------------------------------


def _where(e: Execution) -> str:
    order = f" (order {e.order_id})" if e.order_id else ""
    where = f"{e.source}: " if e.source else ""
    return (
        f"{where}{e.side} of {e.shares:g} {e.symbol} in account {e.account_id} "
        f"on {e.trade_date}{order}"
    )


def _check(book: Book, executions: Sequence[Execution], as_of: date) -> None:
    """Every problem of the executions at once, as one :class:`BlotterError`."""
    problems: list[str] = []
    relieved: dict[tuple[str, str], float] = {}
    lots: dict[str, dict[str, Lot]] = {}
    for e in executions:
        where = _where(e)
        if e.account_id not in book.accounts:
            problems.append(f"{where}: unknown account")
            continue
        if e.symbol not in book.securities:
            problems.append(f"{where}: unknown symbol")
            continue
        if e.side not in ("buy", "sell"):
            problems.append(f"{where}: side must be buy or sell")
            continue
        if not (math.isfinite(e.shares) and e.shares > 0):
            problems.append(f"{where}: shares must be > 0")
        if not (math.isfinite(e.price) and e.price > 0):
            problems.append(f"{where}: price must be > 0, got {e.price}")
        if e.commission is not None and not (math.isfinite(e.commission) and e.commission >= 0):
            problems.append(f"{where}: commission must be >= 0, got {e.commission}")
        if e.trade_date > as_of:
            problems.append(f"{where}: trade date after the new as-of date {as_of}")
        if e.side == "buy":
            continue
        held = lots.setdefault(
            e.account_id, {lot.lot_id: lot for lot in book.lots_of(e.account_id)}
        )
        if not e.lot_id:
            problems.append(f"{where}: a sale names the lot it relieves (lot_id); none given")
            continue
        lot = held.get(e.lot_id)
        if lot is None:
            problems.append(f"{where}: lot {e.lot_id!r} is not held by the account")
            continue
        if lot.symbol != e.symbol:
            problems.append(f"{where}: lot {e.lot_id} holds {lot.symbol}, not {e.symbol}")
            continue
        if e.trade_date < lot.bought_on:
            problems.append(f"{where}: lot {e.lot_id} was bought later, on {lot.bought_on}")
        key = (e.account_id, lot.lot_id)
        relieved[key] = relieved.get(key, 0.0) + e.shares
        if relieved[key] > lot.shares + SHARE_TOLERANCE:
            problems.append(
                f"{where}: sells {relieved[key]:g} shares of lot {lot.lot_id}, "
                f"which holds {lot.shares:g}"
            )
    if problems:
        n = len(problems)
        head = f"roll-forward refused: {n} problem{'s' if n != 1 else ''} with the executions"
        raise BlotterError("\n".join([head, *(f"  {p}" for p in problems)]))


# -- lots and wash sales -------------------------------------------------------------------


def _clusters(book: Book, accounts: Sequence[str]) -> list[tuple[str, ...]]:
    """The wash-sale scopes the traded accounts fall in (a household, or the account
    alone), each once, sorted."""
    seen: dict[tuple[str, ...], None] = {}
    for a in accounts:
        seen.setdefault(book.wash_scope(a), None)
    return sorted(seen)


def _commission(book: Book, e: Execution) -> float:
    if e.commission is not None:
        return e.commission
    return book.securities[e.symbol].commission * e.shares


def _buy_unit_cost(book: Book, e: Execution) -> float:
    """Basis per share of a buy: price plus commission per share (IRS Pub. 551)."""
    return e.price + _commission(book, e) / e.shares


def _lot_sale(book: Book, e: Execution, lot: Lot) -> LotSale:
    """The execution as a sale of its lot, at the price net of commission per share."""
    price = e.price - _commission(book, e) / e.shares
    return LotSale(
        symbol=e.symbol,
        lot_id=lot.lot_id,
        shares=e.shares,
        unit_cost=lot.unit_cost,
        acquired=lot.acquired,
        sale_date=e.trade_date,
        price=price,
        account_id=e.account_id,
    )


def _as_purchase(lot: Lot) -> Lot:
    """The lot as :func:`apply_wash_sales` takes it: its acquisition date is also its
    purchase date there. A lot whose date was tacked by an earlier wash sale then falls
    outside the window, as it should: replacement shares replace one loss only."""
    return Lot(lot.account_id, lot.lot_id, lot.symbol, lot.shares, lot.unit_cost, lot.acquired)


def _new_lot_ids(book: Book, buys: Sequence[Execution]) -> list[str]:
    """An id for each buy's lot: its own, else ``<account>-<yyyymmdd>-<symbol>``; ``-2``,
    ``-3``... where that is taken in the account."""
    taken: dict[str, set[str]] = {}
    out = []
    for e in buys:
        ids = taken.setdefault(e.account_id, {lot.lot_id for lot in book.lots_of(e.account_id)})
        base = e.lot_id or f"{e.account_id}-{e.trade_date:%Y%m%d}-{e.symbol}"
        name, k = base, 1
        while name in ids:
            k += 1
            name = f"{base}-{k}"
        ids.add(name)
        out.append(name)
    return out


def _wash_past_losses(
    book: Book,
    cluster: Sequence[str],
    existing: Sequence[Lot],
    bought: list[Lot],
    groups: Mapping[str, str],
    registrations: Mapping[str, str],
    window: int,
) -> tuple[list[Lot], list[Lot], list[Replacement], dict[str, float]]:
    """Match the buys against the loss sales of ``trades.csv`` in their window.

    Returns the buys' lots still free to replace this batch's own sales, the lots (or
    parts) already used as replacements, those matches, and per selling account the loss
    disallowed. The book's own lots take part so that a loss sale they already replaced is
    not counted again (they are matched first, being bought earlier); their own changes
    are dropped, since that sale was rolled in before.
    """
    if not bought:
        return bought, [], [], {}
    first = min(lot.acquired for lot in bought)
    past = book.trade_frame(list(cluster))
    start = pd.Timestamp(first) - pd.Timedelta(days=window)
    losses = past[(past["side"] == "sell") & (past["realized_gain"] < 0)]
    losses = losses[losses["trade_date"] >= start]
    if losses.empty:
        return bought, [], [], {}
    sales = []
    columns = ["account_id", "trade_date", "symbol", "shares", "price", "realized_gain"]
    for i, (a, day, symbol, shares, price, gain) in enumerate(
        losses[columns].itertuples(index=False, name=None)
    ):
        day = pd.Timestamp(day).date()
        # The lot sold is not known: its unit cost follows from the gain, and its holding
        # period is taken as nil (no tacking, the conservative reading).
        cost = float(price) - float(gain) / float(shares)
        sales.append(
            LotSale(str(symbol), f"trades.csv#{i}", float(shares), cost, day, day, float(price), a)
        )
    # The book's lots by their real purchase dates: a replacement bought (and tacked) in an
    # earlier roll-forward is matched to the loss it replaced first, so the buys here do not
    # disallow that loss a second time.
    held = [replace(lot, acquired=lot.bought_on, purchased=None) for lot in existing]
    result = apply_wash_sales(held + bought, sales, groups, window, registrations)
    new_keys = {(lot.account_id, lot.lot_id) for lot in bought}
    matches = [r for r in result.replacements if _base_key(r, new_keys) in new_keys]
    if not matches:
        return bought, [], [], {}
    used_keys = {(r.account_id, r.lot_id) for r in matches}
    free, used = [], []
    for lot in result.lots:
        if _base_key(lot, new_keys) not in new_keys:
            continue
        (used if (lot.account_id, lot.lot_id) in used_keys else free).append(lot)
    disallowed: dict[str, float] = {}
    for r in matches:
        seller = sales[r.sale_index].account_id
        disallowed[seller] = disallowed.get(seller, 0.0) + r.disallowed_loss
    return free, used, matches, disallowed


_SPLIT = re.compile(r"^(?P<base>.*)\.w[0-9]+$")


def _base_key(lot, keys: set[tuple[str, str]]) -> tuple[str, str]:
    """The (account, lot id) of the lot a wash-sale split came from (``<id>.w<k>``), or the
    lot's own where it was not split."""
    key = (lot.account_id, lot.lot_id)
    if key in keys:
        return key
    m = _SPLIT.match(lot.lot_id)
    return (lot.account_id, m.group("base")) if m else key


def _purchase_date(lot: Lot, origins: Mapping[tuple[str, str], date]) -> date:
    """The real purchase date of a lot after the wash sales (its source lot's)."""
    return origins[_base_key(lot, set(origins))]


def _sale_outcome(e: Execution, sale: LotSale, outcome: WashSaleOutcome) -> SaleOutcome:
    return SaleOutcome(
        execution=e,
        unit_cost=sale.unit_cost,
        acquired=sale.acquired,
        term=sale.term,
        realized_gain=outcome.realized_gain,
        disallowed_loss=outcome.disallowed_loss,
        reported_st=outcome.reported_st if outcome.taxable else 0.0,
        reported_lt=outcome.reported_lt if outcome.taxable else 0.0,
    )


# -- the new tables ------------------------------------------------------------------------


def _lots_frame(
    book: Book, touched: Sequence[str], lots: Sequence[tuple[Lot, date]]
) -> pd.DataFrame:
    """The book's lots with the touched accounts' replaced, sorted as the book keeps them."""
    keep = book.lots[~book.lots["account_id"].isin(list(touched))]
    keep = keep.assign(purchased=purchase_dates(keep).to_numpy())[[*LOT_COLUMNS, "purchased"]]
    live = [(lot, day) for lot, day in lots if lot.shares > SHARE_TOLERANCE]
    fresh = pd.DataFrame(
        {
            "account_id": [lot.account_id for lot, _ in live],
            "lot_id": [lot.lot_id for lot, _ in live],
            "symbol": [lot.symbol for lot, _ in live],
            "shares": np.array([lot.shares for lot, _ in live], dtype=float),
            "unit_cost": np.array([lot.unit_cost for lot, _ in live], dtype=float),
            "acquired": pd.to_datetime([pd.Timestamp(lot.acquired) for lot, _ in live]),
            "purchased": pd.to_datetime([pd.Timestamp(day) for _, day in live]),
        }
    )
    keep = keep.astype({"account_id": object, "lot_id": object, "symbol": object})
    frame = pd.concat([keep, fresh], ignore_index=True)
    for c in ("acquired", "purchased"):
        frame[c] = frame[c].astype("datetime64[ns]")
    keys = ["account_id", "symbol", "acquired", "lot_id"]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def _trades_frame(
    book: Book, executions: Sequence[Execution], sales: Mapping[int, SaleOutcome]
) -> pd.DataFrame:
    """``trades.csv`` with the executions appended (a sale with its realised gain)."""
    rows = pd.DataFrame(
        {
            "account_id": [e.account_id for e in executions],
            "trade_date": pd.to_datetime([pd.Timestamp(e.trade_date) for e in executions]),
            "symbol": [e.symbol for e in executions],
            "side": [e.side for e in executions],
            "shares": np.array([e.shares for e in executions], dtype=float),
            "price": np.array([e.price for e in executions], dtype=float),
            "realized_gain": np.array(
                [sales[k].realized_gain if k in sales else np.nan for k in range(len(executions))],
                dtype=float,
            ),
        }
    )
    old = book.trades[list(TRADE_COLUMNS)].astype(
        {"account_id": object, "symbol": object, "side": object}
    )
    frame = pd.concat([old, rows], ignore_index=True) if len(old) else rows
    frame["trade_date"] = frame["trade_date"].astype("datetime64[ns]")
    keys = ["account_id", "trade_date", "symbol", "side"]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def _accounts(book: Book, executions: Sequence[Execution], rebalanced: Sequence[str]) -> dict:
    """Accounts with cash moved by the trades and, for the rebalanced ones, the cash flow
    consumed and ``last_rebalanced`` set to their last trade date."""
    cash = {a: acc.cash for a, acc in book.accounts.items()}
    last: dict[str, date] = {}
    for e in executions:
        value = e.shares * e.price
        cost = _commission(book, e)
        cash[e.account_id] += value - cost if e.side == "sell" else -value - cost
        last[e.account_id] = max(last.get(e.account_id, e.trade_date), e.trade_date)
    out = {}
    for a, acc in book.accounts.items():
        changes: dict = {"cash": round(cash[a], 2)} if cash[a] != acc.cash else {}
        if a in rebalanced:
            # The plan invested a contribution or raised a withdrawal: it has now happened.
            changes["cash"] = round(cash[a] + acc.cash_flow, 2)
            changes["cash_flow"] = 0.0
            day = last.get(a, book.settings.as_of)
            if day is not None:
                changes["last_rebalanced"] = day
        out[a] = replace(acc, **changes) if changes else acc
    return out


def _returns(
    book: Book,
    sales: Iterable[SaleOutcome],
    past_disallowed: Mapping[str, float],
    as_of: date,
) -> tuple[dict[str, TaxReturn], dict[str, tuple[float, float]]]:
    """Each return's year to date with the sales' reported gains added (and the losses of
    earlier sales a buy disallowed, as short-term: their term is not in trades.csv).

    Where the trades reach into a later year than the book's, each return's year is closed
    on the way (Schedule D netting: the loss it cannot use carries forward, keeping its
    character) and the new year starts from the sales dated in it."""
    first_year = (book.settings.as_of or as_of).year
    added: dict[tuple[str, int], list[float]] = {}
    for s in sales:
        return_id = book.accounts[s.execution.account_id].return_id
        if return_id is None:
            continue
        totals = added.setdefault(
            (return_id, max(s.execution.trade_date.year, first_year)), [0.0, 0.0]
        )
        totals[0] += s.reported_st
        totals[1] += s.reported_lt
    for a, amount in past_disallowed.items():
        return_id = book.accounts[a].return_id
        if return_id is not None:
            added.setdefault((return_id, first_year), [0.0, 0.0])[0] += amount
    returns = dict(book.returns)
    touched = {r for r, _ in added}
    rolling = as_of.year > first_year
    for return_id in sorted(touched | (set(returns) if rolling else set())):
        ret = returns.get(return_id) or TaxReturn(return_id)
        for year in range(first_year, as_of.year + 1):
            st, lt = added.get((return_id, year), (0.0, 0.0))
            ret = replace(ret, ytd_st_gain=ret.ytd_st_gain + st, ytd_lt_gain=ret.ytd_lt_gain + lt)
            if year < as_of.year:
                closed = YearSoFar.of(ret).netting()
                ret = replace(
                    ret,
                    ytd_st_gain=0.0,
                    ytd_lt_gain=0.0,
                    carryforward_st=closed.carryforward_st,
                    carryforward_lt=closed.carryforward_lt,
                )
        returns[return_id] = ret
    totals: dict[str, list[float]] = {}
    for (return_id, _), (st, lt) in added.items():
        both = totals.setdefault(return_id, [0.0, 0.0])
        both[0] += st
        both[1] += lt
    return returns, {r: (st, lt) for r, (st, lt) in sorted(totals.items())}
